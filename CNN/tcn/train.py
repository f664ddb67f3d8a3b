"""Train the TCN of Bai, Kolter & Koltun (2018) on polyphonic music and measure Table 1's test NLL.

    python CNN/tcn/train.py                          # JSB Chorales, the paper's setting -> results/jsb/
    python CNN/tcn/train.py --dataset nottingham     # Nottingham -> results/nottingham/
    python CNN/tcn/train.py --resume                 # continue the interrupted run
    python CNN/tcn/train.py --quick                  # seconds: a few sequences, two epochs, writes runs/
    python CNN/tcn/train.py --evaluate CNN/tcn/results/jsb/model.pt

The setting of the paper (supplementary Table 2: k, levels, hidden units, dropout, gradient clipping at 0.4;
Sec. 5: Adam, learning rate 0.002) and the authors' poly_music/music_test.py loop: one piece per step, input
frames x_1 .. x_{T-1}, target x_2 .. x_T, the loss summed over a piece's frames and notes; after epoch 10 the
learning rate is divided by 10 whenever the validation NLL is worse than in each of the 3 epochs before; the
model of the best validation epoch is kept and measured once on the test pieces. Metric: the test NLL per
time step (nats) = the summed Bernoulli NLL of all predicted test frames / their number
(common.data.frame_nll, the same definition as RNN/gru).

Targets (Table 1): JSB Chorales 8.10 (band 7.9-8.4), Nottingham 3.07 (band 2.9-3.25).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common.cli import Run, base_parser, positive_int, run
from common.data import Sequences, TensorLoader, frame_nll, load_polyphonic
from common.results import metric, print_metrics
from common.summary import count_parameters
from common.training import (atomic_save, clipped_update, describe_device, evaluate, fit, load_weights,
                             sgd_update)
from CNN.tcn.model import PAPER_SETTINGS, TCN

PAPER_DIR = Path(__file__).resolve().parent
PAPER = ("Bai, Kolter & Koltun 2018, An Empirical Evaluation of Generic Convolutional and Recurrent Networks "
         "for Sequence Modeling")
DATASETS = {"jsb": "JSB Chorales", "nottingham": "Nottingham"}
# Table 1, test NLL per time step: TCN and the recurrent baselines the paper ran.
TABLE1 = {"jsb": {"TCN": 8.10, "LSTM": 8.45, "GRU": 8.43, "RNN": 8.91},
          "nottingham": {"TCN": 3.07, "LSTM": 3.29, "GRU": 3.46, "RNN": 4.05}}
BANDS = {"jsb": (7.9, 8.4), "nottingham": (2.9, 3.25)}
PLATEAU = (10, 3)        # music_test.py: after epoch 10, lr / 10 when val NLL > max of the last 3


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=100, batch_size=1, lr=2e-3, paper_dir=PAPER_DIR,
                    lr_help="Adam learning rate (Sec. 5: 0.002 for the TCN)")
    p.add_argument("--dataset", choices=sorted(DATASETS), default="jsb", help="music set (Table 1)")
    p.add_argument("--k", type=positive_int, default=None, help="kernel size; None = Table 2's for the dataset")
    p.add_argument("--levels", type=positive_int, default=None, help="residual blocks; None = Table 2's")
    p.add_argument("--hidden", type=positive_int, default=None, help="channels per block; None = Table 2's")
    p.add_argument("--dropout", type=float, default=None, help="None = Table 2's for the dataset")
    p.add_argument("--clip", type=float, default=None,
                   help="rescale the gradient to this norm when larger; None = Table 2's 0.4 (the authors' code clips "
                        "before backward, i.e. not at all; validation prefers 0.4: EXPERIMENTS.md); 0 = no clipping")
    p.add_argument("--evaluate", type=Path, default=None, metavar="MODEL_PT",
                   help="only measure the test NLL of a saved state_dict (of the same --dataset setting)")
    args = p.parse_args(argv)
    setting = PAPER_SETTINGS[args.dataset]
    for name in ("k", "levels", "hidden", "dropout", "clip"):
        if getattr(args, name) is None:
            setattr(args, name, setting[name])
    if args.clip < 0:
        p.error(f"--clip must be 0 (no clipping) or positive, got {args.clip}")
    if args.out is None and not args.quick:
        args.out = PAPER_DIR / "results" / args.dataset
    return args


def step(model: TCN, batch):
    """Frames x_1 .. x_{T-1} in, the predictions of x_2 .. x_T out, over a padded batch of pieces; the loss is
    the summed NLL of a piece's frames, averaged over the pieces (with one piece per step: the authors')."""
    roll, lengths = batch
    roll = roll[:, : int(lengths.max())]
    nll, frames = frame_nll(model(roll[:, :-1]), roll[:, 1:], lengths - 1)
    return nll / len(roll), {"n": frames, "loss": nll.item()}


def step_all_frames(model: TCN, batch):
    """RNN/gru's convention, for a like-for-like comparison: every frame x_1 .. x_T predicted, the first from
    one all-zero frame (silence before the piece), i.e. the input [0, x_1 .. x_{T-1}]."""
    roll, lengths = batch
    roll = roll[:, : int(lengths.max())]
    nll, frames = frame_nll(model(F.pad(roll[:, :-1], (0, 0, 1, 0))), roll, lengths)
    return nll / len(roll), {"n": frames, "loss": nll.item()}


def plateau_decay(optimizer, after: int = PLATEAU[0], window: int = PLATEAU[1]):
    """fit's on_epoch_end: the learning rate divided by 10 when, after epoch ``after``, the validation NLL is
    worse than in each of the ``window`` epochs before (music_test.py). It reads the history only, so a
    resumed run decays exactly as an uninterrupted one."""

    def on_epoch_end(history: list[dict]) -> None:
        losses = [h["val_loss"] for h in history]
        if len(history) > after and losses[-1] > max(losses[-1 - window:-1]):
            for group in optimizer.param_groups:
                group["lr"] /= 10
            history[-1]["lr_divided"] = True

    return on_epoch_end


def loaders(data: dict[str, Sequences], batch_size: int, seed: int, device) -> dict[str, TensorLoader]:
    return {split: TensorLoader(seqs.data, seqs.lengths, batch_size=batch_size if split == "train" else 64,
                                shuffle=split == "train", seed=seed, device=device, transform=torch.Tensor.float)
            for split, seqs in data.items()}


def train(r: Run) -> int:
    args, device = r.args, r.device
    model = TCN(88, 88, args.hidden, args.levels, args.k, args.dropout).to(device)
    if args.evaluate is not None:
        load_weights(model, args.evaluate, device, fix=f"pass a state_dict saved by train.py --dataset {args.dataset} "
                                                       f"with the same --k/--levels/--hidden")
    data = load_polyphonic(args.dataset, args.data_dir)
    if args.quick:
        data = {split: Sequences(s.data[:8], s.lengths[:8]) for split, s in data.items()}
        args.epochs = min(args.epochs, 2)
    batches = loaders(data, args.batch_size, args.seed, device)
    if args.evaluate is not None:
        test = evaluate(model, batches["test"], step, device)
        print(f"{DATASETS[args.dataset]} test NLL {test['loss']:.4f} per time step ({args.evaluate})")
        return 0

    print(f"TCN on {DATASETS[args.dataset]}: k={args.k}, {args.levels} levels of {args.hidden}, dropout "
          f"{args.dropout}; {count_parameters(model):,} parameters (Table 1: about "
          f"{PAPER_SETTINGS[args.dataset]['size']:,.0f}); receptive field {model.receptive_field} frames; "
          f"{len(data['train'])} training pieces, batches of {args.batch_size}; device {describe_device(device)}")
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    history = fit(model, optimizer, step, batches["train"], epochs=args.epochs, val_loader=batches["valid"],
                  device=device, amp=args.amp, out=r.out, resume=r.resumes(), curve_keys=("loss",),
                  select="val_loss", update=clipped_update(args.clip) if args.clip > 0 else sgd_update,
                  on_epoch_end=plateau_decay(optimizer),
                  progress=not args.no_progress, desc=f"TCN {args.dataset}")
    best = min(history, key=lambda h: h["val_loss"])

    t_test = time.perf_counter()
    test = evaluate(model, batches["test"], step, device, args.amp)
    test_all = evaluate(model, batches["test"], step_all_frames, device, args.amp)
    atomic_save(model.state_dict(), r.out / "model.pt")
    paper = TABLE1[args.dataset]
    record = r.write_metrics(
        paper=PAPER, model=model, epochs=len(history), weights="model.pt",
        model_kwargs={"n_in": 88, "n_out": 88, "hidden": args.hidden, "levels": args.levels, "k": args.k,
                      "dropout": args.dropout},
        metrics=[metric("test_nll", test["loss"], paper=paper["TCN"], band=BANDS[args.dataset], split="test",
                        claim=f"Table 1: {DATASETS[args.dataset]} test NLL per time step, TCN")],
        training_time_s=sum(h["epoch_time_s"] for h in history) + time.perf_counter() - t_test,
        dataset=args.dataset, parameters=count_parameters(model), receptive_field=model.receptive_field,
        best_epoch=best["epoch"], valid_nll=round(best["val_loss"], 4), table1=paper,
        test_nll_all_frames=round(test_all["loss"], 4),   # RNN/gru's convention (the first frame from silence)
        lr_divided_at=[h["epoch"] for h in history if h.get("lr_divided")],
        hyperparameters={"k": args.k, "levels": args.levels, "hidden": args.hidden, "dropout": args.dropout,
                         "optimizer": "Adam", "lr": args.lr, "batch_size": args.batch_size, "clip": args.clip,
                         "epochs": args.epochs, "plateau": list(PLATEAU), "amp": args.amp},
    )
    print_metrics(record["metrics"], r.out)
    print(f"test NLL {test['loss']:.4f} (validation {best['val_loss']:.4f} at epoch {best['epoch']}); "
          f"Table 1: TCN {paper['TCN']}, LSTM {paper['LSTM']}, GRU {paper['GRU']}, RNN {paper['RNN']}")
    return 0


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())

"""GRU vs LSTM vs tanh RNN on polyphonic music (Chung et al. 2014, Sec. 4), and the paper's numbers.

    python RNN/gru/train.py                       # JSB Chorales, the three units one after another
    python RNN/gru/train.py --unit gru            # one unit
    python RNN/gru/train.py --dataset nottingham  # another of the four music sets
    python RNN/gru/train.py --quick               # seconds: a few sequences, two epochs, writes runs/

Metric: negative log-likelihood per time step (nats) = the sum of the 88 Bernoulli NLLs of a
frame, averaged over all frames of the test set. Target: the GRU on JSB Chorales, 8.54 (Table 2),
band 8.2-8.9; and GRU and LSTM below the tanh RNN.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from common.cli import base_parser, output_dir, positive_int
from common.data import POLYPHONIC, DataError, Sequences, TensorLoader, load_polyphonic
from common.results import git_commit, metric, print_metrics, write_metrics
from common.training import (NonFiniteLossError, atomic_save, describe_device, evaluate, fit, resolve_device,
                             seed_everything)
from RNN.gru.model import MusicRNN, count_parameters, frame_nll

PAPER_DIR = Path(__file__).resolve().parent
PAPER = ("Chung, Gulcehre, Cho & Bengio 2014, "
         "Empirical Evaluation of Gated Recurrent Neural Networks on Sequence Modeling")
UNITS = ("tanh", "lstm", "gru")

# Table 2, test NLL per time step. GRU on JSB (8.54) is the target of this reproduction; the
# others are listed for comparison (see the README for how sure we are of each).
PAPER_TEST_NLL = {"jsb": {"gru": 8.54, "lstm": 8.67, "tanh": 9.10}}
TARGET_BAND = {("jsb", "gru"): (8.2, 8.9)}

# Learning rates of RMSProp chosen on the validation split of JSB Chorales (see the README).
DEFAULT_LR = {"tanh": 1.25e-4, "lstm": 1.25e-4, "gru": 2.5e-4}


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=300, batch_size=1, lr=None, paper_dir=PAPER_DIR,
                    lr_help=f"RMSProp learning rate; None = per unit {DEFAULT_LR} (chosen on JSB's validation split)")
    p.add_argument("--unit", choices=UNITS + ("all",), default="all", help="recurrent unit; all = the three")
    p.add_argument("--dataset", choices=sorted(POLYPHONIC), default="jsb",
                   help="music set of Boulanger-Lewandowski et al. (2012)")
    p.add_argument("--hidden", type=positive_int, default=None, help="units; None = the paper's Table 1")
    p.add_argument("--weight-noise", type=float, default=0.075, help="std of the Gaussian weight noise")
    p.add_argument("--clip", type=float, default=1.0, help="rescale the gradient to this norm when larger")
    p.add_argument("--patience", type=positive_int, default=20,
                   help="early stopping: epochs without a better validation NLL")
    return p.parse_args(argv)


def step(model, batch):
    roll, lengths = batch
    roll = roll[:, : int(lengths.max())]
    nll, frames = frame_nll(model(roll), roll, lengths)
    return nll / frames, {"n": frames, "loss": nll.item()}


def train_unit(unit: str, data: dict[str, Sequences], args, out: Path, device) -> dict:
    seed_everything(args.seed)
    model = MusicRNN(unit, n_hidden=args.hidden).to(device)
    lr = args.lr or DEFAULT_LR[unit]
    optimizer = torch.optim.RMSprop(model.parameters(), lr=lr, alpha=0.95, momentum=0.9)
    loaders = {split: TensorLoader(seqs.data, seqs.lengths, batch_size=args.batch_size if split == "train" else 256,
                                   shuffle=split == "train", seed=args.seed, device=device,
                                   transform=torch.Tensor.float)
               for split, seqs in data.items()}
    print(f"{unit}: {model.n_hidden} units, {count_parameters(model):,} parameters, lr {lr}")
    history = fit(model, optimizer, step, loaders["train"], epochs=args.epochs, val_loader=loaders["valid"],
                  device=device, checkpoint_path=out / "checkpoint.pt", resume=args.resume,
                  history_path=out / "history.json", curves_path=out / "curves.png", curve_keys=("loss",),
                  max_grad_norm=args.clip, weight_noise=args.weight_noise, select="val_loss",
                  patience=args.patience, progress=not args.no_progress, desc=unit)
    atomic_save(model.state_dict(), out / "model.pt")
    best = min(history, key=lambda h: h["val_loss"])
    result = {
        "unit": unit, "hidden": model.n_hidden, "parameters": count_parameters(model), "lr": lr,
        "epochs_run": len(history), "best_epoch": best["epoch"],
        "train_nll": evaluate(model, loaders["train"], step, device)["loss"],
        "valid_nll": best["val_loss"],
        "test_nll": evaluate(model, loaders["test"], step, device)["loss"],
        "wall_time_s": sum(h["epoch_time_s"] for h in history),
    }
    print(f"{unit}: test NLL {result['test_nll']:.3f} (best validation {result['valid_nll']:.3f} "
          f"at epoch {result['best_epoch']})")
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    commit = git_commit()
    device = resolve_device(args.device)
    try:
        data = load_polyphonic(args.dataset, args.data_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.quick:
        data = {split: Sequences(s.data[:8], s.lengths[:8]) for split, s in data.items()}
        args.epochs = 2
    out = output_dir(args, PAPER_DIR)
    if args.out is None and not args.quick and (args.unit, args.dataset) != ("all", "jsb"):
        out = PAPER_DIR.parents[1] / "runs" / "gru" / f"{args.dataset}-{args.unit}"  # results/ is the default run's
    units = UNITS if args.unit == "all" else (args.unit,)
    t0 = time.perf_counter()
    results = {}
    try:
        for unit in units:
            results[unit] = train_unit(unit, data, args, out / f"{args.dataset}-{unit}", device)
    except (NonFiniteLossError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    paper = PAPER_TEST_NLL.get(args.dataset, {})
    metrics = []
    for unit, r in results.items():
        if unit in paper:
            band = TARGET_BAND.get((args.dataset, unit), (paper[unit] - 0.35, paper[unit] + 0.35))
            metrics.append(metric(f"{args.dataset}_{unit}_test_nll", r["test_nll"], paper=paper[unit], band=band))
    if "tanh" in results and len(results) == 3:
        below = all(results[u]["test_nll"] < results["tanh"]["test_nll"] for u in ("gru", "lstm"))
        metrics.append(metric("gru_and_lstm_below_tanh", float(below), paper=1.0, band=(1.0, 1.0)))
    write_metrics(
        out, paper=PAPER, metrics=metrics,
        model={"module": "RNN/gru/model.py", "class": "MusicRNN",
               "kwargs": {"unit": units[-1], "n_notes": 88, "n_hidden": results[units[-1]]["hidden"]},
               "weights": f"{args.dataset}-{units[-1]}/model.pt"},
        seed=args.seed, epochs=max(r["epochs_run"] for r in results.values()),
        wall_time_s=time.perf_counter() - t0, device=describe_device(device), commit=commit,
        quick=args.quick, dataset=args.dataset, units=results,
        details={"columns": ["unit", "units", "parameters", "RMSProp lr", "best epoch", "epochs run",
                             "train NLL", "valid NLL", "test NLL", "minutes"],
                 "rows": [[u, r["hidden"], r["parameters"], r["lr"], r["best_epoch"], r["epochs_run"],
                           round(r["train_nll"], 3), round(r["valid_nll"], 3), round(r["test_nll"], 3),
                           round(r["wall_time_s"] / 60, 1)] for u, r in results.items()]},
        hyperparameters={"optimizer": "RMSprop(alpha=0.95, momentum=0.9)", "batch_size": args.batch_size,
                         "weight_noise": args.weight_noise, "clip": args.clip, "patience": args.patience,
                         "max_epochs": args.epochs},
    )
    print_metrics(metrics, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

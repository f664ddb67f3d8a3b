"""GRU vs LSTM vs tanh RNN on polyphonic music (Chung et al. 2014, Sec. 4), and the paper's numbers.

    python RNN/gru/train.py                       # JSB Chorales, the three units one after another
    python RNN/gru/train.py --unit gru            # one unit; writes runs/gru/jsb-gru
    python RNN/gru/train.py --dataset nottingham  # another of the four music sets
    python RNN/gru/train.py --quick               # seconds: a few sequences, two epochs, writes runs/

Metric: negative log-likelihood per time step (nats) = the sum of the 88 Bernoulli NLLs of a
frame, averaged over all frames of the test set. Target: the GRU on JSB Chorales, 8.54 (Table 2),
band 8.2-8.9; and GRU and LSTM below the tanh RNN.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from common.cli import Run, base_parser, positive_int, run
from common.data import POLYPHONIC, Sequences, TensorLoader, frame_nll, load_polyphonic
from common.results import metric, print_metrics
from common.summary import count_parameters
from common.training import atomic_save, evaluate, fit, patience_stop, resume_checkpoint, seed_everything
from RNN.gru.model import MusicRNN

PAPER_DIR = Path(__file__).resolve().parent
PAPER = ("Chung, Gulcehre, Cho & Bengio 2014, "
         "Empirical Evaluation of Gated Recurrent Neural Networks on Sequence Modeling")
UNITS = ("tanh", "lstm", "gru")

# Table 2, test NLL per time step. GRU on JSB (8.54) is the target of this reproduction; the
# others are listed for comparison (see the README for how sure we are of each).
PAPER_TEST_NLL = {"jsb": {"gru": 8.54, "lstm": 8.67, "tanh": 9.10}}
TARGET_BAND = {("jsb", "gru"): (8.2, 8.9)}
UNIT_NAMES = {"tanh": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}

# Learning rates of RMSProp chosen on the validation split of JSB Chorales (see the README).
DEFAULT_LR = {"tanh": 1.25e-4, "lstm": 1.25e-4, "gru": 2.5e-4}


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=300, batch_size=1, lr=None, paper_dir=PAPER_DIR,
                    lr_help=f"RMSProp learning rate; None = per unit {DEFAULT_LR} (chosen on JSB's validation split)",
                    amp=False)                  # fp32: the recurrences are not autocast
    p.add_argument("--unit", choices=UNITS + ("all",), default="all", help="recurrent unit; all = the three")
    p.add_argument("--dataset", choices=sorted(POLYPHONIC), default="jsb",
                   help="music set of Boulanger-Lewandowski et al. (2012)")
    p.add_argument("--hidden", type=positive_int, default=None, help="units; None = the paper's Table 1")
    p.add_argument("--weight-noise", type=float, default=0.075, help="std of the Gaussian weight noise")
    p.add_argument("--clip", type=float, default=1.0, help="rescale the gradient to this norm when larger")
    p.add_argument("--patience", type=positive_int, default=20,
                   help="early stopping: epochs without a better validation NLL")
    args = p.parse_args(argv)
    if args.out is None and not args.quick and (args.unit, args.dataset) != ("all", "jsb"):
        args.out = PAPER_DIR.parents[1] / "runs" / "gru" / f"{args.dataset}-{args.unit}"  # results/ is the default's
    return args


def step(model, batch):
    roll, lengths = batch
    roll = roll[:, : int(lengths.max())]
    nll, frames = frame_nll(model(roll), roll, lengths)
    return nll / frames, {"n": frames, "loss": nll.item()}


# --------------------------------------------------------------------------- the two fit hooks (Sec. 4)


def noisy_clipped_update(weight_noise: float, clip: float | None):
    """One RMSProp step as the paper's music models are trained (Graves 2011; the authors' code):
    Gaussian noise of std ``weight_noise`` is added to every weight, the loss and its gradient are taken
    at the noisy weights, the noise is removed again, the gradient is rescaled to norm ``clip`` when it is
    larger, and the optimiser steps from the clean weights."""

    def update(forward, model, optimizer):
        params = [p for p in model.parameters() if p.requires_grad]
        noise = [torch.randn_like(p) * weight_noise for p in params] if weight_noise > 0 else []
        with torch.no_grad():
            for p, e in zip(params, noise):
                p.add_(e)
        try:
            loss = forward()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        finally:  # the gradient was taken at the noisy weights; the weights themselves stay clean
            with torch.no_grad():
                for p, e in zip(params, noise):
                    p.sub_(e)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        optimizer.step()

    return update


# --------------------------------------------------------------------------- one unit, then all


def train_unit(unit: str, data: dict[str, Sequences], r: Run, out: Path) -> tuple[MusicRNN, dict]:
    args, device = r.args, r.device
    seed_everything(args.seed)
    model = MusicRNN(unit, n_hidden=args.hidden).to(device)
    lr = args.lr or DEFAULT_LR[unit]
    optimizer = torch.optim.RMSprop(model.parameters(), lr=lr, alpha=0.95, momentum=0.9)
    loaders = {split: TensorLoader(seqs.data, seqs.lengths, batch_size=args.batch_size if split == "train" else 256,
                                   shuffle=split == "train", seed=args.seed, device=device,
                                   transform=torch.Tensor.float)
               for split, seqs in data.items()}
    stop = patience_stop(args.patience)
    epochs, resume = args.epochs, r.resumes(out)
    if resume:  # a unit that had already finished (early stop or the epoch cap) is read back, not trained on
        done = resume_checkpoint(out / "checkpoint.pt")
        history = json.loads(done["history"])
        if len(history) >= epochs or stop(history):
            epochs = len(history)
            print(f"{unit}: finished earlier ({len(history)} epochs), read back from {out / 'checkpoint.pt'}")
    print(f"{unit}: {model.n_hidden} units, {count_parameters(model):,} parameters, lr {lr}")
    history = fit(model, optimizer, step, loaders["train"], epochs=epochs, val_loader=loaders["valid"],
                  device=device, out=out, resume=resume, curve_keys=("loss",), select="val_loss",
                  update=noisy_clipped_update(args.weight_noise, args.clip), on_epoch_end=stop,
                  progress=not args.no_progress, desc=unit)
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
    return model, result


def train(r: Run) -> int:
    args = r.args
    data = load_polyphonic(args.dataset, args.data_dir)
    if args.quick:
        data = {split: Sequences(s.data[:8], s.lengths[:8]) for split, s in data.items()}
        args.epochs = 2
    units = UNITS if args.unit == "all" else (args.unit,)
    models, results = {}, {}
    for unit in units:
        models[unit], results[unit] = train_unit(unit, data, r, r.out / f"{args.dataset}-{unit}")

    paper = PAPER_TEST_NLL.get(args.dataset, {})
    metrics = []
    for unit, res in results.items():
        if unit in paper:
            band = TARGET_BAND.get((args.dataset, unit), (paper[unit] - 0.35, paper[unit] + 0.35))
            metrics.append(metric(f"{args.dataset}_{unit}_test_nll", res["test_nll"], paper=paper[unit], band=band,
                                  claim=f"JSB Chorales test NLL per time step (nats), {UNIT_NAMES[unit]}"))
    if "tanh" in results and len(results) == 3:
        below = all(results[u]["test_nll"] < results["tanh"]["test_nll"] for u in ("gru", "lstm"))
        metrics.append(metric("gru_and_lstm_below_tanh", float(below), paper=1.0, band=(1.0, 1.0),
                              claim="GRU and LSTM test NLL below the tanh RNN's on JSB Chorales (1 = yes)"))
    last = units[-1]
    r.write_metrics(
        paper=PAPER, metrics=metrics, model=models[last],
        model_kwargs={"unit": last, "n_notes": 88, "n_hidden": results[last]["hidden"]},
        weights=f"{args.dataset}-{last}/model.pt", epochs=max(res["epochs_run"] for res in results.values()),
        # resumed: the epochs of earlier sessions count too (a fresh run's total is its wall time)
        training_time_s=sum(res["wall_time_s"] for res in results.values()) if args.resume else None,
        dataset=args.dataset, units=results,
        details={"columns": ["unit", "units", "parameters", "RMSProp lr", "best epoch", "epochs run",
                             "train NLL", "valid NLL", "test NLL", "minutes"],
                 "rows": [[u, res["hidden"], res["parameters"], res["lr"], res["best_epoch"], res["epochs_run"],
                           round(res["train_nll"], 3), round(res["valid_nll"], 3), round(res["test_nll"], 3),
                           round(res["wall_time_s"] / 60, 1)] for u, res in results.items()]},
        hyperparameters={"optimizer": "RMSprop(alpha=0.95, momentum=0.9)", "batch_size": args.batch_size,
                         "weight_noise": args.weight_noise, "clip": args.clip, "patience": args.patience,
                         "max_epochs": args.epochs},
    )
    print_metrics(metrics, r.out)
    return 0


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: each shipped unit's network on the JSB Chorales test pieces (fp32,
    deterministic: equal up to float rounding), and the ordering claim from the re-measured values."""
    from common.training import load_weights
    from common.verify import Check, claimed

    test = load_polyphonic(record["dataset"])["test"]
    loader = TensorLoader(test.data, test.lengths, batch_size=256, transform=torch.Tensor.float)
    checks, nll = [], {}
    for unit, r in record["units"].items():
        model = MusicRNN(unit, n_hidden=r["hidden"])
        load_weights(model, results / f"{record['dataset']}-{unit}" / "model.pt", torch.device("cpu"),
                     fix=f"rerun: {record['command']}")
        nll[unit] = evaluate(model, loader, step, torch.device("cpu"))["loss"]
        name = f"{record['dataset']}_{unit}_test_nll"
        checks.append(Check(name, claimed(record, name), nll[unit], 1e-3, f"the {len(test)} test pieces, fp32"))
    below = float(nll["gru"] < nll["tanh"] and nll["lstm"] < nll["tanh"])
    checks.append(Check("gru_and_lstm_below_tanh", claimed(record, "gru_and_lstm_below_tanh"), below, 0.0,
                        "from the three re-measured values"))
    return checks


def main(argv=None) -> int:
    args = parse_args(argv)
    return run(train, args, PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())

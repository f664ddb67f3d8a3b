"""Fig. 1 of Krizhevsky, Sutskever & Hinton (2012): ReLU vs tanh, epochs to 25% training error on CIFAR-10.

    python CNN/alexnet/train.py            # ReLU and tanh, seeds 0 1 2, each until 25% training error (cap 150)
    python CNN/alexnet/train.py --resume   # finished runs read back from run.json, the interrupted one continues
    python CNN/alexnet/train.py --quick    # seconds: a tiny subset, two epochs, seed 0, writes runs/

Fig. 1 (Sec. 3.1): a four-layer convolutional network with ReLUs reaches 25% training error on
CIFAR-10 six times faster than the same network with tanh units, each with the learning rate that
trains it fastest and no regularisation. Our check: the ratio of epochs to 25% (tanh / ReLU) >= 4.

Training error is measured the same way for both: the error of each training mini-batch in its
forward pass (before its update); each epoch is split into 10 equal chunks of batches; the crossing
point is the end of the first chunk whose error is below 25%, in (fractional) epochs.

The other programs of this paper: ``imagenet.py`` (AlexNet, Sec. 3-5), ``lrn_cifar.py`` (Sec. 3.3),
``experiments/lr_sweep.py`` (the learning rates below).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.cli import Run, base_parser, positive_float, resumes, run
from common.data import channel_stats, image_loaders, load_cifar10
from common.distributed import all_reduce_
from common.plots import save_figure
from common.results import metric
from common.training import (NonFiniteLossError, atomic_save, classification_step, evaluate, fit,
                             seed_everything, write_json)
from CNN.alexnet.model import PAPER, PIXEL_SCALE, FourLayerNet, four_layer_table

PAPER_DIR = Path(__file__).resolve().parent
ACTIVATIONS = ("relu", "tanh")

# Fig. 1 target: training error 25%, measured on chunks of a tenth of an epoch.
TARGET_ERROR_PCT, CHUNKS = 25.0, 10
PAPER_SPEEDUP, SPEEDUP_BAND = 6.0, (4.0, None)   # "six times faster"; we check >= 4x
CLAIM = "Fig. 1: epochs to 25% CIFAR-10 training error, tanh / ReLU"
MAX_EPOCHS = 150   # the cap per run; a run that has not crossed by then counts as the cap (a lower bound)
QUICK_SUBSET = (1024, 256, 512)   # --quick: training, validation and test images

# Constant learning rates of SGD (momentum 0.9, batch 128), one per activation: the lowest validation error
# after 3 epochs in experiments/lr_sweep.py for the default --pixel-scale raw
# (results/experiments/lr_sweep/lr_sweep.json). With --pixel-scale unit that sweep chose 0.03 for both
# (results/experiments/unit-variance/); pass --lr then.
DEFAULT_LR = {"relu": 0.003, "tanh": 0.01}
LR_SWEEP = Path("experiments") / "lr_sweep" / "lr_sweep.json"   # relative to the output folder


def fig1_parser(description: str) -> argparse.ArgumentParser:
    """The flags of a Fig. 1 run (also used by ``experiments/lr_sweep.py``)."""
    p = base_parser(description, epochs=MAX_EPOCHS, batch_size=128, lr=None, paper_dir=PAPER_DIR,
                    lr_help=f"learning rate; default per activation {DEFAULT_LR}")
    p.add_argument("--activation", choices=ACTIVATIONS + ("both",), default="both", help="the network's units")
    p.add_argument("--pixel-scale", choices=["unit", "raw"], default="raw",
                   help="input: raw = only the mean pixel subtracted, 0-255 scale (the paper's Sec. 2); "
                        "unit = per-channel mean/std of the training images")
    p.add_argument("--init-std", type=positive_float, default=0.01,
                   help="std of the Gaussian initial weights (Sec. 5's 0.01), both activations")
    p.add_argument("--target", type=positive_float, default=TARGET_ERROR_PCT, help="training error to reach, %%")
    p.add_argument("--no-channels-last", action="store_true", help="NCHW memory layout (slower on this CPU)")
    return p


def parse_args(argv=None):
    p = fig1_parser(__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds of the runs (default 0 1 2; 0 with --quick)")
    p.epilog = "--epochs is the cap per run: a run stops at the end of the epoch in which it crosses --target."
    return p.parse_args(argv)


# --------------------------------------------------------------------------- training error per chunk


def pool_chunks(n: list[int], errors: list[int], chunks: int = CHUNKS) -> list[float | None]:
    """An epoch's per-batch counts pooled into ``chunks`` runs of consecutive batches (``np.array_split``):
    the error (%) of each chunk's examples; None for an empty chunk (fewer batches than chunks)."""
    out = []
    for idx in np.array_split(np.arange(len(n)), chunks):
        total = sum(n[i] for i in idx)
        out.append(100.0 * sum(errors[i] for i in idx) / total if total else None)
    return out


def chunk_points(history: list[dict]) -> list[tuple[float, float]]:
    """(position in epochs, training error %) at the end of every chunk of every epoch. Epochs recorded in
    the old per-batch form (a checkpoint of a run started before issue 22, resumed) are pooled on the fly."""
    points = []
    for e, record in enumerate(convert_history(history)):
        errors = record["train_chunk_error_pct"]
        points += [(e + (c + 1) / len(errors), err) for c, err in enumerate(errors) if err is not None]
    return points


def crossing_epoch(history: list[dict], target: float = TARGET_ERROR_PCT) -> float | None:
    """The end of the first chunk whose training error is below ``target`` (epochs), or None."""
    return next((pos for pos, err in chunk_points(history) if err < target), None)


class ChunkedTrainingError:
    """Fig. 1's training error, in chunks of a tenth of an epoch; an ``on_epoch_end`` hook of ``fit``.

    ``self.step`` wraps a classification step: in training mode it notes each batch's examples and errors
    (its forward pass, before its update). At the end of an epoch they are pooled into ``chunks`` errors in
    ``history[-1]["train_chunk_error_pct"]`` (nothing per batch is kept), and with ``stop_at`` the run stops
    at the end of the epoch in which a chunk falls below it. Nothing is pending between epochs, so a
    resumed run needs no state from here."""

    def __init__(self, step, chunks: int = CHUNKS, stop_at: float | None = None):
        self.base, self.chunks, self.stop_at = step, chunks, stop_at
        self.n: list[int] = []
        self.errors: list[int] = []

    def step(self, model, batch):
        loss, sums = self.base(model, batch)
        if model.training:
            self.n.append(sums["n"])
            self.errors.append(sums["errors"])
        return loss, sums

    def __call__(self, history: list[dict]) -> str | None:
        # under torchrun each process counted its part of every batch: add them up
        n, errors = (all_reduce_(torch.tensor(v, dtype=torch.long)).tolist() for v in (self.n, self.errors))
        history[-1]["train_chunk_error_pct"] = pool_chunks(n, errors, self.chunks)
        self.n, self.errors = [], []
        crossed = crossing_epoch(history, self.stop_at) if self.stop_at is not None else None
        return f"training error below {self.stop_at:g}% at epoch {crossed:.1f}" if crossed is not None else None


def convert_history(history: list[dict], chunks: int = CHUNKS) -> list[dict]:
    """A history written before issue 22 (per-epoch ``batches``: {"n": [...], "errors": [...]} per batch) in
    today's form: each epoch's ``train_chunk_error_pct`` pooled from those arrays, the arrays dropped.
    Records already in today's form pass unchanged."""
    out = []
    for record in history:
        record = dict(record)
        batches = record.pop("batches", None)
        if batches is not None:
            record["train_chunk_error_pct"] = pool_chunks(batches["n"], batches["errors"], chunks)
        out.append(record)
    return out


def convert_run_folder(folder: str | Path) -> list[dict]:
    """Rewrite ``folder/history.json`` with :func:`convert_history`, after checking that the crossing point
    computed from the chunks equals the one in ``folder/run.json`` (if there). For the records of runs made
    with the old code: ``python -c "from CNN.alexnet.train import convert_run_folder as c; c('...')"``."""
    folder = Path(folder)
    history = convert_history(json.loads((folder / "history.json").read_text()))
    done = folder / "run.json"
    if done.exists():
        recorded = json.loads(done.read_text()).get("crossed_at_epoch")
        crossed = crossing_epoch(history)
        if (recorded is None) != (crossed is None) or (crossed is not None and abs(crossed - recorded) > 1e-9):
            raise ValueError(f"{folder}: crossing {crossed} from the chunks, {recorded} in run.json; not converted")
    write_json(history, folder / "history.json")
    return history


# --------------------------------------------------------------------------- one run


def train_run(activation: str, seed: int, lr: float, data, stats, args, out: Path, device, *, epochs: int,
              stop_at_target: bool, save_model: bool = True) -> dict:
    """Train the four-layer net once (SGD, momentum 0.9, no weight decay, dropout or augmentation) and write
    ``out/run.json``. With --resume a finished run is read back from it, an interrupted one continues from
    ``out/checkpoint.pt``. A loss that becomes NaN is recorded as a diverged run."""
    done = out / "run.json"
    if args.resume and done.exists():
        print(f"{out.name}: finished earlier, read from {done}")
        return json.loads(done.read_text())
    seed_everything(seed)
    channels_last = not args.no_channels_last
    std = stats[1].tolist() if args.pixel_scale == "unit" else [PIXEL_SCALE] * 3
    model = FourLayerNet(activation, mean=stats[0].tolist(), std=std, init_std=args.init_std).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loaders = image_loaders(data, batch_size=args.batch_size, seed=seed, device=device, channels_last=channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    chunks = ChunkedTrainingError(classification_step(F.cross_entropy),
                                  stop_at=args.target if stop_at_target else None)
    try:
        history = fit(model, optimizer, chunks.step, loaders.train, epochs=epochs, val_loader=loaders.val,
                      device=device, amp=args.amp, out=out, resume=resumes(args, out),
                      curve_keys=(), on_epoch_end=chunks, progress=not args.no_progress,
                      desc=f"{activation} seed {seed} lr {lr:g}")
    except NonFiniteLossError as e:
        print(f"{out.name}: {e}", file=sys.stderr)
        result = {"activation": activation, "seed": seed, "lr": lr, "diverged": True, "val_error_pct": math.inf}
        write_json(result, done)
        return result
    crossed = crossing_epoch(history, args.target)
    points = chunk_points(history)
    result = {
        "activation": activation, "seed": seed, "lr": lr, "diverged": False,
        "crossed_at_epoch": crossed, "capped": crossed is None,
        "epochs_to_target": crossed if crossed is not None else float(len(history)),
        "epochs_run": len(history),
        "last_chunk_train_error_pct": points[-1][1],
        "val_error_pct": history[-1]["val_error_pct"],
        "test_error_pct": evaluate(model, loaders.test, chunks.step, device, args.amp)["error_pct"],
        "train_time_s": sum(h["epoch_time_s"] for h in history),
        "curve": [(round(p, 3), round(e, 3)) for p, e in points],
    }
    if save_model:
        atomic_save(model.state_dict(), out / "model.pt")
    write_json(result, done)
    status = (f"{args.target}% at epoch {crossed:.1f}" if crossed is not None
              else f"did not reach {args.target}% in {len(history)} epochs")
    print(f"{activation} seed {seed} lr {lr:g}: {status}; test error {result['test_error_pct']:.2f}%")
    return result


# --------------------------------------------------------------------------- summary and figure


def summarize_runs(runs: list[dict]) -> dict:
    """Epochs to the target per activation (mean, std over seeds) and the tanh / ReLU ratios.
    A run that hit the cap counts with its cap: the tanh / ReLU ratio is then a lower bound."""
    out: dict = {}
    for act in ACTIVATIONS:
        rs = [r for r in runs if r["activation"] == act]
        if rs:
            e = np.array([r["epochs_to_target"] for r in rs], dtype=float)
            out[act] = {"seeds": [r["seed"] for r in rs], "epochs_to_target": e.tolist(),
                        "mean": float(e.mean()), "std": float(e.std(ddof=1)) if len(e) > 1 else 0.0,
                        "capped": [r["capped"] for r in rs]}
    if "relu" in out and "tanh" in out:
        by_seed = {r["seed"]: r for r in runs if r["activation"] == "relu"}
        pairs = [(t, by_seed[t["seed"]]) for t in runs if t["activation"] == "tanh" and t["seed"] in by_seed]
        ratios = [t["epochs_to_target"] / r["epochs_to_target"] for t, r in pairs]
        out["ratio_of_means"] = out["tanh"]["mean"] / out["relu"]["mean"]
        out["per_seed_ratios"] = ratios
        out["mean_of_ratios"] = float(np.mean(ratios)) if ratios else None
        out["relu_capped"] = any(out["relu"]["capped"])
        out["ratio_is_lower_bound"] = any(out["tanh"]["capped"]) and not out["relu_capped"]
    return out


def plot_fig1(runs: list[dict], path: Path, target: float) -> None:
    """Training error against epochs, ReLU solid and tanh dashed, one line per seed (as Fig. 1)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for r in runs:
        pos, err = zip(*r["curve"]) if r["curve"] else ((), ())
        relu = r["activation"] == "relu"
        ax.plot(pos, [e / 100 for e in err], "-" if relu else "--", color="C0" if relu else "C3", lw=1.2,
                label=f"{'ReLU' if relu else 'tanh'} (lr {r['lr']:g})" if r["seed"] == runs[0]["seed"] else None)
    ax.axhline(target / 100, color="gray", lw=0.8, ls=":")
    ax.set(xlabel="epochs", ylabel="training error rate", ylim=(0, 1), title="Fig. 1: four-layer net on CIFAR-10")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------- main


def load_data(args):
    """CIFAR-10 (45,000 training, 5,000 validation images) and the training images' channel statistics."""
    data = load_cifar10(args.data_dir)
    if args.quick:
        data = data.subset(*QUICK_SUBSET)
    return data, channel_stats(data.train_x)


def train(r: Run) -> int:
    args, out = r.args, r.out
    data, stats = load_data(args)
    epochs, seeds = (min(args.epochs, 2), args.seeds or [0]) if args.quick else (args.epochs, args.seeds or [0, 1, 2])
    activations = ACTIVATIONS if args.activation == "both" else (args.activation,)
    print(four_layer_table(FourLayerNet()))
    print(f"{len(data.train_y)} training images, {len(data.val_y)} validation, {r.precision}")
    runs = [train_run(act, seed, args.lr or DEFAULT_LR[act], data, stats, args, out / f"{act}-seed{seed}", r.device,
                      epochs=epochs, stop_at_target=True) for act in activations for seed in seeds]
    if any(x["diverged"] for x in runs):
        print("error: a run diverged (see above); lower its --lr", file=sys.stderr)
        return 1
    plot_fig1(runs, out / "fig1.png", args.target)
    summary = summarize_runs(runs)
    metrics = []
    if "ratio_of_means" in summary and not summary["relu_capped"]:
        metrics.append(metric("relu_speedup_x", summary["ratio_of_means"], paper=PAPER_SPEEDUP, band=SPEEDUP_BAND,
                              split="train", claim=CLAIM, lower_bound=summary["ratio_is_lower_bound"],
                              mean_of_seed_ratios=round(summary["mean_of_ratios"], 4)))
    sweep_path = out / LR_SWEEP
    sweep = json.loads(sweep_path.read_text()) if sweep_path.exists() else None
    r.write_metrics(
        paper=PAPER, metrics=metrics, model=FourLayerNet(activations[0]), model_kwargs={"activation": activations[0]},
        weights=f"{activations[0]}-seed{seeds[0]}/model.pt", seed=seeds[0], seeds=seeds,
        epochs=max(x["epochs_run"] for x in runs),
        training_time_s=sum(x["train_time_s"] for x in runs),   # runs read back by --resume count too
        summary=summary,
        training_error=("error of each training mini-batch in its forward pass (before its update); each epoch "
                        f"split into {CHUNKS} equal chunks of batches; crossing = end of the first chunk below "
                        f"{args.target}% (fractional epochs); a run that hits the cap of {epochs} epochs counts "
                        "as the cap and makes the ratio a lower bound"),
        lr_selection={k: v for k, v in sweep.items() if k != "records"} if sweep else None,
        runs=[{k: v for k, v in x.items() if k != "curve"} for x in runs],
        details={"columns": ["activation", "seed", "lr", "epochs to 25%", "reached", "test error %", "minutes"],
                 "rows": [[x["activation"], x["seed"], x["lr"], round(x["epochs_to_target"], 1),
                           "no (cap)" if x["capped"] else "yes", round(x["test_error_pct"], 2),
                           round(x["train_time_s"] / 60, 1)] for x in runs]},
        hyperparameters={"optimizer": "SGD(momentum=0.9)", "batch_size": args.batch_size, "weight_decay": 0,
                         "dropout": 0, "augmentation": "none", "max_epochs": epochs, "amp": args.amp,
                         "channels_last": not args.no_channels_last, "lr": {x["activation"]: x["lr"] for x in runs},
                         "n_train": len(data.train_y), "init": f"weights N(0, {args.init_std:g}), biases 0",
                         "pixel_scale": args.pixel_scale},
    )
    for act in activations:
        s = summary[act]
        print(f"{act}: epochs to {args.target}% {s['epochs_to_target']} (mean {s['mean']:.2f}, std {s['std']:.2f})")
    if metrics:
        m = metrics[0]
        print(f"tanh / ReLU epochs: {'>= ' if m['lower_bound'] else ''}{m['ours']:.2f} (mean of per-seed ratios "
              f"{m['mean_of_seed_ratios']:.2f}; paper ~{PAPER_SPEEDUP:g}, band >= {SPEEDUP_BAND[0]:g}): "
              f"{'PASSED' if m['passed'] else 'outside the band'}")
    print(f"results in {out}")
    return 0


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``. Fig. 1's claim (epochs to 25% training error) comes from the training curves
    of six runs and cannot be re-measured from weights; what can be is the shipped ReLU model's test error, which
    its run recorded (results/relu-seed0/run.json), on the 10,000 test images, in the run's precision where this
    CPU computes it natively (else fp32, with a wider tolerance)."""
    from common.data import to_unit_float
    from common.training import choose_amp
    from common.verify import Check, claimed, rebuild, test_error_pct

    model = rebuild(record, results)
    run_record = json.loads((results / Path(record["model"]["weights"]).parent / "run.json").read_text())
    data = load_cifar10(n_val=0)
    same_precision = choose_amp("auto", torch.device("cpu")) == record["hyperparameters"]["amp"]
    amp = record["hyperparameters"]["amp"] and same_precision
    error = test_error_pct(model, data, classification_step(F.cross_entropy), transform=to_unit_float, amp=amp)
    return [Check("relu_speedup_x", claimed(record, "relu_speedup_x"), None, 0.0,
                  "from six runs' training curves: retrain to re-measure"),
            Check("relu seed 0: test error, % (the shipped model)", run_record["test_error_pct"], error,
                  0.1 if same_precision else 0.3, f"the 10,000 CIFAR-10 test images, {'bf16' if amp else 'fp32'}")]


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())

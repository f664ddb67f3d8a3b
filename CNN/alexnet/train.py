"""Fig. 1 of Krizhevsky, Sutskever & Hinton (2012): ReLU vs tanh on CIFAR-10; and AlexNet on an ImageFolder tree.

    python CNN/alexnet/train.py                  # Fig. 1: ReLU and tanh, seeds 0 1 2, until 25% training error
    python CNN/alexnet/train.py --select-lr      # the learning-rate sweep on the validation split (lr_sweep.json)
    python CNN/alexnet/train.py --quick          # seconds: a tiny subset, two epochs, writes runs/
    python CNN/alexnet/train.py --dataset imagenet --data-dir PATH   # AlexNet, Sec. 3-5, on PATH/{train,val}/<class>/

Fig. 1 (Sec. 3.1): a four-layer convolutional network with ReLUs reaches 25% training error on
CIFAR-10 six times faster than the same network with tanh units, each with the learning rate that
trains it fastest and no regularisation. Our check: the ratio of epochs to 25% (tanh / ReLU) >= 4.

Training error is measured the same way for both: the error of each training mini-batch in its
forward pass (before its update); each epoch is split into 10 equal chunks of batches; the crossing
point is the end of the first chunk whose error is below 25%, in (fractional) epochs.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.cli import base_parser, output_dir, positive_float, positive_int
from common.data import DataError, TensorLoader, channel_stats, load_cifar10, random_crop_flip, to_unit_float
from common.results import git_commit, metric, write_metrics
from common.training import (NonFiniteLossError, atomic_save, classification_step, describe_device, evaluate, fit,
                             resolve_device, seed_everything, write_json)
from CNN.alexnet.model import PIXEL_SCALE, AlexNet, FourLayerNet, alexnet_layer_table, four_layer_table

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep Convolutional Neural Networks"
ACTIVATIONS = ("relu", "tanh")

# Fig. 1 target: training error 25%, measured on chunks of a tenth of an epoch.
TARGET_ERROR_PCT, CHUNKS = 25.0, 10
PAPER_SPEEDUP, SPEEDUP_BAND = 6.0, (4.0, None)   # "six times faster"; we check >= 4x

# Constant learning rates of SGD (momentum 0.9, batch 128), one per activation, chosen by --select-lr
# on the validation split for the default --pixel-scale raw (results/lr_sweep.json). With --pixel-scale unit
# the sweep chose 0.03 for both (results/unit-variance/lr_sweep.json); pass --lr then.
DEFAULT_LR = {"relu": 0.003, "tanh": 0.01}
LR_GRID = (0.001, 0.003, 0.01, 0.03, 0.1)
SWEEP_EPOCHS = 4

# Sec. 5, for AlexNet: batch 128, momentum 0.9, weight decay 0.0005, lr 0.01 divided by 10 on plateaus.
IMAGENET = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "epochs": 90, "batch_size": 128}


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=60, batch_size=128, lr=None, paper_dir=PAPER_DIR,
                    lr_help=f"learning rate; None = per activation {DEFAULT_LR} (Fig. 1) or "
                            f"{IMAGENET['lr']} (ImageNet)")
    p.set_defaults(epochs=None)
    p.add_argument("--dataset", choices=["cifar10", "imagenet"], default="cifar10",
                   help="cifar10 = the Fig. 1 experiment; imagenet = AlexNet on an ImageFolder tree at --data-dir")
    p.add_argument("--activation", choices=ACTIVATIONS + ("both",), default="both", help="Fig. 1 network's units")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds of the Fig. 1 runs (default 0 1 2; 0 with --quick)")
    p.add_argument("--max-epochs", dest="epochs", type=positive_int, help="the same as --epochs")
    p.add_argument("--target", type=positive_float, default=TARGET_ERROR_PCT, help="training error to reach, %%")
    p.add_argument("--select-lr", action="store_true",
                   help="sweep --lr-grid per activation for --sweep-epochs epochs (seed --seed) and pick the lr "
                        "with the lowest validation error; writes lr_sweep.json")
    p.add_argument("--lr-grid", type=positive_float, nargs="+", default=list(LR_GRID), help="learning rates to sweep")
    p.add_argument("--sweep-epochs", type=positive_int, default=SWEEP_EPOCHS, help="epochs per sweep run")
    p.add_argument("--pixel-scale", choices=["unit", "raw"], default="raw",
                   help="Fig. 1 input: unit = per-channel mean/std of the training images; raw = only the mean "
                        "subtracted, pixels on the 0-255 scale (the paper's Sec. 2 preprocessing)")
    p.add_argument("--init-std", type=positive_float, default=0.01,
                   help="Fig. 1: std of the Gaussian initial weights (Sec. 5's 0.01), both activations")
    p.add_argument("--no-channels-last", action="store_true", help="NCHW memory layout (slower on this CPU)")
    p.add_argument("--workers", type=int, default=4, help="ImageNet: DataLoader worker processes")
    p.add_argument("--plateau-patience", type=positive_int, default=2,
                   help="ImageNet: epochs without a lower validation error before the lr is divided by 10")
    p.add_argument("--pca-images", type=positive_int, default=1000,
                   help="ImageNet: training images sampled for the mean pixel and the RGB PCA")
    p.add_argument("--ten-crop", action="store_true", help="ImageNet: final evaluation on 10 crops (Sec. 4.1)")
    p.add_argument("--input-size", type=int, choices=[224, 227], default=224, help="ImageNet: crop size")
    p.epilog = ("--epochs: Fig. 1 = the cap per run (60; a run stops once it crosses the target); "
                f"ImageNet = passes ({IMAGENET['epochs']}).")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- Fig. 1: training error per chunk


def chunk_errors(history: list[dict], chunks: int = CHUNKS) -> list[tuple[float, float]]:
    """(position in epochs, training error %) for each tenth (``chunks``) of every epoch, from the
    per-batch counts that ``fit(per_batch=("n", "errors"))`` keeps. A chunk is a run of consecutive
    batches (``np.array_split`` of the epoch's batches); its error pools its examples."""
    points = []
    for e, record in enumerate(history):
        n, errors = record["batches"]["n"], record["batches"]["errors"]
        for c, idx in enumerate(np.array_split(np.arange(len(n)), chunks)):
            total = sum(n[i] for i in idx)
            if total:
                points.append((e + (c + 1) / chunks, 100.0 * sum(errors[i] for i in idx) / total))
    return points


def crossing_epoch(history: list[dict], target: float = TARGET_ERROR_PCT, chunks: int = CHUNKS) -> float | None:
    """The end of the first chunk whose training error is below ``target`` (epochs), or None."""
    return next((pos for pos, err in chunk_errors(history, chunks) if err < target), None)


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- Fig. 1: one run


def _loaders(data, args, seed, device, channels_last):
    def to_float(b):
        x = to_unit_float(b)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    train = TensorLoader(data.train_x, data.train_y, batch_size=args.batch_size, shuffle=True, seed=seed,
                         device=device, transform=to_float)
    val = TensorLoader(data.val_x, data.val_y, batch_size=1000, device=device, transform=to_float)
    test = TensorLoader(data.test_x, data.test_y, batch_size=1000, device=device, transform=to_float)
    return train, val, test


def train_run(activation: str, seed: int, lr: float, data, stats, args, out: Path, device, *, epochs: int,
              stop_at_target: bool) -> dict:
    """Train the four-layer net once (SGD, momentum 0.9, no weight decay, dropout or augmentation).
    Writes ``out/run.json`` when done; with --resume a finished run is read back, not retrained."""
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
    train_loader, val_loader, test_loader = _loaders(data, args, seed, device, channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    step = classification_step(F.cross_entropy)

    def stop(history):
        crossed = crossing_epoch(history, args.target)
        return f"training error below {args.target}% at epoch {crossed:.1f}" if stop_at_target and crossed else None

    resume = args.resume and (out / "checkpoint.pt").exists()
    try:
        history = fit(model, optimizer, step, train_loader, epochs=epochs, val_loader=val_loader, device=device,
                      amp=args.amp, checkpoint_path=out / "checkpoint.pt", resume=resume,
                      history_path=out / "history.json", per_batch=("n", "errors"), stop=stop,
                      progress=not args.no_progress, desc=f"{activation} seed {seed} lr {lr:g}")
    except NonFiniteLossError as e:
        print(f"{out.name}: {e}", file=sys.stderr)
        result = {"activation": activation, "seed": seed, "lr": lr, "diverged": True, "val_error_pct": math.inf}
        write_json(result, done)
        return result
    crossed = crossing_epoch(history, args.target)
    result = {
        "activation": activation, "seed": seed, "lr": lr, "diverged": False,
        "crossed_at_epoch": crossed, "capped": crossed is None,
        "epochs_to_target": crossed if crossed is not None else float(len(history)),
        "epochs_run": len(history),
        "last_chunk_train_error_pct": chunk_errors(history[-1:])[-1][1],
        "val_error_pct": history[-1]["val_error_pct"],
        "test_error_pct": evaluate(model, test_loader, step, device, args.amp)["error_pct"],
        "train_time_s": sum(h["epoch_time_s"] for h in history),
        "curve": [(round(p, 3), round(e, 3)) for p, e in chunk_errors(history)],
    }
    atomic_save(model.state_dict(), out / "model.pt")
    write_json(result, done)
    status = (f"{args.target}% at epoch {crossed:.1f}" if crossed is not None
              else f"did not reach {args.target}% in {len(history)} epochs")
    print(f"{activation} seed {seed} lr {lr:g}: {status}; test error {result['test_error_pct']:.2f}%")
    return result


# --------------------------------------------------------------------------- Fig. 1: sweep and main runs


def select_lr(data, stats, args, out: Path, device, activations) -> dict:
    """One run per (activation, lr) of --lr-grid, seed --seed, --sweep-epochs epochs each on the 45k
    training images; the lr with the lowest validation error after the budget wins."""
    runs = []
    for act in activations:
        for lr in args.lr_grid:
            run_dir = out / "lr_sweep" / f"{act}-lr{lr:g}"
            r = train_run(act, args.seed, lr, data, stats, args, run_dir, device, epochs=args.sweep_epochs,
                          stop_at_target=False)
            (run_dir / "checkpoint.pt").unlink(missing_ok=True)   # run.json holds the result
            runs.append({k: r.get(k) for k in ("activation", "lr", "diverged", "val_error_pct",
                                               "last_chunk_train_error_pct", "crossed_at_epoch")})
    chosen = {act: min((r for r in runs if r["activation"] == act), key=lambda r: r["val_error_pct"])["lr"]
              for act in activations}
    sweep = {"criterion": f"lowest validation error after {args.sweep_epochs} epochs",
             "grid": args.lr_grid, "epochs": args.sweep_epochs, "seed": args.seed,
             "train_images": len(data.train_y), "val_images": len(data.val_y), "amp": args.amp,
             "pixel_scale": args.pixel_scale,
             "runs": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
                      for r in runs], "chosen": chosen}
    write_json(sweep, out / "lr_sweep.json")
    print(f"chosen learning rates {chosen}; set DEFAULT_LR in {Path(__file__).name}. Sweep in {out / 'lr_sweep.json'}")
    return sweep


def fig1_main(args, device, out: Path, commit: str) -> int:
    try:
        data = load_cifar10(args.data_dir)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    epochs, seeds = args.epochs or 60, args.seeds or [0, 1, 2]
    if args.quick:
        data = data.subset(1024, 256, 512)
        epochs, seeds = min(epochs, 2), args.seeds or [0]
        args.sweep_epochs, args.lr_grid = 1, args.lr_grid[:2]
    stats = channel_stats(data.train_x)  # mean and std of the training images, stored in the model
    activations = ACTIVATIONS if args.activation == "both" else (args.activation,)
    print(four_layer_table(FourLayerNet()))
    print(f"{len(data.train_y)} training images, {len(data.val_y)} validation, device {describe_device(device)}"
          f"{', bf16 autocast' if args.amp else ''}")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.select_lr:
        select_lr(data, stats, args, out, device, activations)
        return 0

    runs = []
    for act in activations:
        lr = args.lr or DEFAULT_LR[act]
        for seed in seeds:
            runs.append(train_run(act, seed, lr, data, stats, args, out / f"{act}-seed{seed}", device,
                                  epochs=epochs, stop_at_target=True))
    if any(r["diverged"] for r in runs):
        print("error: a run diverged (see above); lower its --lr", file=sys.stderr)
        return 1
    plot_fig1(runs, out / "fig1.png", args.target)
    summary = summarize_runs(runs)
    metrics = []
    if "ratio_of_means" in summary and not summary["relu_capped"]:
        metrics.append(metric("relu_speedup_x", summary["ratio_of_means"], paper=PAPER_SPEEDUP, band=SPEEDUP_BAND,
                              split="train", lower_bound=summary["ratio_is_lower_bound"],
                              mean_of_seed_ratios=round(summary["mean_of_ratios"], 4)))
    sweep_path = out / "lr_sweep.json"
    write_metrics(
        out, paper=PAPER, metrics=metrics,
        model={"module": "CNN/alexnet/model.py", "class": "FourLayerNet", "kwargs": {"activation": activations[0]},
               "weights": f"{activations[0]}-seed{seeds[0]}/model.pt"},
        seed=seeds[0], seeds=seeds, epochs=max(r["epochs_run"] for r in runs),
        # runs read back by --resume count with their own training time
        wall_time_s=max(time.perf_counter() - t0, sum(r["train_time_s"] for r in runs)),
        device=describe_device(device), commit=commit, quick=args.quick, summary=summary,
        training_error=("error of each training mini-batch in its forward pass (before its update); each epoch "
                        f"split into {CHUNKS} equal chunks of batches; crossing = end of the first chunk below "
                        f"{args.target}% (fractional epochs); a run that hits the cap of {epochs} epochs counts "
                        "as the cap and makes the ratio a lower bound"),
        lr_selection=json.loads(sweep_path.read_text()) if sweep_path.exists() else None,
        runs=[{k: v for k, v in r.items() if k != "curve"} for r in runs],
        details={"columns": ["activation", "seed", "lr", "epochs to 25%", "reached", "test error %", "minutes"],
                 "rows": [[r["activation"], r["seed"], r["lr"], round(r["epochs_to_target"], 1),
                           "no (cap)" if r["capped"] else "yes", round(r["test_error_pct"], 2),
                           round(r["train_time_s"] / 60, 1)] for r in runs]},
        hyperparameters={"optimizer": "SGD(momentum=0.9)", "batch_size": args.batch_size, "weight_decay": 0,
                         "dropout": 0, "augmentation": "none", "max_epochs": epochs, "amp": args.amp,
                         "channels_last": not args.no_channels_last, "lr": {r["activation"]: r["lr"] for r in runs},
                         "n_train": len(data.train_y), "init": f"weights N(0, {args.init_std:g}), biases 0",
                         "pixel_scale": args.pixel_scale},
    )
    for act in activations:
        s = summary[act]
        print(f"{act}: epochs to {args.target}% {s['epochs_to_target']} (mean {s['mean']:.2f}, std {s['std']:.2f})")
    if metrics:
        m = metrics[0]
        bound = ">= " if m["lower_bound"] else ""
        verdict = "PASSED" if m["passed"] else "outside the band"
        print(f"tanh / ReLU epochs: {bound}{m['ours']:.2f} (mean of per-seed ratios {m['mean_of_seed_ratios']:.2f}; "
              f"paper ~{PAPER_SPEEDUP:g}, band >= {SPEEDUP_BAND[0]:g}): {verdict}")
    print(f"results in {out}")
    return 0


# --------------------------------------------------------------------------- ImageNet: data and augmentation


def image_folders(root: Path, size: int = 256):
    """PATH/train and PATH/val as ImageFolder datasets of uint8 tensors: the shorter side rescaled to
    256, then the central 256x256 patch (Sec. 2)."""
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size), transforms.PILToTensor()])
    return {split: datasets.ImageFolder(str(Path(root) / split), tf) for split in ("train", "val")}


def rgb_statistics(dataset, n_images: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean pixel, and eigenvalues / eigenvectors (columns) of the 3x3 covariance of RGB values in
    [0, 1], from ``n_images`` training images drawn at random (every 4th pixel of each)."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(dataset), generator=g)[:n_images]
    pixels = torch.cat([to_unit_float(dataset[int(i)][0][:, ::4, ::4]).flatten(1) for i in idx], 1).double()
    mean = pixels.mean(1)
    cov = torch.cov(pixels)
    eigval, eigvec = torch.linalg.eigh(cov)
    return mean.float(), eigval.clamp_min(0).float(), eigvec.float()


def pca_lighting(x: torch.Tensor, eigval: torch.Tensor, eigvec: torch.Tensor, std: float = 0.1,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Sec. 4.1: add [p1, p2, p3] [a1 l1, a2 l2, a3 l3]^T to every pixel of an image, a_i ~ N(0, std)
    drawn once per image (x: N x 3 x H x W in [0, 1]; l_i, p_i: eigenvalues, eigenvectors)."""
    alpha = torch.randn(len(x), 3, generator=generator).to(x.device) * std
    shift = (alpha * eigval.to(x.device)) @ eigvec.to(x.device).T       # N x 3
    return x + shift[:, :, None, None]


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top : top + size, left : left + size]


def ten_crops(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Sec. 4.1 test time: the four corner patches, the centre patch, and their reflections."""
    h, w = x.shape[-2:]
    crops = [x[..., :size, :size], x[..., :size, w - size:], x[..., h - size:, :size], x[..., h - size:, w - size:],
             center_crop(x, size)]
    return crops + [c.flip(-1) for c in crops]


def imagenet_step(eigval, eigvec, size: int, device, channels_last: bool, ten_crop: bool = False):
    """Training: random size x size patch + reflection + PCA lighting; evaluation: the centre patch
    (or the mean softmax of the ten patches). Counts top-1 and top-5 errors."""

    def prepare(x):
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    def step(model, batch):
        x, y = batch[0].to(device), batch[1].to(device)
        if model.training:
            x = pca_lighting(to_unit_float(random_crop_flip(x, pad=0, size=size)), eigval, eigvec)
            out = model(prepare(x))
        elif ten_crop:
            probs = torch.stack([F.softmax(model(prepare(to_unit_float(c))).float(), 1) for c in ten_crops(x, size)])
            out = probs.mean(0).log()
        else:
            out = model(prepare(to_unit_float(center_crop(x, size))))
        loss = F.cross_entropy(out.float(), y)
        with torch.no_grad():
            top5 = out.topk(min(5, out.shape[1]), 1).indices
            errors = (top5[:, 0] != y).sum().item()
            errors5 = (top5 != y[:, None]).all(1).sum().item()
        return loss, {"n": len(y), "loss": loss.item() * len(y), "errors": errors, "top5_errors": errors5}

    return step


def imagenet_main(args, device, out: Path, commit: str) -> int:
    if args.data_dir is None or not all((Path(args.data_dir) / split).is_dir() for split in ("train", "val")):
        print("error: --dataset imagenet needs --data-dir PATH with PATH/train/<class>/*.jpg and "
              "PATH/val/<class>/*.jpg", file=sys.stderr)
        return 2
    from torch.utils.data import DataLoader, Subset

    seed_everything(args.seed)
    sets = image_folders(Path(args.data_dir))
    epochs = args.epochs or IMAGENET["epochs"]
    if args.quick:
        sets = {k: Subset(v, range(min(len(v), 64 if k == "train" else 32))) for k, v in sets.items()}
        epochs = 1
    classes = sets["train"].dataset.classes if args.quick else sets["train"].classes
    mean, eigval, eigvec = rgb_statistics(sets["train"], min(args.pca_images, len(sets["train"])), args.seed)
    print(f"{len(sets['train'])} training images, {len(sets['val'])} validation, {len(classes)} classes; "
          f"mean pixel {[round(v, 4) for v in mean.tolist()]}, RGB eigenvalues {[f'{v:.3g}' for v in eigval.tolist()]}")
    model = AlexNet(num_classes=len(classes), input_size=args.input_size, mean=mean.tolist()).to(device)
    channels_last = not args.no_channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    print(alexnet_layer_table(model))
    g = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(sets["train"], batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                              generator=g, persistent_workers=args.workers > 0)
    val_loader = DataLoader(sets["val"], batch_size=args.batch_size, num_workers=args.workers)
    lr = args.lr or IMAGENET["lr"]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=IMAGENET["momentum"],
                                weight_decay=IMAGENET["weight_decay"])
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1,
                                                           patience=args.plateau_patience)
    step = imagenet_step(eigval, eigvec, args.input_size, device, channels_last)
    out.mkdir(parents=True, exist_ok=True)
    try:
        history = fit(model, optimizer, step, train_loader, epochs=epochs, val_loader=val_loader, scheduler=scheduler,
                      scheduler_metric="val_error_pct", device=device, amp=args.amp,
                      checkpoint_path=out / "checkpoint.pt", resume=args.resume, history_path=out / "history.json",
                      curves_path=out / "curves.png", progress=not args.no_progress, desc="AlexNet")
    except (NonFiniteLossError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    final_step = imagenet_step(eigval, eigvec, args.input_size, device, channels_last, ten_crop=args.ten_crop)
    val = evaluate(model, val_loader, final_step, device, args.amp)
    top1, top5 = val["error_pct"], 100.0 * val["top5_errors"]
    atomic_save(model.state_dict(), out / "model.pt")
    split = "val (10 crops)" if args.ten_crop else "val (centre crop)"
    write_metrics(
        out, paper=PAPER,
        metrics=[metric("top1_error_pct", top1, paper=37.5, band=(36.0, 39.0), split=split),
                 metric("top5_error_pct", top5, paper=17.0, band=(15.5, 18.5), split=split)],
        model={"module": "CNN/alexnet/model.py", "class": "AlexNet",
               "kwargs": {"num_classes": len(classes), "input_size": args.input_size}},
        seed=args.seed, epochs=len(history), wall_time_s=sum(h["epoch_time_s"] for h in history),
        device=describe_device(device), commit=commit, quick=args.quick, dataset="imagenet (ImageFolder)",
        classes=len(classes), pca={"eigenvalues": eigval.tolist(), "eigenvectors": eigvec.tolist()},
        hyperparameters={**IMAGENET, "lr": lr, "epochs": epochs, "batch_size": args.batch_size,
                         "plateau_patience": args.plateau_patience, "amp": args.amp},
    )
    print(f"validation top-1 error {top1:.2f}%, top-5 {top5:.2f}% ({split}); "
          f"the paper: 37.5% / 17.0% on ILSVRC-2010 test; results in {out}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    commit = git_commit()
    device = resolve_device(args.device)
    if args.dataset == "imagenet":
        name = "alexnet-imagenet-quick" if args.quick else "alexnet-imagenet"
        out = args.out or (PAPER_DIR.parents[1] / "runs" / name)
        return imagenet_main(args, device, Path(out), commit)
    return fig1_main(args, device, output_dir(args, PAPER_DIR), commit)


if __name__ == "__main__":
    sys.exit(main())

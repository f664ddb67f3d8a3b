"""Train a CIFAR-10 ResNet with the recipe of He et al. (2015), Sec. 4.2, and check Table 6.

    python CNN/resnet/train.py                 # ResNet-20: 164 epochs (64k iterations) on all 50k images -> results/
    python CNN/resnet/train.py --resume        # continue the interrupted run from results/checkpoint.pt
    python CNN/resnet/train.py --depth 56      # ResNet-56 -> results/resnet56/ (--plain: plain-56 -> results/plain56/)
    python CNN/resnet/train.py --quick         # seconds: a tiny subset, two epochs, writes runs/resnet-quick/
    python CNN/resnet/train.py --evaluate CNN/resnet/results/model.pt

The recipe (Sec. 4.2): SGD with momentum 0.9 and weight decay 1e-4, batch 128, learning rate 0.1 divided by
10 at 32k and 48k iterations, stopped at 64k; 4 pixels padded on each side and a random 32x32 crop, random
horizontal flips; the per-pixel mean subtracted; the single 32x32 view tested. At 391 batches an epoch the
divisions fall after epochs 82 and 123 of 164 (half and three quarters of --epochs).

Target (Table 6): ResNet-20 test error 8.75%, band 8.3-9.2%.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common.cli import Run, base_parser, run
from common.data import image_loaders, load_cifar10, random_crop_flip, to_unit_float
from common.results import metric, print_metrics
from common.summary import count_parameters, format_layer_table, layer_table
from common.training import TestCurve, atomic_save, classification_step, evaluate, fit, load_weights
from CNN.resnet.model import SHORTCUTS, TABLE6, CifarResNet

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "He, Zhang, Ren & Sun 2015, Deep Residual Learning for Image Recognition"
EPOCHS = 164                  # 64k iterations of 391 batches (Sec. 4.2)
LR_DIVISIONS = (0.5, 0.75)    # 32k and 48k of 64k iterations, as fractions of the run
BAND_HALF_WIDTH = 0.45        # Table 6 +/- 0.45 points: the band of the issue for ResNet-20 (8.3-9.2%)
QUICK_SUBSET = (1024, 256, 512)   # --quick: training, validation and test images


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=EPOCHS, batch_size=128, lr=0.1, paper_dir=PAPER_DIR)
    p.add_argument("--depth", type=int, default=20, help="6n+2 layers: 20, 32, 44, 56, 110, ...")
    p.add_argument("--plain", action="store_true", help="the plain net of the same depth (no shortcuts, Fig. 6)")
    p.add_argument("--shortcut", choices=SHORTCUTS, default="A",
                   help="A = zero-padding for increased dimensions (the paper's CIFAR nets), B = projections")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="L2 weight decay")
    p.add_argument("--n-val", type=int, default=0,
                   help="training images held out for validation (the END of the training set); the paper "
                        "chose on a 45k/5k split (5000) and reports the model trained on all 50k (0)")
    p.add_argument("--no-channels-last", action="store_true", help="NCHW memory layout (slower)")
    p.add_argument("--evaluate", type=Path, default=None, metavar="MODEL_PT",
                   help="only evaluate a saved state_dict (of --depth/--plain/--shortcut) on the test set")
    p.epilog = ("Output: results/ for ResNet-20 with option A, else results/<arch> (e.g. results/resnet56, "
                "results/plain20, results/resnet20-B), unless --out is given.")
    args = p.parse_args(argv)
    if args.depth < 8 or (args.depth - 2) % 6:
        p.error(f"--depth must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, ...), got {args.depth}")
    if not 0 <= args.n_val < 50000:
        p.error(f"--n-val must be in [0, 50000), got {args.n_val}")
    if args.out is None and not args.quick and arch_name(args) != "resnet20":
        args.out = PAPER_DIR / "results" / arch_name(args)
    return args


def arch_name(args) -> str:
    return f"{'plain' if args.plain else 'resnet'}{args.depth}" + ("-B" if args.shortcut == "B" else "")


def build_model(args) -> CifarResNet:
    return CifarResNet.from_depth(args.depth, shortcut=args.shortcut, plain=args.plain)


def model_kwargs(model: CifarResNet, args) -> dict:
    return {"n": model.n, "shortcut": args.shortcut, "plain": args.plain}


def plot_fig6(history: list[dict], path: Path, batches_per_epoch: int, label: str) -> None:
    """The curves drawn the way Fig. 6 draws them: training error thin, test error bold, against iterations."""
    import matplotlib.pyplot as plt

    from common.plots import save_figure

    it = [h["epoch"] * batches_per_epoch / 1000 for h in history]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    line, = ax.plot(it, [h["train_error_pct"] for h in history], lw=0.8, label=f"{label} training error")
    ax.plot(it, [h["test_error_pct"] for h in history], lw=2, color=line.get_color(), label=f"{label} test error")
    ax.set(xlabel="iterations (thousands)", ylabel="error (%)", ylim=(0, 20))
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def evaluate_fix(args) -> str:
    return (f"pass a state_dict of {arch_name(args)} saved by train.py (e.g. CNN/resnet/results/model.pt), "
            "with the same --depth, --plain and --shortcut")


def paper_metrics(model: CifarResNet, args, test_error: float) -> list[dict]:
    """Table 6's test error and parameter count, for the residual nets it lists (option A)."""
    if args.plain or args.shortcut != "A" or args.depth not in TABLE6:
        return []
    params, error = TABLE6[args.depth]
    return [
        metric("test_error_pct", test_error, paper=error, band=(error - BAND_HALF_WIDTH, error + BAND_HALF_WIDTH),
               split="test", claim=f"Table 6: CIFAR-10 test error of ResNet-{args.depth}, %"),
        # printed to two significant figures: 0.27M covers 0.265M-0.275M
        metric("parameters_M", count_parameters(model) / 1e6, paper=params / 1e6,
               band=(params / 1e6 - 0.005, params / 1e6 + 0.005) if params < 1e6 else (1.65, 1.75),
               split="model", claim=f"Table 6: parameters of ResNet-{args.depth}, millions"),
    ]


def train(r: Run) -> int:
    args, device = r.args, r.device
    model = build_model(args).to(device)
    step = classification_step(F.cross_entropy)
    if args.evaluate is not None:  # the file first: a bad one fails before the data are read
        load_weights(model, args.evaluate, device, fix=evaluate_fix(args))
    data = load_cifar10(args.data_dir, n_val=args.n_val)
    epochs = args.epochs
    if args.quick:
        data, epochs = data.subset(*QUICK_SUBSET), min(args.epochs, 2)
    channels_last = not args.no_channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    # Sec. 4.2: 4 pixels padded on each side, a random 32x32 crop and a random horizontal flip, per image
    loaders = image_loaders(data, batch_size=args.batch_size, seed=args.seed, device=device,
                            channels_last=channels_last, augment=random_crop_flip)

    if args.evaluate is not None:
        test = evaluate(model, loaders.test, step, device)
        print(f"test error {test['error_pct']:.2f}% on {len(data.test_y)} images ({args.evaluate})")
        return 0

    with torch.no_grad():   # Sec. 4.2: "the per-pixel mean subtracted", the mean of the training images
        model.mean.copy_(to_unit_float(data.train_x).mean(0).to(device))
    print(format_layer_table(layer_table(model, torch.zeros(1, 3, 32, 32)), width=10))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    milestones = [round(f * epochs) for f in LR_DIVISIONS]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    print(f"{arch_name(args)}: {count_parameters(model):,} parameters; training on {len(data.train_y)} images "
          f"({len(loaders.train)} batches an epoch, {epochs * len(loaders.train):,} iterations, lr / 10 after "
          f"epochs {milestones}); {r.precision}")
    history = fit(model, optimizer, step, loaders.train, epochs=epochs, val_loader=loaders.val, scheduler=scheduler,
                  device=device, amp=args.amp, out=r.out, resume=r.resumes(),
                  on_epoch_end=TestCurve(model, loaders.test, step, device, args.amp),
                  progress=not args.no_progress, desc=arch_name(args))

    t_test = time.perf_counter()
    test = evaluate(model, loaders.test, step, device)   # fp32, once, the model after the last epoch
    atomic_save(model.state_dict(), r.out / "model.pt")
    plot_fig6(history, r.out / "fig6.png", len(loaders.train), arch_name(args))
    train_time = sum(h["train_time_s"] for h in history)
    record = r.write_metrics(
        paper=PAPER, model=model, model_kwargs=model_kwargs(model, args), epochs=len(history), weights="model.pt",
        metrics=paper_metrics(model, args, test["error_pct"]),
        # every epoch's time, also those of an interrupted run that --resume continued, plus the test pass
        training_time_s=sum(h["epoch_time_s"] for h in history) + time.perf_counter() - t_test,
        architecture=arch_name(args), test_error_pct=round(test["error_pct"], 4), parameters=count_parameters(model),
        iterations=len(history) * len(loaders.train),
        train_images_per_s=round(len(history) * len(data.train_y) / train_time, 1),
        **({"validation": {"error_pct": round(history[-1]["val_error_pct"], 4),
                           "images": f"last {len(data.val_y)} of the training set"}} if loaders.val else {}),
        hyperparameters={"batch_size": args.batch_size, "lr": args.lr, "momentum": args.momentum,
                         "weight_decay": args.weight_decay, "lr_divided_after_epochs": milestones,
                         "n_train": len(data.train_y), "n_val": len(data.val_y), "amp": args.amp,
                         "channels_last": channels_last},
    )
    print_metrics(record["metrics"], r.out)
    print(f"test error {test['error_pct']:.2f}% ({arch_name(args)}, after {len(history)} epochs)")
    return 0


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: the shipped model on the 10,000 test images (fp32, as the run measured it:
    exact), and its parameter count."""
    from common.data import unit_float
    from common.verify import Check, claimed, parameters_check, rebuild, test_error_pct

    model = rebuild(record, results)
    error = test_error_pct(model, load_cifar10(n_val=0), classification_step(F.cross_entropy), transform=unit_float())
    return [Check("test_error_pct", claimed(record, "test_error_pct"), error, 0.005,
                  "the 10,000 CIFAR-10 test images, fp32"),
            parameters_check(record, model)]


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())

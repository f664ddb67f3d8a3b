"""Train LeNet-5 on MNIST with the paper's setup (LeCun et al. 1998, Sec. III) and check its number.

    python CNN/lenet5/train.py                 # full run: 20 passes, writes CNN/lenet5/results/
    python CNN/lenet5/train.py --quick         # seconds: tiny subset, one epoch, writes runs/
    python CNN/lenet5/train.py --evaluate CNN/lenet5/results/model.pt

Target (Sec. III.C, Fig. 14): test error 0.95% without distortions, band 0.80-1.15%.
"""

from __future__ import annotations

import functools
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common.cli import base_parser, output_dir, positive_int
from common.data import DataError, TensorLoader, load_mnist
from common.results import git_commit, metric, write_metrics
from common.training import (NonFiniteLossError, atomic_save, classification_step, describe_device, evaluate,
                             fit, load_checkpoint, resolve_device, seed_everything)
from CNN.lenet5.model import MODELS, LeNet5, LeNet5Modern, format_layer_table, map_loss

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document Recognition"

# Sec. III.C: global learning rate 0.0005 for passes 1-2, 0.0002 for 3-5, 0.0001 for 6-8,
# 0.00005 for 9-12 and 0.00001 afterwards. We keep this shape, relative to --lr (see README).
PAPER_SCHEDULE = (1.0, 1.0, 0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1)
PAPER_SCHEDULE_TAIL = 0.02


def paper_schedule(epoch: int) -> float:
    return PAPER_SCHEDULE[epoch] if epoch < len(PAPER_SCHEDULE) else PAPER_SCHEDULE_TAIL


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=20, batch_size=32, lr=0.002, paper_dir=PAPER_DIR)
    p.add_argument("--variant", choices=sorted(MODELS), default="paper",
                   help="paper = LeNet-5 of Sec. II.B; modern = ReLU/max-pool/softmax (not the paper's)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (the paper used SDLM, see README)")
    p.add_argument("--rbf-j", type=float, default=10.0, help="the constant j of Eq. 9")
    p.add_argument("--n-val", type=positive_int, default=5000,
                   help="validation images carved from the END of the training set")
    p.add_argument("--evaluate", type=Path, default=None, metavar="MODEL_PT",
                   help="only evaluate a saved state_dict on the test set")
    return p.parse_args(argv)


def make_step(variant: str, rbf_j: float):
    if variant == "paper":
        return classification_step(functools.partial(map_loss, j=rbf_j), predict=LeNet5.predict)
    return classification_step(F.cross_entropy, predict=LeNet5Modern.predict)


def main(argv=None) -> int:
    args = parse_args(argv)
    commit = git_commit()  # the code that trains, before anything else can change
    device = resolve_device(args.device)
    seed_everything(args.seed)
    try:
        data = load_mnist(args.data_dir, n_val=args.n_val)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    epochs = args.epochs
    if args.quick:
        data, epochs = data.subset(1024, 512, 512), 1
    model = MODELS[args.variant]().to(device)
    step = make_step(args.variant, args.rbf_j)
    test_loader = TensorLoader(data.test_x, data.test_y, batch_size=1000, device=device)

    if args.evaluate is not None:
        model.load_state_dict(load_checkpoint(args.evaluate, map_location=device))
        test = evaluate(model, test_loader, step, device)
        print(f"test error {test['error_pct']:.2f}% on {len(data.test_y)} images ({args.evaluate})")
        return 0

    print(format_layer_table(model))
    out = output_dir(args, PAPER_DIR)
    out.mkdir(parents=True, exist_ok=True)
    train_loader = TensorLoader(data.train_x, data.train_y, batch_size=args.batch_size, shuffle=True,
                                seed=args.seed, device=device)
    val_loader = TensorLoader(data.val_x, data.val_y, batch_size=1000, device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, paper_schedule)
    print(f"training on {len(data.train_y)} images, validating on {len(data.val_y)}, device {describe_device(device)}")
    try:
        history = fit(model, optimizer, step, train_loader, epochs=epochs, val_loader=val_loader,
                      scheduler=scheduler, device=device, amp=args.amp, checkpoint_path=out / "checkpoint.pt",
                      resume=args.resume, history_path=out / "history.json", curves_path=out / "curves.png",
                      progress=not args.no_progress, desc="LeNet-5")
    except (NonFiniteLossError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    t_test = time.perf_counter()
    test = evaluate(model, test_loader, step, device, args.amp)
    atomic_save(model.state_dict(), out / "model.pt")
    wall = sum(h["epoch_time_s"] for h in history) + time.perf_counter() - t_test
    cls = MODELS[args.variant].__name__
    record = write_metrics(
        out, paper=PAPER,
        metrics=[metric("test_error_pct", test["error_pct"], paper=0.95, band=(0.80, 1.15), split="test")],
        validation={"error_pct": round(history[-1]["val_error_pct"], 4),
                    "images": f"last {len(data.val_y)} of the training set"},
        model={"module": "CNN/lenet5/model.py", "class": cls, "kwargs": {}},
        seed=args.seed, epochs=len(history), wall_time_s=wall, device=describe_device(device), commit=commit,
        quick=args.quick, variant=args.variant,
        hyperparameters={"batch_size": args.batch_size, "lr": args.lr, "momentum": args.momentum,
                         "rbf_j": args.rbf_j, "schedule": "paper shape x lr", "n_train": len(data.train_y),
                         "n_val": len(data.val_y), "amp": args.amp},
    )
    m = record["metrics"][0]
    print(f"test error {m['ours']:.2f}% (paper {m['paper']}%, band {m['band'][0]}-{m['band'][1]}%): "
          f"{'PASSED' if m['passed'] else 'outside the band'}; results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train LeNet-5 on MNIST with the paper's setup (LeCun et al. 1998, Sec. III) and check its number.

    python CNN/lenet5/train.py                 # full run: 20 passes, writes CNN/lenet5/results/
    python CNN/lenet5/train.py --quick         # seconds: tiny subset, one or two epochs, writes runs/
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

from common.cli import Run, base_parser, positive_int, run
from common.data import TensorLoader, load_mnist
from common.results import metric, print_metrics
from common.summary import format_layer_table, layer_table
from common.training import (atomic_save, classification_step, describe_device, evaluate, fit, load_weights)
from CNN.lenet5.model import MODELS, PAPER_PARAMETERS, LeNet5, LeNet5Modern, map_loss

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "LeCun, Bottou, Bengio & Haffner 1998, Gradient-Based Learning Applied to Document Recognition"
CLAIM = "MNIST test error of LeNet-5, % (no distortions; Sec. III.C)"

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
                   help="only evaluate a saved state_dict (of --variant) on the test set")
    return p.parse_args(argv)


def make_step(variant: str, rbf_j: float):
    if variant == "paper":
        return classification_step(functools.partial(map_loss, j=rbf_j), predict=LeNet5.predict)
    return classification_step(F.cross_entropy, predict=LeNet5Modern.predict)


def layer_summary(model: torch.nn.Module) -> str:
    """Output shape and trainable parameters per layer, beside Sec. II.B's counts (paper variant only)."""
    paper = PAPER_PARAMETERS if isinstance(model, LeNet5) else None
    rows = layer_table(model, torch.zeros(1, 1, 28, 28), paper=paper)
    return format_layer_table(rows, paper_total=sum(paper.values()) if paper else None)


def evaluate_fix(variant: str) -> str:
    return f"pass a state_dict of LeNet-5 --variant {variant} saved by train.py (e.g. CNN/lenet5/results/model.pt)"


def train(r: Run) -> int:
    args, device = r.args, r.device
    model = MODELS[args.variant]().to(device)
    step = make_step(args.variant, args.rbf_j)
    if args.evaluate is not None:  # the file first: a bad one fails before the data are read
        load_weights(model, args.evaluate, device, fix=evaluate_fix(args.variant))
    data = load_mnist(args.data_dir, n_val=args.n_val)
    epochs = args.epochs
    if args.quick:
        data, epochs = data.subset(1024, 512, 512), min(args.epochs, 2)
    test_loader = TensorLoader(data.test_x, data.test_y, batch_size=1000, device=device)

    if args.evaluate is not None:
        test = evaluate(model, test_loader, step, device)
        print(f"test error {test['error_pct']:.2f}% on {len(data.test_y)} images ({args.evaluate})")
        return 0

    print(layer_summary(model))
    train_loader = TensorLoader(data.train_x, data.train_y, batch_size=args.batch_size, shuffle=True,
                                seed=args.seed, device=device)
    val_loader = TensorLoader(data.val_x, data.val_y, batch_size=1000, device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, paper_schedule)
    print(f"training on {len(data.train_y)} images, validating on {len(data.val_y)}, device {describe_device(device)}")
    history = fit(model, optimizer, step, train_loader, epochs=epochs, val_loader=val_loader, scheduler=scheduler,
                  device=device, amp=args.amp, out=r.out, resume=r.resumes(), progress=not args.no_progress,
                  desc="LeNet-5")

    t_test = time.perf_counter()
    test = evaluate(model, test_loader, step, device, args.amp)
    atomic_save(model.state_dict(), r.out / "model.pt")
    record = r.write_metrics(
        paper=PAPER, model=model, epochs=len(history), weights="model.pt",
        metrics=[metric("test_error_pct", test["error_pct"], paper=0.95, band=(0.80, 1.15), split="test",
                        claim=CLAIM)],
        # every epoch's time, also those of an interrupted run that --resume continued, plus the test pass
        training_time_s=sum(h["epoch_time_s"] for h in history) + time.perf_counter() - t_test,
        validation={"error_pct": round(history[-1]["val_error_pct"], 4),
                    "images": f"last {len(data.val_y)} of the training set"},
        variant=args.variant,
        hyperparameters={"batch_size": args.batch_size, "lr": args.lr, "momentum": args.momentum,
                         "rbf_j": args.rbf_j, "schedule": "paper shape x lr", "n_train": len(data.train_y),
                         "n_val": len(data.val_y), "amp": args.amp},
    )
    print_metrics(record["metrics"], r.out)
    return 0


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: the shipped model on the 10,000 test images (fp32, deterministic: exact)."""
    from common.verify import Check, claimed, rebuild, test_error_pct

    model = rebuild(record, results)
    step = make_step(record.get("variant", "paper"), record["hyperparameters"].get("rbf_j", 10.0))
    error = test_error_pct(model, load_mnist(n_val=record["hyperparameters"].get("n_val", 5000)), step)
    return [Check("test_error_pct", claimed(record, "test_error_pct"), error, 0.005,
                  "the 10,000 MNIST test images, fp32")]


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())

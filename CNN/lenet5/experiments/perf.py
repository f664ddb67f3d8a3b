"""Performance analysis of LeNet-5 (issue 39), measured by common.perf: throughput, step and epoch time, peak
memory of training and evaluation, the cost along the batch size, and a profile of one training step.

The step is train.py's: the paper variant, the Eq. 9 loss, SGD with momentum, its defaults (batch 32), batches
drawn from MNIST in memory (TensorLoader), bf16 autocast where train.py's --amp auto picks it.

    python CNN/lenet5/experiments/perf.py           # -> CNN/lenet5/results/experiments/perf/ (about 2 minutes)
    python CNN/lenet5/experiments/perf.py --quick   # seconds: a smoke test -> runs/lenet5-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import perf
from common.data import TensorLoader, load_mnist
from CNN.lenet5.model import MODELS
from CNN.lenet5.train import make_step
from CNN.lenet5.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
BATCHES = (8, 32, 128, 512)
EVAL_BATCH = 1000          # train.py's validation and test batches


def workload(x, y, test_x, test_y, batch_size: int, device, amp: bool) -> perf.Workload:
    """LeNet-5 as train.py trains it, on ``x``/``y`` (uint8 images) in batches of ``batch_size``."""
    d = train_defaults([])
    model = MODELS[d.variant]().to(device)
    step = make_step(d.variant, d.rbf_j)
    optimizer = torch.optim.SGD(model.parameters(), lr=d.lr, momentum=d.momentum)
    train = TensorLoader(x, y, batch_size=batch_size, shuffle=True, seed=0, device=device)
    test = TensorLoader(test_x, test_y, batch_size=min(EVAL_BATCH, len(test_y)), device=device)
    return perf.Workload(model, perf.fit_step(model, optimizer, step, train, device=device, amp=amp), batch_size,
                         eval_step=perf.eval_step(model, step, test, device=device, amp=amp),
                         eval_items=min(EVAL_BATCH, len(test_y)), device=device)


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR)
    d = train_defaults([])
    data = load_mnist(args.data_dir, n_val=d.n_val)
    batches = BATCHES[:3] if args.quick else BATCHES
    x, y = perf.subset(data.train_x, 4 * max(batches)), perf.subset(data.train_y, 4 * max(batches))
    n_test = 200 if args.quick else 2 * EVAL_BATCH
    test_x, test_y = perf.subset(data.test_x, n_test), perf.subset(data.test_y, n_test)
    points = [(str(b), perf.builder(workload, x=x, y=y, test_x=test_x, test_y=test_y, batch_size=b,
                                    device=s.device, amp=s.amp)) for b in batches]
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="images", axis="batch size", points=points, main=str(d.batch_size),
        workload=f"LeNet-5 ({d.variant} variant), batch {d.batch_size}, Eq. 9 loss, SGD with momentum {d.momentum}",
        eval_desc=f"the test images in batches of {min(EVAL_BATCH, n_test)}", device=s.device, precision=s.precision,
        quick=args.quick, epoch=(len(data.train_y), f"{len(data.train_y):,} training images"),
        data_bytes=perf.nbytes(data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y),
        notes=[f"Each epoch also evaluates the {len(data.val_y):,} validation images (not in the epoch time).",
               "Batch size is the paper's own knob: 32 here; Sec. III used per-example updates (SDLM)."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

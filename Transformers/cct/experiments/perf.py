"""Performance analysis of the Compact Convolutional Transformers of Hassani et al. (2021) (issue 39), measured
by common.perf: throughput, step and epoch time, peak memory of training and evaluation, the cost across the
named sizes CCT-2/3x2, CCT-4/3x2 and CCT-6/3x2, and a profile of one training step.

The step is train.py's: AdamW, label smoothing 0.1, batch 128, AutoAugment's CIFAR-10 policy then a random crop
and flip on the uint8 batch, channels_last, bf16 autocast where --amp auto picks it. Evaluation: the per-epoch
test curve (batches of 1,000, in the training precision).

    python Transformers/cct/experiments/perf.py           # -> Transformers/cct/results/experiments/perf/ (~4 min)
    python Transformers/cct/experiments/perf.py --quick   # seconds: a smoke test -> runs/cct-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from common import perf
from common.data import ImageSplits, image_loaders, load_cifar10
from common.training import classification_step
from Transformers.cct.model import CompactTransformer
from Transformers.cct.train import augmentation
from Transformers.cct.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
NAMES = ("cct_2_3x2", "cct_4_3x2", "cct_6_3x2")


def workload(name: str, data: ImageSplits, batch_size: int, eval_batch: int, device, amp: bool) -> perf.Workload:
    """The named CCT trained as train.py trains it, on the uint8 images of ``data``."""
    d = train_defaults([])
    model = CompactTransformer(name).to(device).to(memory_format=torch.channels_last)
    loaders = image_loaders(data, batch_size=batch_size, seed=0, device=device, channels_last=True,
                            augment=augmentation(), eval_batch=eval_batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=d.lr, weight_decay=d.weight_decay)
    train_step = classification_step(lambda out, y: F.cross_entropy(out, y, label_smoothing=d.label_smoothing))
    step = classification_step(F.cross_entropy)
    return perf.Workload(model, perf.fit_step(model, optimizer, train_step, loaders.train, device=device, amp=amp),
                         batch_size, eval_step=perf.eval_step(model, step, loaders.test, device=device, amp=amp),
                         eval_items=eval_batch, device=device, info={"tokens": model.tokens})


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR)
    d = train_defaults([])
    data = load_cifar10(args.data_dir, n_val=d.n_val)
    batch, eval_batch = (8, 32) if args.quick else (d.batch_size, 1000)
    small = data.subset(4 * batch, 0, eval_batch)
    small = ImageSplits(*(t.clone() for t in (small.train_x, small.train_y, small.val_x, small.val_y,
                                              small.test_x, small.test_y)))
    points = [(name, perf.builder(workload, name=name, data=small, batch_size=batch, eval_batch=eval_batch,
                                  device=s.device, amp=s.amp)) for name in NAMES]
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="images", axis="named size", points=points, main=d.model,
        workload=f"{d.model}, batch {batch}, AdamW, AutoAugment + crop + flip",
        eval_desc=f"the test images in batches of {eval_batch}", device=s.device, precision=s.precision,
        quick=args.quick, epoch=(len(data.train_y), f"{len(data.train_y):,} training images, "
                                        f"{-(-len(data.train_y) // d.batch_size)} steps"),
        data_bytes=perf.nbytes(data.train_x, data.train_y, data.test_x, data.test_y),
        notes=["Each epoch also evaluates the 10,000 test images for the per-epoch curve (not in the epoch time).",
               "AutoAugment runs on the uint8 batch before the step (common.augment): its share shows in the profile."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

"""Performance analysis of the CIFAR-10 ResNets of He et al. (2015) (issue 39), measured by common.perf:
throughput, step and epoch time, peak memory of training and evaluation, the cost along the depth (20, 32, 44,
56: Table 6's nets), and a profile of one training step.

The step is train.py's: option A shortcuts, SGD with momentum 0.9 and weight decay 1e-4, batch 128, the random
crop and flip on the uint8 batch, channels_last, bf16 autocast where --amp auto picks it. Evaluation: the
per-epoch test curve (batches of 1,000, in the training precision).

    python CNN/resnet/experiments/perf.py           # -> CNN/resnet/results/experiments/perf/ (about 4 minutes)
    python CNN/resnet/experiments/perf.py --quick   # seconds: a smoke test -> runs/resnet-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from common import perf
from common.data import ImageSplits, image_loaders, load_cifar10, random_crop_flip
from common.training import classification_step
from CNN.resnet.model import CifarResNet
from CNN.resnet.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
DEPTHS = (20, 32, 44, 56)


def workload(depth: int, data: ImageSplits, mean: torch.Tensor, batch_size: int, eval_batch: int, device,
             amp: bool) -> perf.Workload:
    """ResNet-``depth`` as train.py trains it, on the uint8 images of ``data``."""
    d = train_defaults([])
    model = CifarResNet.from_depth(depth, shortcut=d.shortcut, plain=d.plain).to(device)
    channels_last = not d.no_channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    with torch.no_grad():
        model.mean.copy_(mean.to(device))
    loaders = image_loaders(data, batch_size=batch_size, seed=0, device=device, channels_last=channels_last,
                            augment=random_crop_flip, eval_batch=eval_batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=d.lr, momentum=d.momentum, weight_decay=d.weight_decay)
    step = classification_step(F.cross_entropy)
    return perf.Workload(model, perf.fit_step(model, optimizer, step, loaders.train, device=device, amp=amp),
                         batch_size, eval_step=perf.eval_step(model, step, loaders.test, device=device, amp=amp),
                         eval_items=eval_batch, device=device)


def pixel_mean(images: torch.Tensor) -> torch.Tensor:
    """The per-pixel mean of uint8 images in [0, 1] (train.py's to_unit_float(x).mean(0)), in slices."""
    total = sum(part.double().sum(0) for part in images.split(5000))
    return (total / len(images) / 255).float()


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR)
    d = train_defaults([])
    data = load_cifar10(args.data_dir, n_val=d.n_val)
    batch, eval_batch = (8, 32) if args.quick else (d.batch_size, 1000)
    depths = DEPTHS[:3] if args.quick else DEPTHS
    small = data.subset(4 * batch, 0, eval_batch)
    small = ImageSplits(*(t.clone() for t in (small.train_x, small.train_y, small.val_x, small.val_y,
                                              small.test_x, small.test_y)))
    mean = pixel_mean(data.train_x)
    points = [(str(n), perf.builder(workload, depth=n, data=small, mean=mean, batch_size=batch,
                                    eval_batch=eval_batch, device=s.device, amp=s.amp)) for n in depths]
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="images", axis="depth", points=points, main=str(d.depth),
        workload=f"ResNet-{d.depth} (option A), batch {batch}, SGD with momentum, crop and flip",
        eval_desc=f"the test images in batches of {eval_batch}", device=s.device, precision=s.precision,
        quick=args.quick, epoch=(len(data.train_y), f"{len(data.train_y):,} training images, "
                                        f"{-(-len(data.train_y) // d.batch_size)} steps"),
        data_bytes=perf.nbytes(data.train_x, data.train_y, data.test_x, data.test_y),
        notes=["Each epoch also evaluates the 10,000 test images for the curve of Fig. 6 (not in the epoch time).",
               "Parameters grow with depth as 6n+2 layers of 3x3 convolutions: the step time grows about "
               "linearly in n."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

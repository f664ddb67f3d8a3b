"""Performance analysis of the CIFAR-10 networks of Krizhevsky et al. (2012) (issue 39), measured by common.perf:
throughput, step and epoch time, peak memory of training and evaluation, the cost across the paper's CIFAR-10
networks, and a profile of one training step.

The main step is Fig. 1's, as train.py runs it: the four-layer net with ReLUs, SGD with momentum 0.9 at its
learning rate, batch 128, channels_last, the per-batch training-error bookkeeping, bf16 autocast where --amp auto
picks it. The sweep adds Fig. 1's tanh net and Sec. 3.3's conv-local nets without and with response
normalisation (lrn_cifar.py's step: random 24x24 patches and their mirror images, cuda-convnet's per-layer rates).

    python CNN/alexnet/experiments/perf.py           # -> CNN/alexnet/results/experiments/perf/ (about 3 minutes)
    python CNN/alexnet/experiments/perf.py --quick   # seconds: a smoke test -> runs/alexnet-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from common import perf
from common.data import ImageSplits, channel_stats, image_loaders, load_cifar10, random_crop_flip
from common.training import classification_step
from CNN.alexnet.lrn_cifar import LR_W, NETS, nine_view_step, optimizer_for
from CNN.alexnet.model import CIFAR_CROP, PIXEL_SCALE, ConvLocalNet, FourLayerNet, mean_patch
from CNN.alexnet.train import DEFAULT_LR, ChunkedTrainingError
from CNN.alexnet.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
NETWORKS = {"Fig. 1, ReLU": ("fig1", "relu"), "Fig. 1, tanh": ("fig1", "tanh"),
            "Sec. 3.3, no LRN": ("sec33", "plain"), "Sec. 3.3, LRN": ("sec33", "lrn")}


def fig1(activation: str, data: ImageSplits, mean: list, batch_size: int, eval_batch: int, device,
         amp: bool) -> perf.Workload:
    """Fig. 1's net as train.py's train_run trains it (the raw 0-255 pixel scale, its learning rate)."""
    d = train_defaults([])
    channels_last = not d.no_channels_last
    model = FourLayerNet(activation, mean=mean, std=[PIXEL_SCALE] * 3, init_std=d.init_std).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    loaders = image_loaders(data, batch_size=batch_size, seed=0, device=device, channels_last=channels_last,
                            eval_batch=eval_batch)
    optimizer = torch.optim.SGD(model.parameters(), lr=DEFAULT_LR[activation], momentum=0.9)
    step = ChunkedTrainingError(classification_step(F.cross_entropy)).step
    return perf.Workload(model, perf.fit_step(model, optimizer, step, loaders.train, device=device, amp=amp),
                         batch_size, eval_step=perf.eval_step(model, step, loaders.test, device=device, amp=amp),
                         eval_items=eval_batch, device=device)


def sec33(net: str, data: ImageSplits, mean_image: torch.Tensor, batch_size: int, eval_batch: int, device,
          amp: bool) -> perf.Workload:
    """Sec. 3.3's conv-local net as lrn_cifar.py's train_net trains it; evaluated on nine views."""
    model = ConvLocalNet(NETS[net], mean_image=mean_image).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = optimizer_for(model, LR_W)
    base = classification_step(F.cross_entropy)

    def step(m, batch):                                 # random 24x24 patches and their mirror images
        x, y = batch
        x = random_crop_flip(x, pad=0, size=CIFAR_CROP)
        return base(m, (x.contiguous(memory_format=torch.channels_last) if channels_last else x, y))

    loaders = image_loaders(data, batch_size=batch_size, seed=0, device=device, drop_last=True, eval_batch=eval_batch)
    return perf.Workload(model, perf.fit_step(model, optimizer, step, loaders.train, device=device, amp=amp),
                         batch_size, eval_step=perf.eval_step(model, nine_view_step, loaders.test, device=device,
                                                              amp=amp), eval_items=eval_batch, device=device)


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR)
    d = train_defaults([])
    data = load_cifar10(args.data_dir)
    batch, eval_batch = (16, 32) if args.quick else (d.batch_size, 1000)
    small = data.subset(4 * batch, 0, eval_batch)
    small = ImageSplits(*(t.clone() for t in (small.train_x, small.train_y, small.val_x, small.val_y,
                                              small.test_x, small.test_y)))
    mean = channel_stats(data.train_x)[0].tolist()
    patch = mean_patch(torch.cat([data.train_x, data.val_x]))     # Sec. 3.3 trains on all 50,000 images
    points = []
    for label, (kind, name) in NETWORKS.items():
        if kind == "fig1":
            made = perf.builder(fig1, activation=name, data=small, mean=mean, batch_size=batch,
                                eval_batch=eval_batch, device=s.device, amp=s.amp)
        else:
            made = perf.builder(sec33, net=name, data=small, mean_image=patch, batch_size=batch,
                                eval_batch=eval_batch, device=s.device, amp=s.amp)
        points.append((label, made))
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="images", axis="network", points=points, main="Fig. 1, ReLU",
        workload=f"Fig. 1's four-layer ReLU net, batch {batch}, SGD with momentum 0.9, lr {DEFAULT_LR['relu']}",
        eval_desc=f"the test images in batches of {eval_batch} (Sec. 3.3's nets: nine views each)",
        device=s.device, precision=s.precision, quick=args.quick,
        epoch=(len(data.train_y), f"{len(data.train_y):,} training images, Fig. 1"),
        data_bytes=perf.nbytes(data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y),
        notes=["Fig. 1's run trains six nets (ReLU and tanh, three seeds each) until 25% training error; each epoch "
               f"also evaluates the {len(data.val_y):,} validation images.",
               "Sec. 3.3's nets train on 24x24 patches of all 50,000 images; their locally connected layers "
               "(unshared filters, an einsum per layer) make them the slower nets here."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

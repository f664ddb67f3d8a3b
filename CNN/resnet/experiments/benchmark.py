"""Training throughput of ResNet-20: our pipeline vs the usual one that people copy, side by side in one run.

All pipelines train the same network (ResNet-20, option A) with the same recipe (batch 128, SGD with
momentum 0.9, weight decay 1e-4, learning rate 0.1, cross-entropy) on the same augmentation (4-pixel
padding, random 32x32 crop, random horizontal flip); only the way the step is fed and computed differs:

* usual:  torchvision's ``CIFAR10`` dataset with per-image ``RandomCrop(32, padding=4)``,
          ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)``, a ``DataLoader`` with
          shuffling and the workers given (``--workers``); NCHW, fp32.
* ours:   ``train.py``'s path: the uint8 training set whole in memory (``common.data.image_loaders``),
          crop and flip batched on the uint8 tensor (``common.data.random_crop_flip``), channels_last,
          bf16 autocast where the device computes bf16 natively (AVX512-BF16 or AMX; a GPU), as train.py's
          ``--amp auto``, fp32 elsewhere. Two intermediate rows show where the gain comes
          from: our loader with the usual NCHW fp32 step, then with channels_last added.

torchvision's ``CIFAR10`` reads the Python version of the dataset (``cifar-10-batches-py``); the mirror holds
the binary version, so the same images are written once into a temporary folder in the Python version's
format and read by torchvision's own class (its md5 sums, those of the original archive, are not checked:
the files are ours, from the verified binary ones).

Each pipeline runs a warm-up slice, then --repeats timed slices of --batches batches, the pipelines taking
turns so that drifts in machine load hit all of them alike; we report the median images/s and the ratio
of ours to the best usual setting. Not a test: timings on a shared machine are noisy, so read medians and
ratios. What it prints also goes to CNN/resnet/results/experiments/benchmark/<device>.txt.

    python CNN/resnet/experiments/benchmark.py                       # -> results/experiments/benchmark/cpu.txt
    python CNN/resnet/experiments/benchmark.py --workers 0 2 --batches 30 --repeats 3
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from common.benchmark import (Report, TrainingPipeline, cifar10_race_parser, endless, rates, time_interleaved,
                              usual_cifar10, write_python_version)
from common.data import CIFAR10_CLASSES, channel_stats, image_loaders, load_cifar10, random_crop_flip
from common.training import describe_device, native_bf16, resolve_device, seed_everything
from CNN.resnet.model import CifarResNet

OUT = Path(__file__).resolve().parents[1] / "results" / "experiments" / "benchmark"
BATCH, LR, MOMENTUM, WEIGHT_DECAY = 128, 0.1, 0.9, 1e-4   # train.py's defaults (Sec. 4.2)


def usual_dataset(root: Path, mean, std):
    from torchvision import transforms

    return usual_cifar10(root, transforms.Compose([transforms.RandomCrop(32, padding=4),
                                                   transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                                   transforms.Normalize(mean, std)]))


class Pipeline(TrainingPipeline):
    """ResNet-20 with train.py's optimiser, fed by ``batches``, in the given memory layout and precision."""

    def __init__(self, batches, device, channels_last: bool, amp: bool):
        seed_everything(0)
        model = CifarResNet(3).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
        super().__init__(batches, model, optimizer, device, channels_last=channels_last, amp=amp)


def main(argv=None) -> int:
    args = cifar10_race_parser(__doc__, batches=40, out=OUT).parse_args(argv)
    device = resolve_device(args.device)
    report = Report()
    data = load_cifar10(args.data_dir, n_val=0)
    mean, std = (s.tolist() for s in channel_stats(data.train_x))
    tmp = tempfile.TemporaryDirectory()
    root = write_python_version(data.train_x, data.train_y, Path(tmp.name), CIFAR10_CLASSES)
    dataset = usual_dataset(root, mean, std)
    pipelines: dict[str, Pipeline] = {}
    for w in args.workers:
        loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=w,
                                             persistent_workers=w > 0, pin_memory=device.type == "cuda",
                                             drop_last=True)
        pipelines[f"usual: DataLoader(num_workers={w}), NCHW fp32"] = Pipeline(endless(loader), device, False, False)

    def ours(channels_last: bool):
        return endless(image_loaders(data, batch_size=BATCH, seed=0, device=device, channels_last=channels_last,
                                     augment=random_crop_flip, drop_last=True).train)

    pipelines["our loader, NCHW fp32"] = Pipeline(ours(False), device, False, False)
    if native_bf16(device):     # train.py's --amp auto: bf16 where the device computes it natively, else fp32
        pipelines["our loader, channels_last fp32"] = Pipeline(ours(True), device, True, False)
        pipelines["ours: our loader, channels_last bf16 (train.py)"] = Pipeline(ours(True), device, True, True)
    else:
        pipelines["ours: our loader, channels_last fp32 (train.py)"] = Pipeline(ours(True), device, True, False)

    report.say(f"ResNet-20 training throughput, batch {BATCH}, {describe_device(device)}, torch {torch.__version__}; "
               f"median of {args.repeats} interleaved slices of {args.batches} batches after a warm-up slice")
    time_interleaved(pipelines, args.batches, args.repeats)   # the warm-up starts workers, oneDNN kernels, CUDA
    rate = rates(pipelines, args.batches * BATCH, "images", report)
    usual = max((n for n in rate if n.startswith("usual")), key=rate.get)
    ours = next(n for n in rate if n.startswith("ours"))
    report.say(f"ratio ours / best usual ({usual.split(',')[0]}): {rate[ours] / rate[usual]:.2f}x")
    report.say(f"an epoch of 50,000 images: ours {50000 / rate[ours]:.1f} s, usual {50000 / rate[usual]:.1f} s")
    tmp.cleanup()
    report.write(args.out / f"{device.type}.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

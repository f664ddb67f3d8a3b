"""Training throughput of CCT-2/3x2: the authors' data pipeline vs ours, side by side in one run.

Both train the same network (CCT-2/3x2) with the same recipe (batch 128, AdamW 5e-4 with weight decay 0.03,
label smoothing 0.1) on the same augmentation (AutoAugment's CIFAR-10 policy with grey fill, a random 32x32
crop of the image padded by 4, a horizontal flip); only the way the step is fed and computed differs:

* authors: their ``examples/main.py``: torchvision's ``CIFAR10`` handing out PIL images, per-image PIL
           transforms (``AutoAugment`` with the CIFAR-10 policy, ``RandomCrop(32, padding=4)``,
           ``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize``), a ``DataLoader`` with shuffling and the
           workers given (``--workers``); NCHW, fp32 (their script has no mixed precision).
* ours:    ``train.py``'s path: the uint8 training set whole in memory, AutoAugment per image on the uint8 batch
           (``common.augment.BatchAutoAugment``), crop and flip batched (``common.data.random_crop_flip``),
           channels_last, bf16 autocast where the device computes bf16 natively (``--amp auto``), fp32 elsewhere.
           An intermediate row (our loader, the authors' NCHW fp32 step) shows where the gain comes from.

(The authors' pipeline normalises in the transform; there the model's own normalisation is set to the
identity, so both compute the same.) Each pipeline runs a warm-up slice, then --repeats timed slices of
--batches batches, the pipelines taking turns; we report the median images/s and the ratio of ours to the
authors' best setting. Not a test: run it on a quiet machine and read medians and ratios. What it prints
also goes to Transformers/cct/results/experiments/benchmark/<device>.txt.

    python Transformers/cct/experiments/benchmark.py
    python Transformers/cct/experiments/benchmark.py --workers 0 2 --batches 20 --repeats 3
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from common.benchmark import (Report, TrainingPipeline, cifar10_race_parser, endless, rates, time_interleaved,
                              usual_cifar10, write_python_version)
from common.data import CIFAR10_CLASSES, image_loaders, load_cifar10
from common.training import describe_device, native_bf16, resolve_device, seed_everything
from Transformers.cct.model import CIFAR10_MEAN, CIFAR10_STD, CompactTransformer
from Transformers.cct.train import augmentation

OUT = Path(__file__).resolve().parents[1] / "results" / "experiments" / "benchmark"
MODEL, BATCH, LR, WEIGHT_DECAY, SMOOTHING = "cct_2_3x2", 128, 5e-4, 0.03, 0.1   # train.py's defaults


def authors_transform():
    from torchvision import transforms

    return transforms.Compose([
        transforms.AutoAugment(transforms.AutoAugmentPolicy.CIFAR10, fill=[128, 128, 128]),
        transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])


def pipeline(batches, device, *, channels_last: bool, amp: bool, normalised_input: bool) -> TrainingPipeline:
    seed_everything(0)
    identity = {"mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)} if normalised_input else {}
    model = CompactTransformer(MODEL, **identity).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    return TrainingPipeline(batches, model, optimizer, device, channels_last=channels_last, amp=amp,
                            loss_fn=lambda out, y: F.cross_entropy(out, y, label_smoothing=SMOOTHING))


def main(argv=None) -> int:
    args = cifar10_race_parser(__doc__, batches=30, out=OUT).parse_args(argv)
    device = resolve_device(args.device)
    report = Report()

    data = load_cifar10(args.data_dir, n_val=0)
    tmp = tempfile.TemporaryDirectory()
    dataset = usual_cifar10(write_python_version(data.train_x, data.train_y, Path(tmp.name), CIFAR10_CLASSES),
                            authors_transform())
    pipelines: dict[str, TrainingPipeline] = {}
    for w in args.workers:
        loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=w,
                                             persistent_workers=w > 0, pin_memory=device.type == "cuda",
                                             drop_last=True)
        pipelines[f"authors: DataLoader(num_workers={w}), NCHW fp32"] = pipeline(
            endless(loader), device, channels_last=False, amp=False, normalised_input=True)

    def ours(channels_last: bool):
        return endless(image_loaders(data, batch_size=BATCH, seed=0, device=device, channels_last=channels_last,
                                     augment=augmentation(), drop_last=True).train)

    amp = native_bf16(device)
    pipelines["our loader, NCHW fp32"] = pipeline(ours(False), device, channels_last=False, amp=False,
                                                  normalised_input=False)
    pipelines[f"ours: our loader, channels_last {'bf16' if amp else 'fp32'} (train.py)"] = pipeline(
        ours(True), device, channels_last=True, amp=amp, normalised_input=False)

    report.say(f"CCT-2/3x2 training throughput, batch {BATCH}, {describe_device(device)}, torch {torch.__version__}; "
               f"median of {args.repeats} interleaved slices of {args.batches} batches after a warm-up slice")
    time_interleaved(pipelines, args.batches, args.repeats)   # the warm-up starts workers, oneDNN kernels, CUDA
    rate = rates(pipelines, args.batches * BATCH, "images", report, width=56)
    usual = max((n for n in rate if n.startswith("authors")), key=rate.get)
    ours_name = next(n for n in rate if n.startswith("ours"))
    report.say(f"ratio ours / authors' best ({usual.split(',')[0]}): {rate[ours_name] / rate[usual]:.2f}x")
    report.say(f"an epoch of 50,000 images: ours {50000 / rate[ours_name]:.1f} s, authors' "
               f"{50000 / rate[usual]:.1f} s")
    tmp.cleanup()
    report.write(args.out / f"{device.type}.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

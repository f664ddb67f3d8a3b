"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, Sec. 3-5) trained on an ImageFolder tree.

    python CNN/alexnet/imagenet.py --data-dir PATH            # PATH/train/<class>/*.jpg, PATH/val/<class>/*.jpg
    python CNN/alexnet/imagenet.py --data-dir PATH --resume --ten-crop
    python CNN/alexnet/imagenet.py --data-dir PATH --quick    # 64 training and 32 validation images, one epoch

Sec. 2: images rescaled so that the shorter side is 256, then the central 256x256 patch; the mean pixel
subtracted (inside the model), raw 0-255 scale. Sec. 4.1: random 224x224 patches and their reflections, and
the PCA colour perturbation; at test time the centre patch (``--ten-crop``: the ten patches, softmax
averaged). Sec. 5: SGD, batch 128, momentum 0.9, weight decay 0.0005, lr 0.01 divided by 10 when the
validation error stops improving, about 90 epochs. The paper: top-1 / top-5 error 37.5% / 17.0% on the
ILSVRC-2010 test set; we check the validation set's against them. Default output: runs/alexnet-imagenet/.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from common.cli import Run, base_parser, positive_int, run
from common.data import DataError, random_crop_flip, to_unit_float
from common.distributed import data_loader
from common.results import metric
from common.training import atomic_save, evaluate, fit
from CNN.alexnet.model import PAPER, AlexNet, alexnet_layer_table

PAPER_DIR = Path(__file__).resolve().parent
# Sec. 5, for AlexNet: batch 128, momentum 0.9, weight decay 0.0005, lr 0.01 divided by 10 on plateaus.
LR, MOMENTUM, WEIGHT_DECAY, EPOCHS, BATCH_SIZE = 0.01, 0.9, 5e-4, 90, 128
# Table 1 (ILSVRC-2010 test): top-1 and top-5 error of one CNN; our bands, +-1.5 points.
PAPER_TOP1, PAPER_TOP5, BAND = 37.5, 17.0, 1.5


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=EPOCHS, batch_size=BATCH_SIZE, lr=LR, paper_dir=PAPER_DIR)
    p.add_argument("--workers", type=int, default=4, help="DataLoader worker processes")
    p.add_argument("--plateau-patience", type=positive_int, default=2,
                   help="epochs without a lower validation error before the lr is divided by 10")
    p.add_argument("--pca-images", type=positive_int, default=1000,
                   help="training images sampled for the mean pixel and the RGB PCA")
    p.add_argument("--ten-crop", action="store_true", help="final evaluation on 10 patches (Sec. 4.1)")
    p.add_argument("--input-size", type=int, choices=[224, 227], default=224, help="patch size (see the README)")
    p.add_argument("--no-channels-last", action="store_true", help="NCHW memory layout")
    args = p.parse_args(argv)
    if args.out is None:   # not results/: nothing of this run is published
        args.out = PAPER_DIR.parents[1] / "runs" / ("alexnet-imagenet-quick" if args.quick else "alexnet-imagenet")
    return args


# --------------------------------------------------------------------------- data and augmentation


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
    eigval, eigvec = torch.linalg.eigh(torch.cov(pixels))
    return pixels.mean(1).float(), eigval.clamp_min(0).float(), eigvec.float()


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
            out = model(prepare(pca_lighting(to_unit_float(random_crop_flip(x, pad=0, size=size)), eigval, eigvec)))
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


class PlateauOnValidationError:
    """Sec. 5's "divide the learning rate by 10 when the validation error rate stopped improving", as an
    ``on_epoch_end`` hook: ``ReduceLROnPlateau`` stepped on ``history[-1]["val_error_pct"]``. Its state
    travels in fit's checkpoint (``state_dict``/``load_state_dict``), so --resume continues it exactly."""

    def __init__(self, optimizer: torch.optim.Optimizer, patience: int):
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1,
                                                                    patience=patience)

    def __call__(self, history: list[dict]) -> None:
        self.scheduler.step(history[-1]["val_error_pct"])

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


# --------------------------------------------------------------------------- main


def train(r: Run) -> int:
    from torch.utils.data import Subset

    args, out, device = r.args, r.out, r.device
    if args.data_dir is None or not all((Path(args.data_dir) / split).is_dir() for split in ("train", "val")):
        raise DataError(f"--data-dir {args.data_dir}: needs PATH/train/<class>/*.jpg and PATH/val/<class>/*.jpg")
    sets = image_folders(Path(args.data_dir))
    classes = sets["train"].classes
    epochs = args.epochs
    if args.quick:
        sets = {k: Subset(v, range(min(len(v), 64 if k == "train" else 32))) for k, v in sets.items()}
        epochs = 1
    mean, eigval, eigvec = rgb_statistics(sets["train"], min(args.pca_images, len(sets["train"])), args.seed)
    print(f"{len(sets['train'])} training images, {len(sets['val'])} validation, {len(classes)} classes; "
          f"mean pixel {[round(v, 4) for v in mean.tolist()]}, RGB eigenvalues {[f'{v:.3g}' for v in eigval.tolist()]}")
    kwargs = {"num_classes": len(classes), "input_size": args.input_size}
    model = AlexNet(**kwargs, mean=mean.tolist()).to(device)
    channels_last = not args.no_channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    print(alexnet_layer_table(model))
    g = torch.Generator().manual_seed(args.seed)
    # under torchrun each process loads its share (common.distributed.data_loader)
    train_loader = data_loader(sets["train"], batch_size=args.batch_size, train=True, shuffle=True,
                               num_workers=args.workers, generator=g, persistent_workers=args.workers > 0)
    val_loader = data_loader(sets["val"], batch_size=args.batch_size, train=False, num_workers=args.workers)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    plateau = PlateauOnValidationError(optimizer, args.plateau_patience)
    step = imagenet_step(eigval, eigvec, args.input_size, device, channels_last)
    history = fit(model, optimizer, step, train_loader, epochs=epochs, val_loader=val_loader, device=device,
                  amp=args.amp, out=out, resume=r.resumes(), on_epoch_end=plateau, progress=not args.no_progress,
                  desc="AlexNet")
    final_step = imagenet_step(eigval, eigvec, args.input_size, device, channels_last, ten_crop=args.ten_crop)
    val = evaluate(model, val_loader, final_step, device, args.amp)
    top1, top5 = val["error_pct"], 100.0 * val["top5_errors"]
    atomic_save(model.state_dict(), out / "model.pt")
    split = "val (10 crops)" if args.ten_crop else "val (centre crop)"
    r.write_metrics(
        paper=PAPER,
        metrics=[metric("top1_error_pct", top1, paper=PAPER_TOP1, band=(PAPER_TOP1 - BAND, PAPER_TOP1 + BAND),
                        split=split, claim="Table 1: ImageNet top-1 error, %"),
                 metric("top5_error_pct", top5, paper=PAPER_TOP5, band=(PAPER_TOP5 - BAND, PAPER_TOP5 + BAND),
                        split=split, claim="Table 1: ImageNet top-5 error, %")],
        model=model, model_kwargs=kwargs, weights="model.pt", epochs=len(history),
        training_time_s=sum(h["epoch_time_s"] for h in history), dataset="imagenet (ImageFolder)",
        classes=len(classes), pca={"eigenvalues": eigval.tolist(), "eigenvectors": eigvec.tolist()},
        hyperparameters={"lr": args.lr, "momentum": MOMENTUM, "weight_decay": WEIGHT_DECAY, "epochs": epochs,
                         "batch_size": args.batch_size, "plateau_patience": args.plateau_patience, "amp": args.amp},
    )
    print(f"validation top-1 error {top1:.2f}%, top-5 {top5:.2f}% ({split}); "
          f"the paper: {PAPER_TOP1}% / {PAPER_TOP5}% on ILSVRC-2010 test; results in {out}")
    return 0


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())

"""CIFAR-10 loaders shared by the Fig. 1 experiment (``train.py``, ``experiments/lr_sweep.py``) and the
Sec. 3.3 LRN experiment (``lrn_cifar.py``).

The images stay whole on the device as uint8 (``TensorLoader``) and become floats in [0, 1] per batch,
as torchvision's ``ToTensor()`` gives them; the models normalise inside. ``channels_last`` stores the
batches in NHWC order, faster for convolutions on recent CPUs and GPUs.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from common.data import ImageSplits, TensorLoader, to_unit_float

EVAL_BATCH = 1000


class CifarLoaders(NamedTuple):
    train: TensorLoader
    val: TensorLoader | None    # None when the data have no validation split (lrn_cifar.py trains on all 50k)
    test: TensorLoader


def unit_float(channels_last: bool):
    """uint8 batch -> float in [0, 1], in channels_last memory order if asked."""
    def transform(x: torch.Tensor) -> torch.Tensor:
        x = to_unit_float(x)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    return transform


def cifar_loaders(data: ImageSplits, *, batch_size: int, seed: int, device, channels_last: bool = False,
                  drop_last: bool = False) -> CifarLoaders:
    """Shuffled training batches (the order depends on ``seed`` and the epoch only, so a resumed run sees
    the same batches), and the validation and test images in batches of 1,000."""
    to_float = unit_float(channels_last)
    train = TensorLoader(data.train_x, data.train_y, batch_size=batch_size, shuffle=True, seed=seed, device=device,
                         drop_last=drop_last, transform=to_float)
    val = (TensorLoader(data.val_x, data.val_y, batch_size=EVAL_BATCH, device=device, transform=to_float)
           if len(data.val_y) else None)
    test = TensorLoader(data.test_x, data.test_y, batch_size=EVAL_BATCH, device=device, transform=to_float)
    return CifarLoaders(train, val, test)

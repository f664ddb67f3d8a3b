"""Residual networks of He, Zhang, Ren & Sun (2015), "Deep Residual Learning for Image Recognition".

A building block (Sec. 3.2, Fig. 2) learns a residual F(x, {W_i}) and adds its input back:

    y = F(x, {W_i}) + x            (Eq. 1, identity shortcut)
    y = F(x, {W_i}) + W_s x        (Eq. 2, projection shortcut, where the dimensions change)

Two families are built here:

* :class:`CifarResNet` (Sec. 4.2): 6n+2 layers of 3x3 convolutions, 16/32/64 filters on 32x32/16x16/8x8
  maps, global average pooling and a 10-way fully connected layer. ``plain=True`` drops the
  shortcuts (the "plain" nets of Fig. 6). Shortcut option A (zero-padding, parameter-free) is the
  paper's choice for CIFAR; B (projections where the dimensions increase) is an option.
* :class:`ImageNetResNet` (Sec. 3.4, Table 1): ResNet-18/34 of basic blocks, 50/101/152 of bottleneck
  blocks (Fig. 5), with option B shortcuts (Sec. 4.1 "Deeper Bottleneck Architectures").

Batch normalisation follows every convolution, before the activation (Sec. 3.4). Weights are
initialised as in He et al. (2015b), the paper's ref. [13] (Sec. 3.4).

A CIFAR net takes images as torchvision's ``ToTensor()`` gives them (N x 3 x 32 x 32, float in [0, 1])
and subtracts the per-pixel mean of the training images itself (Sec. 4.2), a buffer of the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Table 6: CIFAR-10 depth 6n+2 -> (parameters as printed, test error %).
TABLE6 = {20: (0.27e6, 8.75), 32: (0.46e6, 7.51), 44: (0.66e6, 7.17), 56: (0.85e6, 6.97), 110: (1.7e6, 6.43)}
# Table 6, plain nets are not listed; Fig. 6 (left) shows them. ResNet-1202: 19.4M, 7.93%.

# Table 1: blocks per stage conv2_x..conv5_x and FLOPs (multiply-adds) as printed, x 10^9.
TABLE1 = {
    18: ("basic", (2, 2, 2, 2), 1.8e9),
    34: ("basic", (3, 4, 6, 3), 3.6e9),
    50: ("bottleneck", (3, 4, 6, 3), 3.8e9),
    101: ("bottleneck", (3, 4, 23, 3), 7.6e9),
    152: ("bottleneck", (3, 8, 36, 3), 11.3e9),
}

SHORTCUTS = ("A", "B")


def he_init_(module: nn.Module) -> None:
    """Ref. [13] (He et al. 2015b, Eq. 10): zero-mean Gaussian weights with std sqrt(2 / n_l), n_l = k^2 c
    the fan-in of a response; BN scale 1 and shift 0. The fully connected layer keeps PyTorch's default."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    # No bias: the batch normalisation that follows has its own shift.
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class ZeroPadShortcut(nn.Module):
    """Option A (Sec. 3.3, Sec. 4.2): the identity, taken with stride 2 where the map halves, and extra zero
    channels where the width grows. No parameters."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.extra, self.stride = c_out - c_in, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def projection(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """W_s of Eq. 2 as a 1x1 convolution (option B), followed by batch normalisation."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))


def shortcut(c_in: int, c_out: int, stride: int, option: str) -> nn.Module:
    """Identity where the dimensions match (both options); else option A (zero-padding) or B (projection)."""
    if c_in == c_out and stride == 1:
        return nn.Identity()
    if option == "A":
        return ZeroPadShortcut(c_in, c_out, stride)
    if option == "B":
        return projection(c_in, c_out, stride)
    raise ValueError(f"shortcut option must be one of {SHORTCUTS}, got {option!r}")


class BasicBlock(nn.Module):
    """Fig. 5 (left): two 3x3 layers, F = W_2 sigma(W_1 x) (BN after each convolution); y = sigma(F + x)."""

    expansion = 1

    def __init__(self, c_in: int, c: int, stride: int = 1, option: str = "A", plain: bool = False):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(c_in, c, stride), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = conv3x3(c, c), nn.BatchNorm2d(c)
        self.shortcut = None if plain else shortcut(c_in, c, stride, option)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(f if self.shortcut is None else f + self.shortcut(x))   # Eq. 1; sigma after the addition


class Bottleneck(nn.Module):
    """Fig. 5 (right): 1x1 (reduce), 3x3, 1x1 (restore, 4x the width). The paper's Caffe models put the
    stride on the first 1x1 layer (torchvision's "v1.5" puts it on the 3x3: same parameters, more FLOPs)."""

    expansion = 4

    def __init__(self, c_in: int, c: int, stride: int = 1, option: str = "B", plain: bool = False):
        super().__init__()
        c_out = c * self.expansion
        self.conv1, self.bn1 = nn.Conv2d(c_in, c, 1, stride=stride, bias=False), nn.BatchNorm2d(c)
        self.conv2, self.bn2 = conv3x3(c, c), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = nn.Conv2d(c, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
        self.shortcut = None if plain else shortcut(c_in, c_out, stride, option)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = F.relu(self.bn1(self.conv1(x)))
        f = self.bn3(self.conv3(F.relu(self.bn2(self.conv2(f)))))
        return F.relu(f if self.shortcut is None else f + self.shortcut(x))


def stage(block: type, c_in: int, c: int, blocks: int, stride: int, option: str, plain: bool) -> nn.Sequential:
    """``blocks`` blocks of width ``c``; the first one subsamples by ``stride`` (a stride-2 convolution)."""
    layers = [block(c_in, c, stride, option, plain)]
    layers += [block(c * block.expansion, c, 1, option, plain) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class CifarResNet(nn.Module):
    """Sec. 4.2: a 3x3 convolution (16 filters), then 3 stages of n basic blocks (2n layers each) with 16, 32,
    64 filters on 32x32, 16x16, 8x8 maps, global average pooling, a 10-way fully connected layer and the
    softmax (in the loss): 6n+2 weighted layers. Returns logits.

    ``mean`` is the per-pixel mean image of the training set (3 x 32 x 32, in [0, 1] units), subtracted
    from every input; zeros until set (``train.py`` sets it from the training images)."""

    def __init__(self, n: int = 3, num_classes: int = 10, *, shortcut: str = "A", plain: bool = False):
        super().__init__()
        if n < 1:
            raise ValueError(f"n must be >= 1 (depth 6n+2), got {n}")
        if shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut option must be one of {SHORTCUTS}, got {shortcut!r}")
        self.n, self.depth = n, 6 * n + 2
        self.register_buffer("mean", torch.zeros(3, 32, 32))
        self.conv1, self.bn1 = conv3x3(3, 16), nn.BatchNorm2d(16)                 # 32x32, 16 filters
        self.stage1 = stage(BasicBlock, 16, 16, n, 1, shortcut, plain)           # 32x32, 2n layers
        self.stage2 = stage(BasicBlock, 16, 32, n, 2, shortcut, plain)           # 16x16, 2n layers
        self.stage3 = stage(BasicBlock, 32, 64, n, 2, shortcut, plain)           # 8x8, 2n layers
        self.fc = nn.Linear(64, num_classes)
        he_init_(self)

    @classmethod
    def from_depth(cls, depth: int, **kwargs) -> "CifarResNet":
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"a CIFAR ResNet has 6n+2 layers (20, 32, 44, 56, 110, ...); got depth {depth}")
        return cls((depth - 2) // 6, **kwargs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x - self.mean)))
        return self.stage3(self.stage2(self.stage1(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (3, 32, 32):
            raise ValueError(f"expected images N x 3 x 32 x 32, got {tuple(x.shape)}")
        return self.fc(self.features(x).mean((2, 3)))          # global average pooling, then fc


class ImageNetResNet(nn.Module):
    """Table 1: conv1 7x7/2 (64) -> 3x3 max pool/2 -> conv2_x..conv5_x (56, 28, 14, 7) -> average pool ->
    1000-d fc. Takes 224 x 224 normalised images; returns logits. Option B shortcuts (Sec. 4.1)."""

    def __init__(self, depth: int = 18, num_classes: int = 1000, *, shortcut: str = "B", plain: bool = False):
        super().__init__()
        if depth not in TABLE1:
            raise ValueError(f"ImageNet ResNet depth must be one of {sorted(TABLE1)}, got {depth}")
        kind, blocks, _ = TABLE1[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        widths, c_in = (64, 128, 256, 512), 64
        for i, (c, b) in enumerate(zip(widths, blocks)):
            self.add_module(f"conv{i + 2}_x", stage(block, c_in, c, b, 1 if i == 0 else 2, shortcut, plain))
            c_in = c * block.expansion
        self.fc = nn.Linear(c_in, num_classes)
        he_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.conv5_x(self.conv4_x(self.conv3_x(self.conv2_x(x))))
        return self.fc(x.mean((2, 3)))


def multiply_adds(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-adds of the convolutions and fully connected layers for one ``example`` (batch 1), the way
    Table 1 counts FLOPs (BN, ReLU, additions and pooling not counted)."""
    total = 0

    def count(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output[0].numel() * k
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return total

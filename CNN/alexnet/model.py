"""AlexNet (Krizhevsky, Sutskever & Hinton 2012, Section 3) and the four-layer CIFAR-10 network of Fig. 1.

    AlexNet, Fig. 2 / Sec. 3.5 (two columns = two GPUs; one device here, ``groups=2`` where a
    layer only sees the maps of its own column):

    INPUT 3@224x224 -> conv1 96@55x55 (11x11/4) -> LRN -> max-pool 3/2 -> 96@27x27
      -> conv2 256@27x27 (5x5, per column) -> LRN -> max-pool 3/2 -> 256@13x13
      -> conv3 384@13x13 (3x3, both columns) -> conv4 384@13x13 (3x3, per column)
      -> conv5 256@13x13 (3x3, per column) -> max-pool 3/2 -> 256@6x6
      -> fc6 4096 -> dropout -> fc7 4096 -> dropout -> fc8 1000 (softmax in the loss)

ReLU (Sec. 3.1) follows every convolutional and fully connected layer but the last. Local
response normalisation (Sec. 3.3) follows the ReLU of conv1 and conv2; overlapping max-pooling
(Sec. 3.4, z = 3, s = 2) follows both normalisations and conv5. Dropout 0.5 on the outputs of fc6
and fc7 (Sec. 4.2). Initialisation (Sec. 5): weights N(0, 0.01); biases 1 in conv2, conv4, conv5,
fc6, fc7 and 0 elsewhere.

:class:`FourLayerNet` is the network of Fig. 1 (ReLU vs tanh on CIFAR-10). The paper does not list
it; we read it from cuda-convnet's ``layers-18pct.cfg`` (see the README), without its two
response-normalisation layers and without any other regularisation.

Both classifiers take images as torchvision's ``ToTensor()`` gives them (N x 3 x H x W, float in
[0, 1]) and normalise them inside the module (buffers ``mean`` and ``std``, saved with the weights).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from common.summary import format_layer_table, layer_table

PAPER = "Krizhevsky, Sutskever & Hinton 2012, ImageNet Classification with Deep Convolutional Neural Networks"
# Sec. 3.3: "k = 2, n = 5, alpha = 10^-4, and beta = 0.75", chosen on a validation set.
LRN_K, LRN_N, LRN_ALPHA, LRN_BETA = 2.0, 5, 1e-4, 0.75
# Sec. 3.4: pooling units spaced s = 2 pixels apart, each summarising a z x z = 3 x 3 neighbourhood.
POOL_Z, POOL_S = 3, 2
# Sec. 5: zero-mean Gaussian weights with standard deviation 0.01.
INIT_STD = 0.01
# Abstract and Sec. 3.5: "60 million parameters"; the paper gives no per-layer counts.
PAPER_TOTAL_PARAMETERS = 60_000_000
# Sec. 3.5: neurons per layer after the 150,528-dimensional input, as printed.
PAPER_NEURONS = (253_440, 186_624, 64_896, 64_896, 43_264, 4096, 4096, 1000)
# The paper subtracts the mean pixel and keeps the raw 0..255 scale: std = 1/255 undoes ToTensor's scaling.
PIXEL_SCALE = 1.0 / 255.0


class Normalize(nn.Module):
    """(x - mean) / std per channel, with ``mean`` and ``std`` stored as buffers (they travel with
    the state_dict, so a shipped model needs no outside preprocessing)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1).clone())
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1).clone())

    def set(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class LocalResponseNorm(nn.Module):
    """Local response normalisation across kernel maps, Sec. 3.3:

        b^i_{x,y} = a^i_{x,y} / ( k + alpha * sum_{j = max(0, i - n/2)}^{min(N - 1, i + n/2)} (a^j_{x,y})^2 )^beta

    with n/2 rounded down (n = 5: two maps on each side), N the number of maps. ``groups`` > 1
    normalises each group of N/groups maps on its own, as each GPU did with its half of the maps.
    Equal to ``torch.nn.LocalResponseNorm(n, alpha * n, beta, k)`` for ``groups=1``: torch divides
    alpha by n, the paper does not.
    """

    def __init__(self, n: int = LRN_N, k: float = LRN_K, alpha: float = LRN_ALPHA, beta: float = LRN_BETA,
                 groups: int = 1):
        super().__init__()
        self.n, self.k, self.alpha, self.beta, self.groups = n, k, alpha, beta, groups

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        half = self.n // 2
        sq = a.float().pow(2).unflatten(1, (self.groups, -1))             # N x groups x maps x H x W
        sq = F.pad(sq, (0, 0, 0, 0, half, half))                           # zero maps beyond both ends
        maps = sq.shape[2] - 2 * half
        window = sum(sq[:, :, d : d + maps] for d in range(2 * half + 1))  # the sum over j
        denom = (self.k + self.alpha * window).pow(self.beta).flatten(1, 2)
        return (a.float() / denom).to(a.dtype)

    def extra_repr(self) -> str:
        return f"n={self.n}, k={self.k}, alpha={self.alpha}, beta={self.beta}, groups={self.groups}"


def _gaussian_init(model: nn.Module, std: float, bias_one: Sequence[str] = ()) -> None:
    for name, m in model.named_children():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            nn.init.constant_(m.bias, 1.0 if name in bias_one else 0.0)


class AlexNet(nn.Module):
    """The network of Sec. 3.5 / Fig. 2 on one device (the two GPUs' columns as ``groups=2``).

    ``input_size`` 224 (the paper's text) or 227: 224 only gives conv1's 55x55 maps of Fig. 2 with
    2 pixels of padding, 227 gives them with none (see the README). Both end in 256@6x6.
    ``lrn_groups=2`` normalises each column's maps on their own, as on two GPUs; 1 = over all 96/256.
    """

    def __init__(self, num_classes: int = 1000, input_size: int = 224, dropout: float = 0.5,
                 mean: Sequence[float] = (0.5, 0.5, 0.5), std: Sequence[float] = (PIXEL_SCALE,) * 3,
                 lrn_groups: int = 2):
        super().__init__()
        if input_size not in (224, 227):
            raise ValueError(f"input_size must be 224 or 227, got {input_size}")
        self.input_size = input_size
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4, padding=2 if input_size == 224 else 0)  # 96@55x55
        self.lrn1 = LocalResponseNorm(groups=lrn_groups)
        self.pool1 = nn.MaxPool2d(POOL_Z, POOL_S)                    # 96@27x27
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)      # 256@27x27, each column 48 -> 128
        self.lrn2 = LocalResponseNorm(groups=lrn_groups)
        self.pool2 = nn.MaxPool2d(POOL_Z, POOL_S)                    # 256@13x13
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)               # 384@13x13, across the columns
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)     # 384@13x13, each column 192 -> 192
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)     # 256@13x13, each column 192 -> 128
        self.pool5 = nn.MaxPool2d(POOL_Z, POOL_S)                    # 256@6x6
        self.fc6 = nn.Linear(256 * 6 * 6, 4096)
        self.drop6 = nn.Dropout(dropout)
        self.fc7 = nn.Linear(4096, 4096)
        self.drop7 = nn.Dropout(dropout)
        self.fc8 = nn.Linear(4096, num_classes)
        _gaussian_init(self, INIT_STD, bias_one=("conv2", "conv4", "conv5", "fc6", "fc7"))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's output (after its ReLU), for plots and shape checks."""
        h = {"input": self.normalize(x)}
        h["conv1"] = F.relu(self.conv1(h["input"]))
        h["pool1"] = self.pool1(self.lrn1(h["conv1"]))
        h["conv2"] = F.relu(self.conv2(h["pool1"]))
        h["pool2"] = self.pool2(self.lrn2(h["conv2"]))
        h["conv3"] = F.relu(self.conv3(h["pool2"]))
        h["conv4"] = F.relu(self.conv4(h["conv3"]))
        h["conv5"] = F.relu(self.conv5(h["conv4"]))
        h["pool5"] = self.pool5(h["conv5"])
        h["fc6"] = self.drop6(F.relu(self.fc6(h["pool5"].flatten(1))))
        h["fc7"] = self.drop7(F.relu(self.fc7(h["fc6"])))
        h["fc8"] = self.fc8(h["fc7"])
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["fc8"]  # logits


ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh}


class FourLayerNet(nn.Module):
    """Fig. 1's four-layer convolutional network for CIFAR-10 (32x32), after cuda-convnet's
    ``layers-18pct.cfg`` without its response normalisations:

        conv1 32@32x32 (5x5, pad 2) -> max-pool 3/2 -> conv2 32@16x16 (5x5, pad 2) -> avg-pool 3/2
        -> conv3 64@8x8 (5x5, pad 2) -> avg-pool 3/2 -> 64@4x4 -> fc 10

    ``activation`` ("relu" or "tanh") follows each convolution. Pools use cuda-convnet's output size
    (ceil: 32 -> 16 -> 8 -> 4). The same initialisation for both activations: weights N(0, 0.01)
    (Sec. 5), biases 0.
    """

    def __init__(self, activation: str = "relu", num_classes: int = 10, mean: Sequence[float] = (0.5, 0.5, 0.5),
                 std: Sequence[float] = (0.25, 0.25, 0.25), init_std: float = INIT_STD):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.activation = activation
        self.normalize = Normalize(mean, std)
        self.conv1 = nn.Conv2d(3, 32, 5, padding=2)
        self.pool1 = nn.MaxPool2d(POOL_Z, POOL_S, ceil_mode=True)
        self.conv2 = nn.Conv2d(32, 32, 5, padding=2)
        self.pool2 = nn.AvgPool2d(POOL_Z, POOL_S, ceil_mode=True)
        self.conv3 = nn.Conv2d(32, 64, 5, padding=2)
        self.pool3 = nn.AvgPool2d(POOL_Z, POOL_S, ceil_mode=True)
        self.fc = nn.Linear(64 * 4 * 4, num_classes)
        _gaussian_init(self, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = ACTIVATIONS[self.activation]
        x = self.normalize(x)
        x = self.pool1(f(self.conv1(x)))  # max-pool and a monotone f commute (cuda-convnet pools first)
        x = self.pool2(f(self.conv2(x)))
        x = self.pool3(f(self.conv3(x)))
        return self.fc(x.flatten(1))      # logits


# Sec. 3.3's CIFAR-10 claim: a four-layer CNN had 13% test error without response normalisation and 11% with
# it. A footnote refers to cuda-convnet's code and parameter files for the net: layers-conv-local-13pct.cfg and
# layers-conv-local-11pct.cfg, the same net without and with two rnorm layers.
CIFAR_LRN_PAPER_ERROR = {"plain": 13.0, "lrn": 11.0}
# The rnorm layers of layers-conv-local-11pct.cfg: size 5, scale 0.001, pow 0.75 across maps. cuda-convnet
# divides scale by size and adds 1: b = a / (1 + (0.001 / 5) * sum a^2)^0.75.
CIFAR_LRN_N, CIFAR_LRN_K, CIFAR_LRN_ALPHA, CIFAR_LRN_BETA = 5, 1.0, 0.001 / 5, 0.75
CIFAR_CROP = 24   # cuda-convnet trains this net on 24x24 patches of the 32x32 images


class LocallyConnected2d(nn.Module):
    """A convolution whose filters are not shared (cuda-convnet's ``local`` layer): every output position
    (i, j) has its own filter bank ``weight[i * W_out + j]`` (out x in*k*k) and its own biases."""

    def __init__(self, in_channels: int, out_channels: int, in_size: int, kernel_size: int, padding: int = 0):
        super().__init__()
        self.in_channels, self.out_channels, self.in_size = in_channels, out_channels, in_size
        self.kernel_size, self.padding = kernel_size, padding
        self.out_size = in_size + 2 * padding - kernel_size + 1
        locations = self.out_size * self.out_size
        self.weight = nn.Parameter(torch.empty(locations, out_channels, in_channels * kernel_size * kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels, self.out_size, self.out_size))
        nn.init.normal_(self.weight, 0.0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1:] != (self.in_channels, self.in_size, self.in_size):
            raise ValueError(f"expected N x {self.in_channels} x {self.in_size} x {self.in_size}, got {tuple(x.shape)}")
        cols = F.unfold(x, self.kernel_size, padding=self.padding)         # N x in*k*k x locations
        out = torch.einsum("ncl,loc->nol", cols, self.weight)               # each location its own filters
        return out.reshape(len(x), self.out_channels, self.out_size, self.out_size) + self.bias

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, in_size={self.in_size}, kernel_size={self.kernel_size}, "
                f"padding={self.padding}, locations={self.out_size}x{self.out_size}")


class ConvLocalNet(nn.Module):
    """Sec. 3.3's four-layer CIFAR-10 network (cuda-convnet layers-conv-local-11pct.cfg; without the two
    normalisations, layers-conv-local-13pct.cfg), on 24x24 patches:

        conv1 64@24x24 (5x5, pad 2) -> ReLU -> [LRN] -> max-pool 3/2 -> 64@12x12
        -> conv2 64@12x12 (5x5, pad 2) -> ReLU -> [LRN] -> max-pool 3/2 -> 64@6x6
        -> local3 32@6x6 (3x3, pad 1, unshared) -> ReLU -> local4 32@6x6 (3x3, pad 1, unshared) -> ReLU
        -> fc 10 (softmax in the loss)

    ``lrn=True`` inserts the response normalisations (the 11% net), ``False`` leaves them out (the 13% net).
    Initial weights as the .cfg files give them (``initW``, the std of a zero-mean Gaussian): conv1 1e-4,
    conv2 0.01, local3 and local4 0.04, fc 0.01; biases 0 (the local layers have one per map and position).
    Pools use cuda-convnet's ceil output size. Inputs are patches as ToTensor gives them (float in [0, 1]);
    as cuda-convnet's CIFAR provider does, the net works on the 0-255 scale and subtracts the centre patch of
    the training set's mean image (buffer ``mean_image``, 0-255 units) from every patch, wherever it was cut.
    """

    INIT_W = {"conv1": 1e-4, "conv2": 0.01, "local3": 0.04, "local4": 0.04, "fc": 0.01}

    def __init__(self, lrn: bool, num_classes: int = 10, mean_image: torch.Tensor | None = None,
                 size: int = CIFAR_CROP):
        super().__init__()
        self.lrn, self.size = lrn, size
        if mean_image is None:
            mean_image = torch.full((3, size, size), 127.5)
        if tuple(mean_image.shape) != (3, size, size):
            raise ValueError(f"mean_image must be 3 x {size} x {size}, got {tuple(mean_image.shape)}")
        self.register_buffer("mean_image", mean_image.float().clone().unsqueeze(0))
        norm = (lambda: LocalResponseNorm(CIFAR_LRN_N, CIFAR_LRN_K, CIFAR_LRN_ALPHA, CIFAR_LRN_BETA)) if lrn \
            else nn.Identity
        s1 = -(-(size - POOL_Z) // POOL_S) + 1                 # ceil: 24 -> 12
        s2 = -(-(s1 - POOL_Z) // POOL_S) + 1                   # 12 -> 6
        self.conv1 = nn.Conv2d(3, 64, 5, padding=2)
        self.norm1 = norm()
        self.pool1 = nn.MaxPool2d(POOL_Z, POOL_S, ceil_mode=True)
        self.conv2 = nn.Conv2d(64, 64, 5, padding=2)
        self.norm2 = norm()
        self.pool2 = nn.MaxPool2d(POOL_Z, POOL_S, ceil_mode=True)
        self.local3 = LocallyConnected2d(64, 32, s2, 3, padding=1)
        self.local4 = LocallyConnected2d(32, 32, s2, 3, padding=1)
        self.fc = nn.Linear(32 * s2 * s2, num_classes)
        with torch.no_grad():
            for name, std_w in self.INIT_W.items():
                layer = getattr(self, name)
                layer.weight.normal_(0.0, std_w)
                layer.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x / PIXEL_SCALE - self.mean_image                 # 0-255 scale, mean image subtracted
        x = self.pool1(self.norm1(F.relu(self.conv1(x))))
        x = self.pool2(self.norm2(F.relu(self.conv2(x))))
        x = F.relu(self.local4(F.relu(self.local3(x))))
        return self.fc(x.flatten(1))      # logits


def alexnet_layer_table(model: AlexNet) -> str:
    """Output shape and parameters per layer; the paper gives only the total (~60 million)."""
    s = model.input_size
    return format_layer_table(layer_table(model, torch.zeros(1, 3, s, s)), paper_total=PAPER_TOTAL_PARAMETERS)


def four_layer_table(model: FourLayerNet) -> str:
    return format_layer_table(layer_table(model, torch.zeros(1, 3, 32, 32)))


def mean_patch(images: torch.Tensor, size: int = CIFAR_CROP) -> torch.Tensor:
    """The centre size x size patch of the mean of uint8 images (N x 3 x H x W), in 0-255 units."""
    mean = images.double().mean(0)
    top, left = (mean.shape[1] - size) // 2, (mean.shape[2] - size) // 2
    return mean[:, top:top + size, left:left + size].float()


def conv_local_table(model: ConvLocalNet) -> str:
    return format_layer_table(layer_table(model, torch.zeros(1, 3, model.size, model.size)))


__all__ = ["AlexNet", "ConvLocalNet", "FourLayerNet", "LocallyConnected2d", "LocalResponseNorm", "Normalize",
           "alexnet_layer_table", "conv_local_table", "four_layer_table", "mean_patch",
           "PAPER_TOTAL_PARAMETERS", "PAPER_NEURONS", "LRN_K", "LRN_N", "LRN_ALPHA", "LRN_BETA"]

"""Stacked denoising autoencoders of Vincent, Larochelle, Bengio & Manzagol (ICML 2008) and Vincent,
Larochelle, Lajoie, Bengio & Manzagol (JMLR 2010).

A denoising autoencoder (JMLR Sec. 3, Fig. 1) corrupts its input x into x~ ~ q_D(x~ | x), encodes the
corrupted input, and is trained to reconstruct the *clean* x:

    y = f_theta(x~) = s(W x~ + b)               the encoder (Sec. 2.3, sigmoid s)
    z = g_theta'(y) = s(W' y + b'),  W' = W^T   the decoder, tied weights (Sec. 2.3)
    L_H(x, z) = -sum_k [x_k log z_k + (1 - x_k) log(1 - z_k)]    reconstruction cross-entropy (Eq. 2)

Corruptions q_D (Sec. 4.2): masking noise (a fraction nu of the components, chosen at random for each
example, set to 0), salt-and-pepper noise (a fraction nu set to the minimum or maximum, 0 or 1, with equal
chance) and additive isotropic Gaussian noise N(0, sigma^2 I).

Stacking (Sec. 4.3, Fig. 3): the k-th autoencoder is trained on the clean codes of the k-1 below it (only
its own input is corrupted); the encoders, with a logistic regression on top, then form a deep network that
is fine-tuned as a classifier by gradient descent on the supervised cost.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# Table 3: SdA-3 on MNIST = three hidden layers (of 1000 units: the tutorial's and the smallest of the
# JMLR grid {1000, 2000, 3000}), masking noise.
SDA3_LAYERS = (784, 1000, 1000, 1000)


# --------------------------------------------------------------------------- q_D, Sec. 4.2


def _chosen(x: torch.Tensor, nu: float, generator: torch.Generator | None) -> torch.Tensor:
    """A boolean mask choosing round(nu * d) components of each row of ``x`` (N x d) at random."""
    if not 0.0 <= nu <= 1.0:
        raise ValueError(f"the corrupted fraction nu must lie in [0, 1], got {nu}")
    chosen = torch.rand(x.shape, generator=generator, device=x.device).argsort(dim=1)[:, : round(nu * x.shape[1])]
    return torch.zeros(x.shape, dtype=torch.bool, device=x.device).scatter_(1, chosen, True)


def masking_noise(x: torch.Tensor, nu: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fraction ``nu`` of each example's components (chosen at random) forced to 0 (Sec. 4.2, "MN")."""
    return x.masked_fill(_chosen(x, nu, generator), 0.0)


def salt_and_pepper(x: torch.Tensor, nu: float, generator: torch.Generator | None = None,
                    low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """A fraction ``nu`` of the components set to ``low`` or ``high`` by a fair coin (Sec. 4.2, "SP")."""
    coin = torch.rand(x.shape, generator=generator, device=x.device) < 0.5
    return torch.where(_chosen(x, nu, generator), torch.where(coin, high, low).to(x.dtype), x)


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """x~ = x + N(0, sigma^2 I) (Sec. 4.2, "GS")."""
    return x + sigma * torch.randn(x.shape, generator=generator, device=x.device)


CORRUPTIONS = {"masking": masking_noise, "salt_and_pepper": salt_and_pepper, "gaussian": gaussian_noise}


# --------------------------------------------------------------------------- one denoising autoencoder


class DenoisingAutoencoder(nn.Module):
    """f_theta and g_theta' with tied weights W' = W^T (one parameter, ``W``).

    Initialisation as in the authors' group's tutorial code: W uniform in +-4 sqrt(6 / (n_visible +
    n_hidden)) (Glorot & Bengio's range for sigmoid units), biases 0."""

    def __init__(self, n_visible: int, n_hidden: int, corruption: str = "masking", level: float = 0.25):
        super().__init__()
        if corruption not in CORRUPTIONS:
            raise ValueError(f"unknown corruption {corruption!r}; known: {', '.join(CORRUPTIONS)}")
        bound = 4 * math.sqrt(6 / (n_visible + n_hidden))
        self.W = nn.Parameter(torch.empty(n_hidden, n_visible).uniform_(-bound, bound))
        self.b = nn.Parameter(torch.zeros(n_hidden))            # hidden bias
        self.b_prime = nn.Parameter(torch.zeros(n_visible))     # visible (reconstruction) bias
        self.corruption, self.level = corruption, level

    def corrupt(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return CORRUPTIONS[self.corruption](x, self.level, generator)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(F.linear(x, self.W, self.b))                  # y = s(W x + b)

    def decode_logits(self, y: torch.Tensor) -> torch.Tensor:
        return F.linear(y, self.W.t(), self.b_prime)                       # W' y + b', W' = W^T

    def decode(self, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(y))                        # z = s(W' y + b')

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """L_H(x, g(f(x~))) summed over the components, averaged over the batch (Eq. 2 on a mini-batch)."""
        logits = self.decode_logits(self.encode(self.corrupt(x, generator)))
        return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / len(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of a clean input."""
        return self.decode(self.encode(x))


# --------------------------------------------------------------------------- the stack, Sec. 4.3


class StackedDenoisingAutoencoder(nn.Module):
    """``layers[k]`` is the k-th denoising autoencoder (trained greedily); ``forward`` is the deep classifier
    of Fig. 3 (right): the encoders f_theta^(1..L) applied to the clean input, then a logistic regression
    (``output``) giving the logits of the classes."""

    def __init__(self, sizes: tuple[int, ...] = SDA3_LAYERS, n_classes: int = 10, corruption: str = "masking",
                 level: float | list[float] = 0.25):
        super().__init__()
        levels = list(level) if isinstance(level, (list, tuple)) else [level] * (len(sizes) - 1)
        if len(levels) != len(sizes) - 1:
            raise ValueError(f"{len(sizes) - 1} hidden layers need as many noise levels, got {levels}")
        self.sizes = tuple(sizes)
        self.layers = nn.ModuleList(DenoisingAutoencoder(n_in, n_out, corruption, lv)
                                    for n_in, n_out, lv in zip(sizes[:-1], sizes[1:], levels))
        self.output = nn.Linear(sizes[-1], n_classes)
        nn.init.zeros_(self.output.weight)     # the tutorial's logistic layer starts at 0
        nn.init.zeros_(self.output.bias)

    def features(self, x: torch.Tensor, depth: int | None = None) -> torch.Tensor:
        """The clean code after the first ``depth`` encoders (all of them by default): the input the
        (depth+1)-th autoencoder is trained on."""
        for dae in self.layers[: len(self.layers) if depth is None else depth]:
            x = dae.encode(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(x.flatten(1)))

    @staticmethod
    def predict(logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1)

"""Generative adversarial nets of Goodfellow et al. (2014), the MNIST pair of the authors' code
(goodfeli/adversarial, ``mnist.yaml``).

Two players (Sec. 3, Eq. 1): the generator G maps noise z ~ p_z to an image; the discriminator D gives the
probability that an image came from the data rather than from G.

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))]                                 (Eq. 1)

D ascends V (:func:`discriminator_loss` is -V/2 as the authors' code has it, the mean of the two
cross-entropies). G descends log(1 - D(G(z))) in the minimax game (:func:`generator_loss_saturating`); the
paper recommends, and the code uses, maximising log D(G(z)) instead, which gives the same fixed point and
much stronger gradients early in learning (Sec. 3, :func:`generator_loss`).

G: 100 noise dimensions -> 1200 ReLU -> 1200 ReLU -> 784 sigmoid. D: maxout 240 units x 5 pieces ->
maxout 240 x 5 -> 1 sigmoid, with dropout on its inputs (keep 0.8 for the image, 0.5 for the hidden layers).

The noise p_z (the paper does not name it): ``"uniform"`` on [-sqrt 3, sqrt 3] (zero mean, unit variance), as the
published ``mnist.yaml`` of 9 June 2014 has it (``noise: "uniform"``), or ``"gaussian"``, N(0, I), the default of
the authors' ``Generator`` class (``noise = "gaussian"``) and the only noise their code had before 3 June 2014
(EXPERIMENTS.md, "Issue 42"). The default here is the published yaml's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NOISE_DIM = 100
IMAGE = (1, 28, 28)
NOISES = ("uniform", "gaussian")    # p_z: uniform on [-sqrt 3, sqrt 3], or N(0, I); both zero mean, unit variance


class Generator(nn.Module):
    """z (100 dims; ``noise``: uniform on [-sqrt 3, sqrt 3] or N(0, I), both zero mean, unit variance) -> an
    image in [0, 1]. The noise is part of the model (it is not in the state_dict): a saved generator is rebuilt
    with the ``noise`` it was trained with (metrics.json's ``model.kwargs``)."""

    def __init__(self, noise_dim: int = NOISE_DIM, hidden: int = 1200, x_dim: int = 784, init_range: float = 0.05,
                 noise: str = "uniform"):
        super().__init__()
        if noise not in NOISES:
            raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
        self.noise_dim, self.noise_kind = noise_dim, noise
        self.net = nn.Sequential(nn.Linear(noise_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, x_dim))
        for m in self.net:   # mnist.yaml: irange .05 (uniform weights), zero biases
            if isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -init_range, init_range)
                nn.init.zeros_(m.bias)

    def init_output_bias(self, pixel_means: torch.Tensor) -> None:
        """The output sigmoid's biases set so that G(z) starts at the data's mean image (pylearn2's
        ``init_sigmoid_bias_from_marginals``): logit of each pixel's mean, clipped away from 0 and 1."""
        p = pixel_means.flatten().clamp(1e-6, 1 - 1e-6)
        with torch.no_grad():
            self.net[-1].bias.copy_(torch.log(p) - torch.log1p(-p))

    def noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n draws of z from p_z (on the CPU from ``generator`` or the global stream, then moved to G's device)."""
        device = self.net[0].weight.device
        if self.noise_kind == "gaussian":      # the authors' get_noise: theano_rng.normal(size=size)
            return torch.randn(n, self.noise_dim, generator=generator).to(device)
        u = torch.rand(n, self.noise_dim, generator=generator).to(device)
        return (2 * u - 1) * math.sqrt(3)      # theano_rng.uniform(low=-np.sqrt(3), high=np.sqrt(3))

    def extra_repr(self) -> str:
        return f"noise={self.noise_kind}"

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the pixels (the sigmoid is applied by :meth:`images` and :meth:`sample`)."""
        return self.net(z)

    def images(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self(z)).view(-1, *IMAGE)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n images, N x 1 x 28 x 28 in [0, 1] (eval mode: no dropout anywhere in G anyway)."""
        return self.images(self.noise(n, generator))


class Maxout(nn.Module):
    """Goodfellow et al. (2013): ``units`` outputs, each the max of ``pieces`` affine functions of the input."""

    def __init__(self, n_in: int, units: int, pieces: int):
        super().__init__()
        self.units, self.pieces = units, pieces
        self.linear = nn.Linear(n_in, units * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(*x.shape[:-1], self.units, self.pieces).amax(-1)


class Discriminator(nn.Module):
    """x (784) -> dropout(keep 0.8) -> maxout 240x5 -> dropout(keep 0.5) -> maxout 240x5 -> dropout(keep 0.5) ->
    1 logit (D(x) = sigmoid of it). Dropout is inverted (kept units scaled by 1/keep), as pylearn2's
    ``input_scales`` of 1.25 and 2 do."""

    def __init__(self, x_dim: int = 784, units: int = 240, pieces: int = 5, init_range: float = 0.005):
        super().__init__()
        self.net = nn.Sequential(nn.Dropout(0.2), Maxout(x_dim, units, pieces), nn.Dropout(0.5),
                                 Maxout(units, units, pieces), nn.Dropout(0.5), nn.Linear(units, 1))
        for m in self.modules():   # mnist.yaml: irange .005, zero biases
            if isinstance(m, nn.Linear):
                nn.init.uniform_(m.weight, -init_range, init_range)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logit of D(x), one per image."""
        return self.net(x.flatten(1)).squeeze(-1)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-V(D, G) / 2 on a batch: the mean of -log D(x) and -log(1 - D(G(z))) (the code's d_obj)."""
    return 0.5 * (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Sec. 3's non-saturating objective: minimise -log D(G(z)) (the code's g_obj)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def generator_loss_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Eq. 1's minimax objective for G: minimise log(1 - D(G(z))), which saturates when D rejects G's samples."""
    return -F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))

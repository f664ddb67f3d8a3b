"""The variational auto-encoder of Kingma & Welling (2013), "Auto-Encoding Variational Bayes".

A Gaussian encoder q_phi(z|x) = N(mu, sigma^2 I) and a Bernoulli decoder p_theta(x|z), both MLPs
(Appendix C), trained together on the SGVB estimate of the variational lower bound (Eq. 10):

    L(theta, phi; x) ~= 1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2) + 1/L sum_l log p_theta(x | z_l)
    z_l = mu + sigma * eps_l,  eps_l ~ N(0, I)                      (the reparameterisation, Sec. 2.4)

The first term is -KL(q_phi(z|x) || N(0, I)) in closed form (Appendix B). The log-likelihood itself is
estimated by importance sampling with q as the proposal (Appendix D; Burda et al. 2015, Eq. 8):

    log p(x) ~= log 1/k sum_i p_theta(x, z_i) / q_phi(z_i | x),   z_i ~ q_phi(z | x)

The benchmark architecture (Burda, Grosse & Salakhutdinov 2015, Sec. 5): 784-200-200-50 encoder with tanh
hidden units, the decoder mirrored (50-200-200-784), Bernoulli outputs. The paper's own MNIST models
(Fig. 2) have one hidden layer of 500 units: ``VAE(hidden=(500,))``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)


def mlp(sizes: tuple[int, ...]) -> nn.Sequential:
    """Affine layers with tanh between them (Appendix C), none after the last."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per example, summed over dimensions (Appendix B):
    -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(-1)


def log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def log_standard_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension: the prior p(z)."""
    return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x | z) of binary pixels x under Bernoulli(sigmoid(logits)), summed over pixels (Appendix C.1)."""
    return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)


class VAE(nn.Module):
    """Encoder x -> (mu, log sigma^2), decoder z -> logits of the 784 pixels.

    ``forward(x)`` returns the per-example SGVB lower bound (Eq. 10, one sample: L = 1) for binary images x
    (N x 784 or N x 1 x 28 x 28, values in {0, 1}); train by maximising its mean."""

    def __init__(self, x_dim: int = 784, hidden: tuple[int, ...] = (200, 200), latent: int = 50,
                 init: str = "glorot"):
        super().__init__()
        self.x_dim, self.latent = x_dim, latent
        self.encoder = mlp((x_dim, *hidden, 2 * latent))              # q_phi(z|x): mu and log sigma^2 (C.2)
        self.decoder = mlp((latent, *reversed(hidden), x_dim))       # p_theta(x|z): Bernoulli logits (C.1)
        for m in self.modules():
            if not isinstance(m, nn.Linear):
                continue
            if init == "glorot":       # Burda et al. Sec. 5: Glorot & Bengio (2010), uniform; biases 0 (their code)
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif init == "normal":     # Kingma & Welling Sec. 5: every parameter from N(0, 0.01)
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.normal_(m.bias, 0, 0.01)
            else:
                raise ValueError(f"init must be 'glorot' or 'normal', not {init!r}")

    def init_output_bias(self, pixel_means: torch.Tensor) -> None:
        """Burda et al.'s code: the decoder's output biases at the logit of each pixel's mean over the training
        images (clipped to [0.001, 0.999]), so that the untrained decoder already draws the mean digit."""
        with torch.no_grad():
            self.decoder[-1].bias.copy_(torch.logit(pixel_means.flatten(), eps=1e-3))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x.flatten(1)).chunk(2, dim=-1)
        return mu, logvar

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """z = mu + sigma * eps (Sec. 2.4); ``k`` samples per example give k x N x latent."""
        shape = mu.shape if k is None else (k, *mu.shape)
        return mu + (0.5 * logvar).exp() * torch.randn(shape, dtype=mu.dtype, device=mu.device)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return bernoulli_log_likelihood(self.decode(z), x) - gaussian_kl(mu, logvar)

    @torch.no_grad()
    def log_likelihood(self, x: torch.Tensor, k: int = 5000, chunk: int = 500) -> torch.Tensor:
        """The importance-sampled estimate of log p(x) per example with ``k`` samples of q (Burda et al.,
        Eq. 8), by a running log-sum-exp over chunks of samples (memory: chunk x N x 784)."""
        x = x.flatten(1)
        mu, logvar = self.encode(x)
        total = torch.full((len(x),), -math.inf, device=x.device)
        done = 0
        while done < k:
            m = min(chunk, k - done)
            z = self.reparameterize(mu, logvar, m)                                      # m x N x latent
            log_w = (bernoulli_log_likelihood(self.decode(z), x) + log_standard_normal(z)   # log p(x|z) + log p(z)
                     - log_normal(z, mu, logvar))                                           # - log q(z|x)
            total = torch.logaddexp(total, torch.logsumexp(log_w, 0))
            done += m
        return total - math.log(k)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Pixel means of n images decoded from z ~ N(0, I): N x 1 x 28 x 28 in [0, 1]."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent, generator=generator).to(device)
        return torch.sigmoid(self.decode(z)).view(n, 1, 28, 28)

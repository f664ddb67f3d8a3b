"""The Parzen-window log-likelihood estimate of Table 1 (Breuleux et al. 2011; the authors' ``parzen_ll.py``).

A Gaussian of width sigma is put on each of M generator samples s_i (flattened images); a test image x then
has the log-density

    log p(x) = log 1/M sum_i N(x; s_i, sigma^2 I)
             = logsumexp_i( -||x - s_i||^2 / (2 sigma^2) ) - log M - D/2 log(2 pi sigma^2)

sigma is chosen on validation images from a log-spaced grid (the authors: 10 values from 0.1 to 1, the first
1,000 validation images) and never on the test set; Table 1 reports the mean over the test images and its
standard error.
"""

from __future__ import annotations

import math

import numpy as np
import torch

SIGMA_GRID = tuple(np.logspace(-1, 0, 10).tolist())   # parzen_ll.py: logspace(sigma_start=-1, sigma_end=0, num=10)


@torch.no_grad()
def parzen_log_likelihood(x: torch.Tensor, samples: torch.Tensor, sigma: float, batch: int = 100) -> torch.Tensor:
    """log p(x) of every row of ``x`` (N x D) under the Parzen window on ``samples`` (M x D), in batches of
    ``batch`` rows (memory: batch x M); float64 sums, numerically stable (log-sum-exp)."""
    if x.shape[1] != samples.shape[1]:
        raise ValueError(f"dimensions differ: x {tuple(x.shape)}, samples {tuple(samples.shape)}")
    s = samples.double()
    s_sq = s.pow(2).sum(1)
    m, d = s.shape
    z = math.log(m) + 0.5 * d * math.log(2 * math.pi * sigma**2)
    out = []
    for i in range(0, len(x), batch):
        xb = x[i : i + batch].double().to(s.device)
        sq = (xb.pow(2).sum(1, keepdim=True) - 2 * xb @ s.t() + s_sq).clamp_min(0)   # ||x - s_i||^2
        out.append(torch.logsumexp(-sq / (2 * sigma**2), dim=1) - z)
    return torch.cat(out).float()


def choose_sigma(valid: torch.Tensor, samples: torch.Tensor, grid=SIGMA_GRID, batch: int = 100) -> tuple[float, list]:
    """The sigma of ``grid`` with the highest mean log-likelihood of ``valid``; also every (sigma, mean)."""
    scores = [(sigma, parzen_log_likelihood(valid, samples, sigma, batch).mean().item()) for sigma in grid]
    return max(scores, key=lambda t: t[1])[0], scores

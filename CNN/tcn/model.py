"""The temporal convolutional network (TCN) of Bai, Kolter & Koltun (2018), Sec. 3.

"An Empirical Evaluation of Generic Convolutional and Recurrent Networks for Sequence Modeling",
arXiv:1803.01271. A TCN maps a sequence x_0 .. x_T to y_0 .. y_T, each y_t computed from x_0 .. x_t only:

    Sec. 3.2, causal convolutions: the output at t sees inputs at t and earlier, never later ones; the
        input is padded with (k - 1) d zeros on the left (the authors pad both sides and chop the right
        end off, which is the same computation).
    Sec. 3.3, dilated convolutions: F(s) = (x *_d f)(s) = sum_{i=0}^{k-1} f(i) x_{s - d i}, with the dilation
        d = 2^i at level i, so the receptive field grows exponentially with the depth.
    Sec. 3.4, residual blocks (Fig. 1b): o = Activation(x + F(x)), F being two rounds of
        [dilated causal convolution -> weight normalisation -> ReLU -> dropout]; a 1x1 convolution
        on the shortcut where the input and output widths differ.

For polyphonic music (Sec. 4, Table 1) the input at t is the piano roll frame x_t (88 notes, 0/1) and a
linear layer with a sigmoid gives p(x_{t+1} | x_1 .. x_t) for every note.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

# Supplementary Table 2 (TCN parameter settings), polyphonic music: kernel size k, levels n, hidden units,
# dropout, gradient clip. Table 1 gives the model sizes as about 300K (JSB) and 1M (Nottingham).
PAPER_SETTINGS = {
    "jsb": {"k": 3, "levels": 2, "hidden": 150, "dropout": 0.5, "clip": 0.4, "size": 300e3},
    "nottingham": {"k": 6, "levels": 4, "hidden": 150, "dropout": 0.2, "clip": 0.4, "size": 1e6},
}


class CausalConv1d(nn.Module):
    """A weight-normalised dilated causal convolution (Secs. 3.2-3.4): y_t = sum_i f(i) x_{t - d i} + b.

    Weight normalisation (Salimans & Kingma 2016) writes each output filter as w = g v / ||v||."""

    def __init__(self, n_in: int, n_out: int, k: int, d: int):
        super().__init__()
        self.pad = (k - 1) * d                                     # zeros on the left: nothing from the future
        self.conv = weight_norm(nn.Conv1d(n_in, n_out, k, dilation=d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:          # N x C x T -> N x C' x T
        return self.conv(F.pad(x, (self.pad, 0)))


class TemporalBlock(nn.Module):
    """The residual block of Fig. 1b at dilation d: o = ReLU(x + F(x))."""

    def __init__(self, n_in: int, n_out: int, k: int, d: int, dropout: float):
        super().__init__()
        self.conv1, self.conv2 = CausalConv1d(n_in, n_out, k, d), CausalConv1d(n_out, n_out, k, d)
        self.dropout = nn.Dropout(dropout)     # the authors' code drops single activations (nn.Dropout)
        self.downsample = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else None   # the 1x1 shortcut
        if self.downsample is not None:
            nn.init.normal_(self.downsample.weight, 0.0, 0.01)               # Sec. 5: N(0, 0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(F.relu(self.conv1(x)))
        h = self.dropout(F.relu(self.conv2(h)))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)))


class TCN(nn.Module):
    """``levels`` temporal blocks of ``hidden`` channels at dilations 1, 2, 4, ..., 2^(levels-1), and a linear
    output layer applied at every time step.

    ``forward(x)`` takes N x T x n_in and returns N x T x n_out (logits); output t depends on x_0 .. x_t only.
    """

    def __init__(self, n_in: int = 88, n_out: int = 88, hidden: int = 150, levels: int = 2, k: int = 3,
                 dropout: float = 0.5):
        super().__init__()
        if levels < 1 or k < 2:
            raise ValueError(f"a TCN needs levels >= 1 and kernel size k >= 2, got levels={levels}, k={k}")
        self.k, self.levels = k, levels
        widths = [n_in] + [hidden] * levels
        self.blocks = nn.Sequential(*[TemporalBlock(widths[i], widths[i + 1], k, 2**i, dropout)
                                      for i in range(levels)])
        self.linear = nn.Linear(hidden, n_out)

    @property
    def receptive_field(self) -> int:
        """Inputs an output sees: 1 + sum over levels of 2 convolutions x (k - 1) x 2^i = 1 + 2 (k - 1)(2^n - 1)."""
        return 1 + 2 * (self.k - 1) * (2**self.levels - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(x.transpose(1, 2))            # convolutions run over time: N x C x T
        return self.linear(h.transpose(1, 2))

    @torch.no_grad()
    def sample(self, steps: int, prime: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """A piano roll (steps x 88) drawn frame by frame from the model's own predictions, after the frames of
        ``prime`` (T0 x 88, kept at the start of the result)."""
        device = self.linear.weight.device
        roll = (prime.float().to(device) if prime is not None
                else torch.zeros(0, self.linear.out_features, device=device))
        for _ in range(steps):
            # the first frame is predicted from one all-zero frame (silence before the piece)
            context = roll[-self.receptive_field:] if len(roll) else roll.new_zeros(1, roll.shape[1])
            p = torch.sigmoid(self(context[None])[0, -1])
            frame = torch.bernoulli(p.cpu(), generator=generator).to(device)
            roll = torch.cat([roll, frame[None]])
        return roll

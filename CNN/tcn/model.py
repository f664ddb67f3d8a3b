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


# --------------------------------------------------------------------------- Sec. 4's stress tests and pixel MNIST
#
# The same TCN on the synthetic stress tests and on MNIST read pixel by pixel (Sec. 4, Table 1), against the generic
# recurrent networks of Sec. 5 (nn.LSTM, nn.GRU, a tanh nn.RNN) of about the same size.

# Supplementary Table 2, TCN settings: k, levels n, hidden units, dropout, gradient clip (0 = N/A). Where the table
# lists two settings (Seq. MNIST, P-MNIST: 7/8/25 and 6/8/20) the first is taken: it is also the authors' code default
# (mnist_pixel/pmnist_test.py) and the model of Fig. 3 ("TCN 8x25, k=7 (66K)"), the size of Table 1 (70K).
# Adding T = 600 and copy memory T = 1000: Table 2's rows, the models of Figs. 2 and 4 ("8x24, k=8 (70K)",
# "8x10, k=8 (13K)"). `size` is Table 1's "Model Size (~)" column, the size the recurrent baselines are built to.
TASK_SETTINGS = {
    "smnist": {"k": 7, "levels": 8, "hidden": 25, "dropout": 0.0, "clip": 0.0, "size": 70e3},
    "pmnist": {"k": 7, "levels": 8, "hidden": 25, "dropout": 0.0, "clip": 0.0, "size": 70e3},
    "adding": {"k": 8, "levels": 8, "hidden": 24, "dropout": 0.0, "clip": 0.0, "size": 70e3},
    "copy": {"k": 8, "levels": 8, "hidden": 10, "dropout": 0.05, "clip": 1.0, "size": 16e3},
}
# Inputs and outputs per step: pixel MNIST reads one grey level per step and classifies at the last one; the adding
# problem reads (value, marker) and regresses the sum at the last step; copy memory reads one digit (its value, as
# the authors' code feeds it) and predicts one of 10 digits at every step.
TASK_IO = {"smnist": (1, 10), "pmnist": (1, 10), "adding": (2, 1), "copy": (1, 10)}
# Recurrent baselines, one layer, hidden units that give Table 1's size with these inputs and outputs: the LSTM's
# 130 is supplementary Table 3's (Seq. MNIST, P-MNIST, adding T = 600); for copy memory Table 3's 50 units make
# 11K parameters against Table 1's and Fig. 4's 16K, and we follow the 16K. GRU and tanh RNN: "more hidden units
# than in LSTM to keep the total network size approximately the same" (supplement A.2).
RECURRENT_HIDDEN = {
    "smnist": {"lstm": 130, "gru": 150, "rnn": 258},
    "pmnist": {"lstm": 130, "gru": 150, "rnn": 258},
    "adding": {"lstm": 130, "gru": 151, "rnn": 262},
    "copy": {"lstm": 61, "gru": 70, "rnn": 120},
}
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081        # the authors' transforms.Normalize((0.1307,), (0.3081,))


class RecurrentNet(nn.Module):
    """The generic recurrent baselines of Sec. 5: torch's ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN`` (tanh), ``layers``
    deep, dropout on each layer's output, and a linear output layer at every step: the same interface as
    :class:`TCN` (N x T x n_in -> N x T x n_out).

    ``forget_bias`` sets the LSTM's initial forget-gate bias (supplementary Table 3, "Bias"; Sec. 5 searches it)."""

    UNITS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

    def __init__(self, unit: str = "lstm", n_in: int = 1, n_out: int = 10, hidden: int = 130, layers: int = 1,
                 dropout: float = 0.0, forget_bias: float | None = None):
        super().__init__()
        if unit not in self.UNITS:
            raise ValueError(f"unit must be one of {', '.join(self.UNITS)}, got {unit!r}")
        self.unit = unit
        self.rnn = self.UNITS[unit](n_in, hidden, layers, batch_first=True, dropout=dropout if layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden, n_out)
        if forget_bias is not None:
            if unit != "lstm":
                raise ValueError(f"forget_bias is an LSTM setting, not one of a {unit}")
            with torch.no_grad():           # gates ordered (input, forget, cell, output) in both bias vectors
                for name, b in self.rnn.named_parameters():
                    if name.startswith("bias_"):
                        b[hidden:2 * hidden] = forget_bias if name.startswith("bias_ih") else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(x)
        return self.linear(self.dropout(h))


class TaskModel(nn.Module):
    """One of Sec. 4's tasks around one sequence network: the TCN (``arch="tcn"``) or a recurrent baseline
    (``"lstm"``, ``"gru"``, ``"rnn"``), taking the task's natural input:

    * ``smnist`` / ``pmnist``: images N x 1 x 28 x 28 in [0, 1] (torchvision's ``ToTensor``), normalised with the
      authors' mean and std, read row by row as 784 steps of one pixel (P-MNIST: in a fixed random order, the
      ``permutation`` buffer, drawn from ``permutation_seed`` and saved with the weights); N x 10 logits from the
      last step (the authors' ``linear(y[:, :, -1])``).
    * ``adding``: N x T x 2 (values, markers); the predicted sum, N, from the last step.
    * ``copy``: N x (T + 20) digits 0-9 (any integer type), fed as their values, one per step; N x (T + 20) x 10
      logits, one digit predicted at every step.

    For the TCN, ``hidden``/``levels``/``k`` are Table 2's; for the recurrent nets ``levels`` is the number of layers
    and ``k`` is unused. As in the authors' adding and copy models, the TCN's output layer starts from N(0, 0.01)."""

    def __init__(self, task: str = "smnist", arch: str = "tcn", hidden: int = 25, levels: int = 8, k: int = 7,
                 dropout: float = 0.0, forget_bias: float | None = None, permutation_seed: int = 0):
        super().__init__()
        if task not in TASK_IO:
            raise ValueError(f"task must be one of {', '.join(TASK_IO)}, got {task!r}")
        self.task, self.arch = task, arch
        n_in, n_out = TASK_IO[task]
        if arch == "tcn":
            self.net = TCN(n_in, n_out, hidden, levels, k, dropout)
            if task in ("adding", "copy"):
                nn.init.normal_(self.net.linear.weight, 0.0, 0.01)
        else:
            self.net = RecurrentNet(arch, n_in, n_out, hidden, levels, dropout, forget_bias)
        if task == "pmnist":
            self.register_buffer("permutation", pmnist_permutation(permutation_seed))

    @property
    def receptive_field(self) -> int | None:
        """Input steps one output sees (the TCN's); None for a recurrent net (all steps so far)."""
        return self.net.receptive_field if self.arch == "tcn" else None

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """The task's input as the network reads it: N x T x n_in floats."""
        if self.task in ("smnist", "pmnist"):
            x = ((x.float() - MNIST_MEAN) / MNIST_STD).flatten(1)             # rows one after the other: N x 784
            if self.task == "pmnist":
                x = x[:, self.permutation]
            return x.unsqueeze(-1)
        if self.task == "copy":
            return x.float().unsqueeze(-1)
        return x.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(self.sequence(x))
        if self.task == "copy":
            return y                       # a prediction at every step
        y = y[:, -1]                       # the last step has seen the whole sequence
        return y.squeeze(-1) if self.task == "adding" else y


def pmnist_permutation(seed: int = 0, n: int = 784) -> torch.Tensor:
    """P-MNIST's fixed pixel order (Sec. 4): a random permutation of the 784 positions from ``seed`` alone. (The
    authors' pmnist_test.py draws it with numpy's unseeded global generator: a new order every run.)"""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))

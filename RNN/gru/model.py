"""Recurrent units of Chung, Gulcehre, Cho & Bengio (2014), written out from the paper's equations.

    tanh RNN (Sec. 2, Eq. 2):   h_t = tanh(W x_t + U h_{t-1})
    LSTM (Sec. 3.1):            i_t = s(W_i x_t + U_i h_{t-1} + V_i c_{t-1})
                                f_t = s(W_f x_t + U_f h_{t-1} + V_f c_{t-1})
                                c~_t = tanh(W_c x_t + U_c h_{t-1})
                                c_t = f_t c_{t-1} + i_t c~_t
                                o_t = s(W_o x_t + U_o h_{t-1} + V_o c_t)
                                h_t = o_t tanh(c_t)              (V_i, V_f, V_o diagonal: peepholes)
    GRU (Sec. 3.2):             z_t = s(W_z x_t + U_z h_{t-1})
                                r_t = s(W_r x_t + U_r h_{t-1})
                                h~_t = tanh(W x_t + U (r_t * h_{t-1}))
                                h_t = (1 - z_t) h_{t-1} + z_t h~_t

(s is the logistic sigmoid; every affine map also has a bias.) A music model (Sec. 4) reads the
piano roll one frame at a time and outputs, through a sigmoid layer, the probability of each of
the 88 notes being on at the next frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# Table 1 (music datasets): units per model, chosen so that the three have about the same number
# of parameters.
PAPER_UNITS = {"tanh": 100, "gru": 46, "lstm": 36}


class TanhRNNCell(nn.Module):
    """Eq. 2 with g = tanh."""

    def __init__(self, n_in: int, n_hidden: int):
        super().__init__()
        self.W = nn.Linear(n_in, n_hidden)              # W x_t + b
        self.U = nn.Linear(n_hidden, n_hidden, bias=False)
        self.state_size = n_hidden

    def input_part(self, x: torch.Tensor) -> torch.Tensor:
        return self.W(x)  # for all time steps at once

    def forward(self, wx: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(wx + self.U(h))

    def output(self, state: torch.Tensor) -> torch.Tensor:
        return state  # the state is h_t


class LSTMCell(nn.Module):
    """Sec. 3.1. With ``peephole=False`` (V_i = V_f = V_o = 0) it is PyTorch's ``nn.LSTMCell``.

    State: (h, c). Gates are stacked in the order i, f, c~, o (as in ``nn.LSTM``).
    """

    def __init__(self, n_in: int, n_hidden: int, peephole: bool = True):
        super().__init__()
        self.W = nn.Linear(n_in, 4 * n_hidden)              # W_i, W_f, W_c, W_o and biases
        self.U = nn.Linear(n_hidden, 4 * n_hidden, bias=False)
        self.V = nn.Parameter(torch.zeros(3, n_hidden)) if peephole else None   # diag(V_i), diag(V_f), diag(V_o)
        self.n = n_hidden
        self.state_size = 2 * n_hidden

    def input_part(self, x: torch.Tensor) -> torch.Tensor:
        return self.W(x)

    def forward(self, wx: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        h, c = state[:, : self.n], state[:, self.n :]
        a_i, a_f, a_c, a_o = (wx + self.U(h)).chunk(4, dim=1)
        if self.V is not None:
            a_i, a_f = a_i + self.V[0] * c, a_f + self.V[1] * c
        i, f = torch.sigmoid(a_i), torch.sigmoid(a_f)
        c = f * c + i * torch.tanh(a_c)                     # Eq. 4 (the paper's c_t)
        if self.V is not None:
            a_o = a_o + self.V[2] * c                       # the output gate looks at the new c_t
        h = torch.sigmoid(a_o) * torch.tanh(c)
        return torch.cat([h, c], dim=1)

    def output(self, state: torch.Tensor) -> torch.Tensor:
        return state[:, : self.n]


class GRUCell(nn.Module):
    """Sec. 3.2 (Eqs. 5-8). ``reset_after=True`` applies r_t after the matrix product,
    r_t * (U h_{t-1} + b), the cuDNN/PyTorch variant: then, with W_z and U_z negated (PyTorch's
    z_t is the paper's 1 - z_t), it computes exactly what ``nn.GRUCell`` does."""

    def __init__(self, n_in: int, n_hidden: int, reset_after: bool = False):
        super().__init__()
        self.W = nn.Linear(n_in, 3 * n_hidden)              # W_r, W_z, W and biases
        self.U_rz = nn.Linear(n_hidden, 2 * n_hidden, bias=False)
        self.U = nn.Linear(n_hidden, n_hidden, bias=reset_after)
        self.reset_after = reset_after
        self.n = n_hidden
        self.state_size = n_hidden

    def input_part(self, x: torch.Tensor) -> torch.Tensor:
        return self.W(x)

    def forward(self, wx: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        wx_rz, wx_h = wx[:, : 2 * self.n], wx[:, 2 * self.n :]
        r, z = torch.sigmoid(wx_rz + self.U_rz(h)).chunk(2, dim=1)   # Eqs. 7 and 6
        if self.reset_after:
            h_tilde = torch.tanh(wx_h + r * self.U(h))
        else:
            h_tilde = torch.tanh(wx_h + self.U(r * h))               # Eq. 8
        return (1 - z) * h + z * h_tilde                              # Eq. 5

    def output(self, state: torch.Tensor) -> torch.Tensor:
        return state  # the state is h_t


CELLS = {"tanh": TanhRNNCell, "lstm": LSTMCell, "gru": GRUCell}


class MusicRNN(nn.Module):
    """One recurrent layer and a sigmoid output layer over the notes (Sec. 4).

    ``forward(roll)`` takes piano rolls (N x T x 88, 0/1) and returns, for every t, the logits of
    p(x_t | x_1 .. x_{t-1}); the first frame is predicted from h_0 = 0 and an all-zero input.
    """

    def __init__(self, unit: str = "gru", n_notes: int = 88, n_hidden: int | None = None):
        super().__init__()
        self.unit, self.n_notes = unit, n_notes
        self.n_hidden = n_hidden or PAPER_UNITS[unit]
        self.cell = CELLS[unit](n_notes, self.n_hidden)
        self.out = nn.Linear(self.n_hidden, n_notes)

    def hidden_states(self, roll: torch.Tensor) -> torch.Tensor:
        """h_1 .. h_T (N x T x n_hidden) for the shifted input [0, x_1, .., x_{T-1}]."""
        x = F.pad(roll[:, :-1], (0, 0, 1, 0))
        wx = self.cell.input_part(x)                    # input projections of all steps at once
        state = wx.new_zeros(len(roll), self.cell.state_size)
        outputs = []
        for t in range(roll.shape[1]):
            state = self.cell(wx[:, t], state)
            outputs.append(self.cell.output(state))
        return torch.stack(outputs, dim=1)

    def forward(self, roll: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden_states(roll))

    @torch.no_grad()
    def sample(self, steps: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw a piano roll (steps x 88) note by note from the model's own predictions."""
        device = self.out.weight.device
        x = torch.zeros(1, self.n_notes, device=device)
        state = x.new_zeros(1, self.cell.state_size)
        frames = []
        for _ in range(steps):
            state = self.cell(self.cell.input_part(x), state)
            p = torch.sigmoid(self.out(self.cell.output(state)))
            x = torch.bernoulli(p.cpu(), generator=generator).to(device)
            frames.append(x[0])
        return torch.stack(frames)

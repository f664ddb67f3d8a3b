"""The word-level LSTM language model of Zaremba, Sutskever & Vinyals (2014), "Recurrent Neural Network
Regularization", with dropout on the non-recurrent connections only (Sec. 3).

Sec. 3.1, the LSTM of layer l at time t (T_{n,m} an affine map R^n -> R^m, D the dropout operator):

    (i, f, o, g) = (sigm, sigm, sigm, tanh)( T_{2n,4n} ( D(h_t^{l-1}), h_{t-1}^l ) )
    c_t^l = f * c_{t-1}^l + i * g
    h_t^l = o * tanh(c_t^l)

D touches h_t^{l-1}, the input from the layer below (Fig. 2's dashed, vertical arrows), never h_{t-1}^l,
the recurrent one (solid, horizontal): a word's information is dropped exactly L + 1 times on its way to any
later prediction, however far in time. h_t^0 is the word embedding; the softmax reads D(h_t^L).

``nn.LSTM`` of one layer computes Sec. 3.1's cell (with two bias vectors, as the authors' Torch code's two
``nn.Linear``); the layers are stacked by hand so that D sits exactly where Fig. 2 puts it.
"""

from __future__ import annotations

import torch
from torch import nn

# Sec. 4.1: units per layer, dropout on non-recurrent connections, uniform initialisation range.
SIZES = {
    "small": {"hidden": 200, "dropout": 0.0, "init_scale": 0.1},
    "medium": {"hidden": 650, "dropout": 0.5, "init_scale": 0.05},
    "large": {"hidden": 1500, "dropout": 0.65, "init_scale": 0.04},
}

State = list[tuple[torch.Tensor, torch.Tensor]]   # (h, c) of every layer, each 1 x B x n


class RegularizedLSTM(nn.Module):
    """Embedding -> D -> LSTM_1 -> D -> ... -> LSTM_L -> D -> linear -> softmax (Fig. 2, Sec. 3).

    ``forward(x, state)`` takes word ids x (T x B) and the state carried over from the previous window, and
    returns the logits (T x B x V) of the next word at every step and the new state."""

    def __init__(self, vocab_size: int = 10000, hidden: int = 200, layers: int = 2, dropout: float = 0.0,
                 init_scale: float = 0.1):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.hidden, self.layers = hidden, layers
        self.embedding = nn.Embedding(vocab_size, hidden)                                   # h_t^0
        self.lstm = nn.ModuleList(nn.LSTM(hidden, hidden) for _ in range(layers))          # T_{2n,4n}, per layer
        self.drop = nn.Dropout(dropout)                                                    # D
        self.decoder = nn.Linear(hidden, vocab_size)                                       # softmax layer
        for p in self.parameters():   # Sec. 4.1: every parameter uniform in [-init_scale, init_scale]
            nn.init.uniform_(p, -init_scale, init_scale)

    @classmethod
    def of_size(cls, size: str, vocab_size: int = 10000) -> "RegularizedLSTM":
        if size not in SIZES:
            raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
        return cls(vocab_size, **SIZES[size])

    def init_state(self, batch_size: int) -> State:
        z = self.embedding.weight.new_zeros(1, batch_size, self.hidden)
        return [(z, z) for _ in range(self.layers)]

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        if x.dim() != 2:
            raise ValueError(f"expected word ids T x B, got shape {tuple(x.shape)}")
        state = state if state is not None else self.init_state(x.shape[1])
        h = self.drop(self.embedding(x))                        # D(h_t^0)
        new_state = []
        for lstm, s in zip(self.lstm, state):
            h, s = lstm(h, s)                                   # h_{t-1}^l enters undropped
            new_state.append(s)
            h = self.drop(h)                                    # D(h_t^l): to the layer above / the softmax
        return self.decoder(h), new_state


def detach(state: State) -> State:
    """The state carried into the next window without its graph (truncated backpropagation)."""
    return [(h.detach(), c.detach()) for h, c in state]

"""The simple recurrent network (SRN) of Elman (1990), *Finding Structure in Time*, Fig. 2.

Four layers of units, all logistic (range [0, 1]):

    input x(t) --W_xh--> hidden h(t) <--W_ch-- context c(t)
                           |                     ^
                           |  copied, weight 1   |   c(t) = h(t-1)   (fixed one-to-one links, not trained)
                           +---------------------+
    hidden h(t) --W_hy--> output y(t)

    h(t) = sigma(W_xh x(t) + W_ch c(t) + b_h)
    y(t) = sigma(W_hy h(t) + b_y)                 trained to predict x(t+1)

The context units are extra inputs: the error is backpropagated into W_ch, but not through the copy into
earlier steps (the paper trains with plain backpropagation, one time step at a time). ``forward`` therefore
detaches c(t). The context starts at 0.5 (the logistic's midpoint) at the beginning of the stream.
``truncate=False`` keeps the copy attached, i.e. full backpropagation through time (used only by
``experiments/xor_limit.py`` to see how far the paper's network can go when trained by other means).
"""

from __future__ import annotations

import torch
from torch import nn

# The paper's sizes: input, hidden (= context), output units per experiment.
PAPER_SIZES = {"xor": (1, 2, 1), "letters": (6, 20, 6)}
CONTEXT_START = 0.5


class SRN(nn.Module):
    """Elman's simple recurrent network. ``forward(x)`` takes a stream (T x n_in, or N x T x n_in) and returns
    the outputs (same leading shape, n_out) and the hidden states; ``context`` continues a stream."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, truncate: bool = True):
        super().__init__()
        self.n_hidden, self.truncate = n_hidden, truncate
        self.input_to_hidden = nn.Linear(n_in, n_hidden)                  # W_xh and b_h
        self.context_to_hidden = nn.Linear(n_hidden, n_hidden, bias=False)  # W_ch
        self.hidden_to_output = nn.Linear(n_hidden, n_out)                # W_hy and b_y

    def initial_context(self, batch: int | None = None) -> torch.Tensor:
        shape = (self.n_hidden,) if batch is None else (batch, self.n_hidden)
        return torch.full(shape, CONTEXT_START, device=self.input_to_hidden.weight.device)

    def _copy(self, hidden: torch.Tensor) -> torch.Tensor:
        """The copy into the context units: no error flows back through it (unless truncate=False)."""
        return hidden.detach() if self.truncate else hidden

    def step(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One time step: (output y(t), hidden h(t)); h(t) becomes the next step's context."""
        hidden = torch.sigmoid(self.input_to_hidden(x) + self.context_to_hidden(self._copy(context)))
        return torch.sigmoid(self.hidden_to_output(hidden)), hidden

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(0)
        context = self.initial_context(x.shape[0]) if context is None else context.reshape(x.shape[0], -1)
        wx = self.input_to_hidden(x)                                      # the input part, all steps at once
        hiddens = []
        for t in range(x.shape[1]):
            context = torch.sigmoid(wx[:, t] + self.context_to_hidden(self._copy(context)))
            hiddens.append(context)
        hidden = torch.stack(hiddens, dim=1)
        out = torch.sigmoid(self.hidden_to_output(hidden))
        return (out, hidden) if batched else (out[0], hidden[0])

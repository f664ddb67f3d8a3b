"""Long Short-Term Memory as Hochreiter & Schmidhuber (1997) wrote it: memory blocks, no forget gate.

Notation of Sec. 4 (j = memory block, v = cell of the block, u ranges over all units feeding in):

    net_in_j(t)  = sum_u w_in_j,u  y^u(t-1)         y^in_j(t)  = f(net_in_j(t))        input gate
    net_out_j(t) = sum_u w_out_j,u y^u(t-1)         y^out_j(t) = f(net_out_j(t))       output gate
    net_c(t)     = sum_u w_c,u     y^u(t-1)
    s_c(t)       = s_c(t-1) + y^in_j(t) g(net_c(t))        (s_c(0) = 0)      the constant error carousel (CEC)
    y^c(t)       = y^out_j(t) h(s_c(t))
    y^k(t)       = f(sum_c w_k,c y^c(t) [+ bias])                            output units see only the cells

f is the logistic sigmoid (range [0, 1]), g a sigmoid with range [-2, 2] and h one with range [-1, 1]
(Sec. 5, "unless mentioned otherwise"). The units u feeding the hidden layer are the current input x(t) and
*all* hidden units at t-1 (cells and gates: a fully connected hidden layer), plus a bias where the experiment
has one. The cells of a block share its two gates.

**Truncated gradient (Sec. 4, App. A.1).** The paper's learning algorithm lets errors arriving at the net
inputs of cells and gates not flow further back in time; only the CEC carries error back, unchanged. In
autograd this is exactly: detach y(t-1) where it enters net_in, net_out and net_c, keep s_c(t-1) -> s_c(t)
attached. ``truncated=False`` gives full backpropagation through time instead.

``ModernLSTM`` wraps ``nn.LSTM`` (forget gate, tanh, no blocks) with the same output layer, for comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


def f(x: torch.Tensor) -> torch.Tensor:
    """Logistic sigmoid, range [0, 1] (gates and output units)."""
    return torch.sigmoid(x)


def g(x: torch.Tensor) -> torch.Tensor:
    """Cell input squashing, sigmoid with range [-2, 2]: 4 / (1 + e^-x) - 2."""
    return 4.0 * torch.sigmoid(x) - 2.0


def h(x: torch.Tensor) -> torch.Tensor:
    """Cell output squashing, sigmoid with range [-1, 1]: 2 / (1 + e^-x) - 1."""
    return 2.0 * torch.sigmoid(x) - 1.0


@dataclass
class LSTMConfig:
    """One experiment's architecture and initialisation (Sec. 5)."""

    n_in: int
    n_out: int
    blocks: int
    cells_per_block: int
    init_range: float                       # all weights uniform in [-init_range, init_range] ...
    in_gate_bias: tuple[float, ...] | None   # ... except these gate biases (None: random like the weights)
    out_gate_bias: tuple[float, ...] | None
    cell_bias: bool                          # do cells (and output units) have a bias weight?
    output_bias: bool

    def __post_init__(self):
        for name in ("in_gate_bias", "out_gate_bias"):
            value = getattr(self, name)
            if value is not None:
                value = tuple(float(v) for v in value)
                setattr(self, name, value)
                if len(value) != self.blocks:
                    raise ValueError(f"{name} has {len(value)} values for {self.blocks} blocks")


def reber_config(blocks: int = 3, cells_per_block: int = 2) -> LSTMConfig:
    """Experiment 1 (Sec. 5.1): 7 inputs, 7 outputs; 3 blocks of 2 cells (or 4 blocks of 1); only the gates
    are biased; weights in [-0.2, 0.2]; output-gate biases -1, -2, -3 (-4). 276 (3x2) or 264 (4x1) weights."""
    return LSTMConfig(n_in=7, n_out=7, blocks=blocks, cells_per_block=cells_per_block, init_range=0.2,
                      in_gate_bias=None, out_gate_bias=tuple(-1.0 - j for j in range(blocks)),
                      cell_bias=False, output_bias=False)


def adding_config(blocks: int = 2, cells_per_block: int = 2) -> LSTMConfig:
    """Experiment 4 (Sec. 5.4): 2 inputs, 1 output, 2 blocks of 2 cells; all non-input units biased; weights
    in [-0.1, 0.1]; input-gate biases -3 and -6 (to keep the cells from drifting early on). 93 weights."""
    in_bias = tuple(-3.0 * (j + 1) for j in range(blocks))
    return LSTMConfig(n_in=2, n_out=1, blocks=blocks, cells_per_block=cells_per_block, init_range=0.1,
                      in_gate_bias=in_bias, out_gate_bias=None, cell_bias=True, output_bias=True)


# Weight counts the paper states (Table 1 for Exp. 1, Table 7 for Exp. 4).
PAPER_WEIGHTS = {("reber", 3, 2): 276, ("reber", 4, 1): 264, ("adding", 2, 2): 93}


class LSTM1997(nn.Module):
    """The 1997 network: one hidden layer of memory blocks and an output layer of sigmoid units.

    ``forward(x)`` takes x (N x T x n_in) and returns the output units' activations at every step
    (N x T x n_out). ``forward(x, record=True)`` also returns a dict of the gate activations, the cell
    states s_c and the cell outputs y^c over time (for the notebook's plots).
    """

    def __init__(self, config: LSTMConfig, truncated: bool = True):
        super().__init__()
        self.config, self.truncated = config, truncated
        B, S = config.blocks, config.cells_per_block
        self.n_cells = B * S
        self.n_hidden = self.n_cells + 2 * B                      # cells, input gates, output gates
        # Rows: the cells (block by block), then the B input gates, then the B output gates.
        self.W = nn.Parameter(torch.empty(self.n_hidden, config.n_in))        # from the input units
        self.U = nn.Parameter(torch.empty(self.n_hidden, self.n_hidden))      # from all hidden units at t-1
        self.gate_bias = nn.Parameter(torch.empty(2 * B))
        self.cell_bias = nn.Parameter(torch.empty(self.n_cells)) if config.cell_bias else None
        self.out = nn.Linear(self.n_cells, config.n_out, bias=config.output_bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r, B = self.config.init_range, self.config.blocks
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-r, r)
            if self.config.in_gate_bias is not None:
                self.gate_bias[:B] = torch.tensor(self.config.in_gate_bias)
            if self.config.out_gate_bias is not None:
                self.gate_bias[B:] = torch.tensor(self.config.out_gate_bias)

    def bias(self) -> torch.Tensor:
        cells = self.cell_bias if self.cell_bias is not None else self.gate_bias.new_zeros(self.n_cells)
        return torch.cat([cells, self.gate_bias])

    def forward(self, x: torch.Tensor, record: bool = False):
        N, T, _ = x.shape
        C, B, S = self.n_cells, self.config.blocks, self.config.cells_per_block
        wx = x @ self.W.T + self.bias()                          # the input part of every net input, all t
        y = x.new_zeros(N, self.n_hidden)                        # y^u(t-1): activations reset to zero
        s = x.new_zeros(N, C)                                    # s_c(0) = 0
        cells_out, trace = [], {"in": [], "out": [], "s": [], "yc": []}
        for t in range(T):
            y_prev = y.detach() if self.truncated else y         # the truncation: no error through y(t-1)
            net = wx[:, t] + y_prev @ self.U.T
            y_in, y_out = f(net[:, C : C + B]), f(net[:, C + B :])
            s = s + y_in.repeat_interleave(S, dim=1) * g(net[:, :C])    # CEC: self-connection of weight 1
            yc = y_out.repeat_interleave(S, dim=1) * h(s)
            y = torch.cat([yc, y_in, y_out], dim=1)
            cells_out.append(yc)
            if record:
                for key, value in (("in", y_in), ("out", y_out), ("s", s), ("yc", yc)):
                    trace[key].append(value.detach())
        out = f(self.out(torch.stack(cells_out, dim=1)))
        if record:
            return out, {k: torch.stack(v, dim=1) for k, v in trace.items()}
        return out


class ModernLSTM(nn.Module):
    """``nn.LSTM`` (with forget gate, tanh squashing, PyTorch's initialisation) and a sigmoid output layer,
    sized with as many cells as the 1997 network. Same interface as :class:`LSTM1997`.

    ``forget_bias``: if given, the forget gates' bias starts at this value instead of PyTorch's random one (the
    usual remedy for a forget gate that starts at about 1/2, so that the cell loses about half its content per step;
    the 1997 cell has no forget gate, its CEC keeps everything)."""

    def __init__(self, config: LSTMConfig, forget_bias: float | None = None):
        super().__init__()
        self.config = config
        self.n_cells = config.blocks * config.cells_per_block
        self.lstm = nn.LSTM(config.n_in, self.n_cells, batch_first=True)
        self.out = nn.Linear(self.n_cells, config.n_out, bias=config.output_bias)
        if forget_bias is not None:
            H = self.n_cells
            with torch.no_grad():                # PyTorch orders the gates i, f, g, o; the two biases add up
                self.lstm.bias_ih_l0[H:2 * H] = forget_bias
                self.lstm.bias_hh_l0[H:2 * H] = 0.0

    def forward(self, x: torch.Tensor, record: bool = False):
        hs, _ = self.lstm(x)
        out = torch.sigmoid(self.out(hs))
        return (out, {}) if record else out


def build(config: LSTMConfig, cell: str = "1997", truncated: bool = True, forget_bias: float | None = None
          ) -> nn.Module:
    if cell == "1997":
        if forget_bias is not None:
            raise ValueError("the 1997 cell has no forget gate")
        return LSTM1997(config, truncated=truncated)
    if cell == "modern":
        return ModernLSTM(config, forget_bias=forget_bias)
    raise ValueError(f"unknown cell {cell!r} (1997 or modern)")


def config_dict(config: LSTMConfig) -> dict:
    return asdict(config)

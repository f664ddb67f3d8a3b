"""The paper's learning algorithm for one sequence at a time (Sec. 4 and App. A.1), in NumPy.

Under the 1997 truncation, error reaches the cells and gates at time t only along the constant
error carousel: the net inputs of cells and gates do not pass error back through y(t-1). For a
sequence with targets at some steps this gives closed forms that need no step-by-step backward
pass (k = output units, c = cells, j = the block of c; ' = derivative):

    delta_k(t)     = (y^k(t) - target_k(t)) f'(net_k(t))                   output units
    e_c(t)         = sum_k w_kc delta_k(t)                                  error at y^c(t)
    dE/dnet_out_j  = sum_{c in j} e_c(t) h(s_c(t)) f'(net_out_j(t))         output gates, local in time
    dE/ds_c(t)     = sum_{t' >= t} e_c(t') y^out_j(t') h'(s_c(t'))          the CEC carries error back unchanged
    dE/dnet_c(t)   = dE/ds_c(t) y^in_j(t) g'(net_c(t))
    dE/dnet_in_j   = sum_{c in j} dE/ds_c(t) g(net_c(t)) f'(net_in_j(t))

and each weight's gradient is its unit's dE/dnet times the unit's input, summed over t. This is
exactly the gradient that autograd takes through ``LSTM1997(truncated=True)`` (a test checks it),
but a forward pass of a few NumPy operations per step costs a small fraction of autograd's
per-operation overhead, which dominates for a 93-weight network trained one sequence at a time.
The arrays are views of the PyTorch parameters, so updates change the model in place.
"""

from __future__ import annotations

import numpy as np

from RNN.lstm.model import LSTM1997


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class OnlineLSTM1997:
    """A NumPy view of an :class:`LSTM1997` (CPU, truncated gradient) for online gradient descent."""

    def __init__(self, model: LSTM1997):
        if not model.truncated:
            raise ValueError("OnlineLSTM1997 computes the paper's truncated gradient; the model has truncated=False")
        if model.W.device.type != "cpu":
            raise ValueError("OnlineLSTM1997 works on CPU parameters")
        self.model = model
        self.C, self.B, self.S = model.n_cells, model.config.blocks, model.config.cells_per_block
        self.params = {name: p.detach().numpy() for name, p in model.named_parameters()}  # views

    def _bias(self) -> np.ndarray:
        p = self.params
        cells = p["cell_bias"] if "cell_bias" in p else np.zeros(self.C, dtype=p["W"].dtype)
        return np.concatenate([cells, p["gate_bias"]])

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, dict]:
        """x: T x n_in (one sequence). Returns the output units' activations (T x n_out) and a cache."""
        p, C, B, S = self.params, self.C, self.B, self.S
        T = len(x)
        wx = x @ p["W"].T + self._bias()
        y = np.zeros(p["U"].shape[0], dtype=wx.dtype)
        s = np.zeros(C, dtype=wx.dtype)
        y_prev, net, states, cells = (np.empty((T, n), dtype=wx.dtype) for n in (len(y), len(y), C, C))
        for t in range(T):
            y_prev[t] = y
            n = wx[t] + p["U"] @ y
            act = _sigmoid(n)
            y_in, y_out = act[C:C + B], act[C + B:]
            s = s + np.repeat(y_in, S) * (4.0 * act[:C] - 2.0)          # CEC: s_c(t) = s_c(t-1) + y^in g(net_c)
            yc = np.repeat(y_out, S) * (2.0 * _sigmoid(s) - 1.0)         # y^c = y^out h(s_c)
            y = np.concatenate([yc, y_in, y_out])
            net[t], states[t], cells[t] = n, s, yc
        net_k = cells @ p["out.weight"].T
        if "out.bias" in p:
            net_k = net_k + p["out.bias"]
        out = _sigmoid(net_k)
        return out, {"x": x, "y_prev": y_prev, "net": net, "s": states, "yc": cells, "out": out}

    def gradients(self, cache: dict, d_out: np.ndarray) -> dict[str, np.ndarray]:
        """dE/dparameter for dE/dy^k(t) = ``d_out`` (T x n_out), by the closed forms above."""
        p, C, B, S = self.params, self.C, self.B, self.S
        out, net, s, yc = cache["out"], cache["net"], cache["s"], cache["yc"]
        act = _sigmoid(net)
        y_in, y_out = act[:, C:C + B], act[:, C + B:]
        delta_k = d_out * out * (1.0 - out)
        grads = {"out.weight": delta_k.T @ yc}
        if "out.bias" in p:
            grads["out.bias"] = delta_k.sum(0)
        e_c = delta_k @ p["out.weight"]                                   # T x C
        sig_s = _sigmoid(s)
        h_s, dh_s = 2.0 * sig_s - 1.0, 2.0 * sig_s * (1.0 - sig_s)
        per_block = lambda a: a.reshape(len(a), B, S).sum(2)             # noqa: E731  (sum over a block's cells)
        d_out_gate = per_block(e_c * h_s) * y_out * (1.0 - y_out)
        ds = (e_c * np.repeat(y_out, S, axis=1) * dh_s)[::-1].cumsum(0)[::-1]   # sum over t' >= t
        sig_c = act[:, :C]
        d_cell = ds * np.repeat(y_in, S, axis=1) * 4.0 * sig_c * (1.0 - sig_c)
        d_in_gate = per_block(ds * (4.0 * sig_c - 2.0)) * y_in * (1.0 - y_in)
        d_net = np.concatenate([d_cell, d_in_gate, d_out_gate], axis=1)  # T x H
        grads["W"] = d_net.T @ cache["x"]
        grads["U"] = d_net.T @ cache["y_prev"]
        grads["gate_bias"] = d_net[:, C:].sum(0)
        if "cell_bias" in p:
            grads["cell_bias"] = d_cell.sum(0)
        return grads

    def sgd_step(self, x: np.ndarray, target: np.ndarray, mask: np.ndarray, lr: float) -> tuple[float, np.ndarray]:
        """One update on one sequence for E = 1/2 sum over masked (step, unit) of (y - target)^2.
        Returns E and the outputs (before the update)."""
        out, cache = self.forward(x)
        err = (out - target) * mask
        for name, g in self.gradients(cache, err).items():
            self.params[name] -= lr * g.astype(self.params[name].dtype, copy=False)
        return 0.5 * float((err * err).sum()), out

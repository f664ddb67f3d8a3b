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
    with np.errstate(over="ignore"):                      # exp overflow gives exactly 0, which is right
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
        # Blocks taking part (all by default). Sec. 4's sequential network construction (remedy (1) of the
        # abuse problem) starts with fewer and adds blocks later: a block that is off outputs zeros from its
        # cells and gates and its incoming weights are not changed.
        self.active = np.ones(self.B, dtype=bool)

    def _unit_mask(self, dtype) -> np.ndarray | None:
        """1/0 per hidden unit (cells, input gates, output gates) for the active blocks; None if all are on."""
        if self.active.all():
            return None
        return np.concatenate([np.repeat(self.active, self.S), self.active, self.active]).astype(dtype)

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
        on = self._unit_mask(wx.dtype)
        for t in range(T):
            y_prev[t] = y
            n = wx[t] + p["U"] @ y
            act = _sigmoid(n)
            y_in, y_out = act[C:C + B], act[C + B:]
            s = s + np.repeat(y_in, S) * (4.0 * act[:C] - 2.0)          # CEC: s_c(t) = s_c(t-1) + y^in g(net_c)
            yc = np.repeat(y_out, S) * (2.0 * _sigmoid(s) - 1.0)         # y^c = y^out h(s_c)
            y = np.concatenate([yc, y_in, y_out])
            if on is not None:
                y *= on
                yc = y[:C]
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
        on = self._unit_mask(d_net.dtype)
        if on is not None:
            d_net *= on
        grads["W"] = d_net.T @ cache["x"]
        grads["U"] = d_net.T @ cache["y_prev"]
        grads["gate_bias"] = d_net[:, C:].sum(0)
        if "cell_bias" in p:
            grads["cell_bias"] = d_cell.sum(0)
        return grads

    def update_per_sequence(self, x: np.ndarray, target: np.ndarray, mask: np.ndarray, lr: float
                            ) -> tuple[float, np.ndarray]:
        """One sequence, one weight change: the contributions of all its time steps (App. A.1: "each weight's
        total update is the sum of the contributions of all time steps"), all computed with the weights the
        sequence started with, and added once at its end. One forward pass and the closed form of
        :meth:`gradients`. E = 1/2 sum over masked (step, unit) of (y - target)^2; returns E and the outputs."""
        out, cache = self.forward(x)
        d_out = (out - target) * mask
        for name, grad in self.gradients(cache, d_out).items():
            self.params[name] -= lr * grad
        return 0.5 * float((d_out * d_out).sum()), out

    def update_from_last_step(self, x: np.ndarray, target: np.ndarray, lr: float) -> tuple[float, np.ndarray]:
        """One sequence whose only error is at its last step (the adding problem). The weight change equals
        :meth:`online_sequence`'s, since only the last step changes the weights there, and is computed by
        :meth:`update_per_sequence`, about twice as fast. ``target``: the last step's targets (n_out).
        Returns E = 1/2 |y - target|^2 at the last step, and the last step's outputs."""
        targets, mask = np.zeros((len(x), len(target)), x.dtype), np.zeros((len(x), 1), x.dtype)
        targets[-1], mask[-1] = target, 1.0
        E, out = self.update_per_sequence(x, targets, mask, lr)
        return E, out[-1]

    def online_sequence(self, x: np.ndarray, target: np.ndarray, mask: np.ndarray, lr: float
                        ) -> tuple[float, np.ndarray]:
        """Present one sequence and change the weights at every time step with an error, as the paper's
        online algorithm does (App. A.1): the partials ds_c/dw of the cell and input-gate weights are carried
        forward in time (truncated, so only along the CEC: O(weights) per step), and each step's error is
        turned into an update at once. E = 1/2 sum over masked (step, unit) of (y - target)^2; returns E and
        the outputs as they were when produced. With an error at the last step only, the update is that of
        :meth:`gradients` for the whole sequence (a test checks it)."""
        p, C, B, S = self.params, self.C, self.B, self.S
        n_in, H = p["W"].shape[1], p["U"].shape[0]
        dt = p["W"].dtype
        y, s = np.zeros(H, dt), np.zeros(C, dt)
        P = np.zeros((C, n_in + H + 1), dt)   # ds_c / d(weights into cell c), inputs [x, y(t-1), 1]
        Q = np.zeros((C, n_in + H + 1), dt)   # ds_c / d(weights into the input gate of c's block)
        outs, E = [], 0.0
        on = self._unit_mask(dt)
        for t in range(len(x)):
            z = np.concatenate([x[t], y, np.ones(1, dt)])
            act = _sigmoid(p["W"] @ x[t] + p["U"] @ y + self._bias())
            y_in, y_out, sig_c = act[C:C + B], act[C + B:], act[:C]
            g_c, y_in_c = 4.0 * sig_c - 2.0, np.repeat(y_in, S)
            P += (y_in_c * 4.0 * sig_c * (1.0 - sig_c))[:, None] * z
            Q += (g_c * np.repeat(y_in * (1.0 - y_in), S))[:, None] * z
            s = s + y_in_c * g_c
            sig_s = _sigmoid(s)
            y_out_c = np.repeat(y_out, S)
            yc = y_out_c * (2.0 * sig_s - 1.0)
            if on is not None:
                yc = yc * on[:C]
            net_k = p["out.weight"] @ yc + (p["out.bias"] if "out.bias" in p else 0.0)
            y_k = _sigmoid(net_k)
            outs.append(y_k)
            err = (y_k - target[t]) * mask[t]
            if err.any():
                E += 0.5 * float(err @ err)
                delta_k = err * y_k * (1.0 - y_k)
                e_c = p["out.weight"].T @ delta_k
                dS = e_c * y_out_c * 2.0 * sig_s * (1.0 - sig_s)
                d_out = (e_c * (2.0 * sig_s - 1.0)).reshape(B, S).sum(1) * y_out * (1.0 - y_out)
                rows = np.concatenate([dS[:, None] * P, (dS[:, None] * Q).reshape(B, S, -1).sum(1),
                                       d_out[:, None] * z])                    # H x (n_in + H + 1)
                if on is not None:
                    rows *= on[:, None]
                p["W"] -= lr * rows[:, :n_in]
                p["U"] -= lr * rows[:, n_in:n_in + H]
                p["gate_bias"] -= lr * rows[C:, -1]
                if "cell_bias" in p:
                    p["cell_bias"] -= lr * rows[:C, -1]
                p["out.weight"] -= lr * np.outer(delta_k, yc)
                if "out.bias" in p:
                    p["out.bias"] -= lr * delta_k
            y = np.concatenate([yc, y_in, y_out])
            if on is not None:
                y *= on
        return E, np.array(outs)

import json
import math

import numpy as np
import pytest
import torch

from RNN.lstm.tasks import adding_problem, encode_reber, reber_sets
from common.training import load_checkpoint
from RNN.lstm import train
from RNN.lstm.model import (PAPER_WEIGHTS, LSTM1997, ModernLSTM, adding_config, build, count_parameters, g,
                            h, reber_config)
from RNN.lstm.online import OnlineLSTM1997


def test_weight_counts_are_the_papers():
    """Table 1 (264 and 276 weights, embedded Reber) and Table 7 (93 weights, adding problem)."""
    for (task, blocks, size), paper in PAPER_WEIGHTS.items():
        config = (reber_config if task == "reber" else adding_config)(blocks, size)
        assert count_parameters(LSTM1997(config)) == paper


def test_squashing_ranges_and_initialisation():
    x = torch.linspace(-50, 50, 1001)
    assert g(x).min() >= -2 and g(x).max() <= 2 and g(torch.tensor(0.0)) == 0
    assert h(x).min() >= -1 and h(x).max() <= 1 and h(torch.tensor(0.0)) == 0
    reber = LSTM1997(reber_config())
    assert reber.gate_bias[3:].tolist() == [-1.0, -2.0, -3.0]          # output gates of blocks 1-3
    assert reber.W.abs().max() <= 0.2 and reber.U.abs().max() <= 0.2 and reber.cell_bias is None
    adding = LSTM1997(adding_config())
    assert adding.gate_bias[:2].tolist() == [-3.0, -6.0]               # input gates
    assert all(p.abs().max() <= 0.1 for n, p in adding.named_parameters() if n != "gate_bias")


def _y_sequence(model, x):
    """The hidden activations y(t) of a recorded run, in the model's unit order (cells, in gates, out gates)."""
    _, tr = model(x, record=True)
    return torch.cat([tr["yc"], tr["in"], tr["out"]], dim=-1)


def _by_hand(model, params, x, y_prev_fixed):
    """Sec. 4's equations written out again, with y(t-1) given as constants: the function whose exact
    derivative is the paper's truncated gradient."""
    W, U, gate_bias, cell_bias, out_w, out_b = params
    B, S = model.config.blocks, model.config.cells_per_block
    C = B * S
    s = torch.zeros(x.shape[0], C, dtype=x.dtype)
    outs = []
    for t in range(x.shape[1]):
        yp = y_prev_fixed[:, t]
        net = x[:, t] @ W.T + yp @ U.T + torch.cat([cell_bias, gate_bias])
        y_in, y_out = torch.sigmoid(net[:, C:C + B]), torch.sigmoid(net[:, C + B:])
        s = s + y_in.repeat_interleave(S, 1) * (4 * torch.sigmoid(net[:, :C]) - 2)
        yc = y_out.repeat_interleave(S, 1) * (2 * torch.sigmoid(s) - 1)
        outs.append(torch.sigmoid(yc @ out_w.T + out_b))
    return torch.stack(outs, 1)


def test_truncated_gradient_equals_finite_differences():
    torch.manual_seed(0)
    model = LSTM1997(adding_config(), truncated=True).double()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1)                                            # larger weights: a stiffer test
    x, target, _ = adding_problem(3, 10, torch.Generator().manual_seed(0))
    x = x[:, :10].double()
    target = target.double()
    loss = 0.5 * ((model(x)[:, -1, 0] - target) ** 2).sum()
    loss.backward()
    with torch.no_grad():
        y = _y_sequence(model, x)
    y_prev = torch.cat([torch.zeros_like(y[:, :1]), y[:, :-1]], 1)
    params = [model.W, model.U, model.gate_bias, model.cell_bias, model.out.weight, model.out.bias]

    def E(ps):
        return 0.5 * ((_by_hand(model, ps, x, y_prev)[:, -1, 0] - target) ** 2).sum()

    with torch.no_grad():
        assert torch.allclose(_by_hand(model, params, x, y_prev), model(x))   # the same forward pass
        eps = 1e-6
        for k, p in enumerate(params):
            for idx in [tuple(int(torch.randint(0, n, ())) for n in p.shape) for _ in range(6)]:
                plus = [q.clone() for q in params]
                minus = [q.clone() for q in params]
                plus[k][idx] += eps
                minus[k][idx] -= eps
                numeric = (E(plus) - E(minus)) / (2 * eps)
                assert p.grad[idx].item() == pytest.approx(numeric.item(), rel=1e-5, abs=1e-9)


def test_full_gradient_option_passes_gradcheck_and_differs_from_truncation():
    torch.manual_seed(0)
    full = LSTM1997(reber_config(2, 1), truncated=False).double()
    x = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: full(inp), (x,))
    trunc = LSTM1997(reber_config(2, 1), truncated=True).double()
    trunc.load_state_dict(full.state_dict())
    x = x.detach()
    assert torch.allclose(full(x), trunc(x))                              # truncation changes gradients only
    gf = torch.autograd.grad(full(x)[:, -1].sum(), full.U)[0]
    gt = torch.autograd.grad(trunc(x)[:, -1].sum(), trunc.U)[0]
    assert not torch.allclose(gf, gt)


def test_the_cec_carries_error_back_across_the_sequence():
    torch.manual_seed(0)
    model = LSTM1997(adding_config(), truncated=True)
    x = torch.zeros(1, 50, 2, requires_grad=True)
    model(x)[0, -1, 0].backward()
    assert x.grad[0, 0].abs().sum() > 0        # the first input still matters 49 steps later, via s_c only


def test_record_gives_gates_and_cell_states():
    model = LSTM1997(adding_config())
    out, tr = model(torch.randn(2, 7, 2), record=True)
    assert out.shape == (2, 7, 1)
    assert tr["in"].shape == (2, 7, 2) and tr["s"].shape == (2, 7, 4) and tr["yc"].shape == (2, 7, 4)
    assert ModernLSTM(adding_config())(torch.randn(2, 7, 2)).shape == (2, 7, 1)


def test_loss_falls_on_a_tiny_reber_set():
    torch.manual_seed(0)
    model = LSTM1997(reber_config())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    data = encode_reber(reber_sets(32, torch.Generator().manual_seed(0)))
    before = train.reber_loss(model, *data).item()
    for _ in range(150):
        opt.zero_grad()
        train.reber_loss(model, *data).backward()
        opt.step()
    assert train.reber_loss(model, *data).item() < 0.6 * before


def test_data_seed_gives_every_trial_the_same_strings():
    """--data-seed: the paper's protocol (Sec. 5.1), several trials on one pair of training and test sets; without
    it each trial draws its own strings from its seed, as before the option existed."""
    own = train.parse_args(["--task", "reber"])
    tr0, te0, _ = train.reber_data(0, own)
    assert tr0 == reber_sets(256, torch.Generator().manual_seed(0))
    assert train.reber_data(1, own)[0] != tr0
    shared = train.parse_args(["--task", "reber", "--data-seed", "1000"])
    (tr_a, te_a, rng_a), (tr_b, te_b, rng_b) = train.reber_data(0, shared), train.reber_data(1, shared)
    assert tr_a == tr_b and te_a == te_b and len(tr_a) == len(te_a) == 256 and not set(tr_a) & set(te_a)
    picks = [torch.randint(0, 256, (20,), generator=r).tolist() for r in (rng_a, rng_b)]
    assert picks[0] != picks[1]                          # the order of training strings is the trial's own
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "adding", "--data-seed", "1"])


def _quick(tmp_path, *extra):
    assert train.main(["--quick", "--no-progress", "--out", str(tmp_path), *extra]) == 0
    return json.loads((tmp_path / "metrics.json").read_text())


def test_quick_run_end_to_end_and_repeatable(tmp_path):
    a = _quick(tmp_path / "a")
    b = _quick(tmp_path / "b")
    assert [m["name"] for m in a["metrics"]] == ["adding_T20_1997_test_wrong", "reber_1997_trials_solved"]
    assert a["metrics"] == b["metrics"] and a["details"]["rows"] == b["details"]["rows"]
    for task in ("adding", "reber"):
        for name in ("model.pt", "history.json", "curves.png"):
            assert (tmp_path / "a" / f"{task}-1997" / name).exists()
    sa = load_checkpoint(tmp_path / "a" / "adding-1997" / "model.pt")
    sb = load_checkpoint(tmp_path / "b" / "adding-1997" / "model.pt")
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_modern_cell_quick(tmp_path):
    rec = _quick(tmp_path, "--cell", "modern", "--task", "adding")
    assert rec["metrics"] == []                      # nn.LSTM is a comparison, not one of the paper's targets
    assert rec["details"]["rows"][0][0] == "adding-modern"
    assert rec["runs"]["adding-modern"]["test_size"] == 64


def test_adam_is_an_option_for_the_comparison(tmp_path):
    """--optimizer adam needs its own --lr, records itself, and bypasses the paper's online SGD engine."""
    with pytest.raises(SystemExit):
        train.parse_args(["--optimizer", "adam"])
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "reber", "--sequential-construction", "--optimizer", "adam", "--lr", "0.01"])
    args = train.parse_args(["--task", "adding", "--optimizer", "adam", "--lr", "0.01"])
    model = train.make_model("adding", "1997", args)
    assert train.online_engine(model, args, torch.device("cpu")) is None
    assert isinstance(train.make_optimizer(model, args, 0.01), torch.optim.Adam)
    rec = _quick(tmp_path, "--cell", "modern", "--task", "adding", "--optimizer", "adam", "--lr", "0.01")
    assert rec["hyperparameters"]["optimizer"] == "Adam"
    assert rec["details"]["rows"][0][2] == "0.01 (adam)"
    rec = _quick(tmp_path / "1997", "--task", "reber", "--optimizer", "adam", "--lr", "0.01")
    assert [m["name"] for m in rec["metrics"]] == ["reber_1997_adam_trials_solved"]     # not the paper's metric


def test_forget_bias_sets_the_modern_cells_forget_gates_only():
    m = ModernLSTM(adding_config(), forget_bias=3.0)
    H = m.n_cells
    bias = m.lstm.bias_ih_l0 + m.lstm.bias_hh_l0            # gates in PyTorch's order i, f, g, o
    assert torch.equal(bias[H:2 * H], torch.full((H,), 3.0))
    assert not torch.equal(bias[:H], torch.full((H,), 3.0))
    with pytest.raises(SystemExit):
        train.parse_args(["--forget-bias", "1"])                    # the 1997 cell has no forget gate
    with pytest.raises(ValueError, match="no forget gate"):
        build(adding_config(), "1997", forget_bias=1.0)


def test_resume_continues_the_adding_run_exactly(tmp_path):
    args = ["--task", "adding", "--checkpoint-every", "30"]
    _quick(tmp_path / "once", *args, "--max-sequences", "60")
    _quick(tmp_path / "twice", *args, "--max-sequences", "30")
    rec = _quick(tmp_path / "twice", *args, "--max-sequences", "60", "--resume")
    assert rec["runs"]["adding-1997"]["sequences"] == 60
    a = load_checkpoint(tmp_path / "once" / "adding-1997" / "model.pt")
    b = load_checkpoint(tmp_path / "twice" / "adding-1997" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_cosine_schedule_and_training_to_the_cap(monkeypatch, tmp_path):
    """--lr-schedule cosine decays the rate from --lr to 0 over --max-sequences; --train-to-cap keeps training past
    the stopping rule, records where it first held, and a resumed run still matches an uninterrupted one."""
    assert train.scheduled_lr(0.01, 500, 1000, "constant") == 0.01
    assert train.scheduled_lr(0.01, 0, 1000, "cosine") == 0.01
    assert train.scheduled_lr(0.01, 500, 1000, "cosine") == pytest.approx(0.005)
    assert train.scheduled_lr(0.01, 1000, 1000, "cosine") == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "reber", "--lr-schedule", "cosine"])
    with pytest.raises(SystemExit):
        train.parse_args(["--train-to-cap"])                         # the default --task all includes Reber
    args = ["--task", "adding", "--optimizer", "adam", "--lr", "0.01", "--batch-size", "8", "--lr-schedule",
            "cosine", "--train-to-cap", "--checkpoint-every", "48"]
    once = _quick(tmp_path / "once", *args, "--max-sequences", "96")
    assert [m["name"] for m in once["metrics"]] == ["adding_T20_1997_adam_cosine_to_cap_test_wrong"]
    run = once["runs"]["adding-1997"]
    assert run["sequences"] == 96 and run["trained_to_cap"] and run["lr_schedule"] == "cosine"
    assert once["hyperparameters"]["lr_schedule"] == "cosine"


    # the schedule spans the whole budget, so an interrupted run resumes with the same --max-sequences: stop this
    # one by a failing update after the checkpoint at 48 sequences, then resume it
    update, calls = train.adding_update, []

    def failing_update(*a, **k):
        calls.append(1)
        if len(calls) == 7:
            raise train.NonFiniteLossError("interrupted for the test")
        return update(*a, **k)
    monkeypatch.setattr(train, "adding_update", failing_update)
    assert train.main(["--quick", "--no-progress", "--out", str(tmp_path / "twice"), *args,
                       "--max-sequences", "96"]) == 1
    monkeypatch.setattr(train, "adding_update", update)
    assert load_checkpoint(tmp_path / "twice" / "adding-1997" / "checkpoint.pt")["seen"] == 48
    twice = _quick(tmp_path / "twice", *args, "--max-sequences", "96", "--resume")
    assert twice["metrics"] == once["metrics"]
    a = load_checkpoint(tmp_path / "once" / "adding-1997" / "model.pt")
    b = load_checkpoint(tmp_path / "twice" / "adding-1997" / "model.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_train_to_cap_ignores_the_stopping_rule(monkeypatch, tmp_path):
    """With the rule forced to hold at once, the paper's setup stops after one update and --train-to-cap does not."""
    monkeypatch.setattr(train, "stopping_rule_met", lambda recent: len(recent) > 0)
    rec = _quick(tmp_path / "rule", "--task", "adding", "--max-sequences", "40")
    assert rec["runs"]["adding-1997"]["sequences"] == 1 and rec["runs"]["adding-1997"]["stopping_rule_met"]
    rec = _quick(tmp_path / "cap", "--task", "adding", "--max-sequences", "40", "--train-to-cap")
    run = rec["runs"]["adding-1997"]
    assert run["sequences"] == 40 and run["stopping_rule_first_met_after"] == 1 and not run["stopping_rule_met"]


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        train.parse_args(["--T", "5"])
    with pytest.raises(SystemExit):
        train.parse_args(["--cell", "gru"])
    assert train.main(["--task", "adding", "--resume", "--out", str(tmp_path / "none"), "--no-progress"]) == 1


def test_numpy_closed_form_equals_autograd_of_the_truncated_cell():
    """RNN/lstm/online.py (the paper's algorithm in closed form) gives autograd's truncated gradient."""
    torch.manual_seed(0)
    for config in (adding_config(), reber_config()):
        model = LSTM1997(config).double()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.5)         # away from the initial closed gates
        x = torch.rand(1, 12, config.n_in, dtype=torch.float64)
        target = torch.rand(1, 12, config.n_out, dtype=torch.float64)
        mask = (torch.rand(1, 12, 1) > 0.3).double()
        (0.5 * ((model(x) - target) ** 2 * mask).sum()).backward()
        online = OnlineLSTM1997(model)
        out, cache = online.forward(x[0].numpy())
        np.testing.assert_allclose(out, model(x)[0].detach().numpy(), rtol=1e-12, atol=1e-12)
        grads = online.gradients(cache, (out - target[0].numpy()) * mask[0].numpy())
        assert set(grads) == {name for name, _ in model.named_parameters()}
        for name, p in model.named_parameters():
            np.testing.assert_allclose(grads[name], p.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_numpy_update_changes_the_model_in_place_and_refuses_full_gradient():
    model = LSTM1997(adding_config())
    before = model.W.detach().clone()
    online = OnlineLSTM1997(model)
    x = np.random.default_rng(0).uniform(-1, 1, (15, 2)).astype(np.float32)
    target, mask = np.zeros((15, 1), np.float32), np.zeros((15, 1), np.float32)
    target[-1], mask[-1] = 0.9, 1.0
    online.online_sequence(x, target, mask, lr=0.5)
    assert not torch.equal(model.W.detach(), before)
    with pytest.raises(ValueError, match="truncated"):
        OnlineLSTM1997(LSTM1997(adding_config(), truncated=False))


def test_online_engine_and_autograd_train_the_same_weights(tmp_path):
    common = ["--task", "adding", "--T", "20", "--max-sequences", "60", "--test-size", "16", "--no-progress"]
    assert train.main(common + ["--out", str(tmp_path / "np")]) == 0
    assert train.main(common + ["--autograd", "--out", str(tmp_path / "ag")]) == 0
    a = load_checkpoint(tmp_path / "np" / "adding-1997" / "model.pt")
    b = load_checkpoint(tmp_path / "ag" / "adding-1997" / "model.pt")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_output_bias_option_is_a_named_deviation(tmp_path):
    """--output-bias gives Reber's output units 7 bias weights (276 -> 283) and its metric its own name."""
    args = train.parse_args(["--output-bias"])
    model = train.make_model("reber", "1997", args)
    assert count_parameters(model) == PAPER_WEIGHTS[("reber", 3, 2)] + 7
    assert count_parameters(train.make_model("adding", "1997", args)) == PAPER_WEIGHTS[("adding", 2, 2)]
    rec = _quick(tmp_path, "--task", "reber", "--output-bias")
    assert [m["name"] for m in rec["metrics"]] == ["reber_1997_output_bias_trials_solved"]
    assert rec["hyperparameters"]["reber_output_bias"] is True
    state = load_checkpoint(tmp_path / "reber-1997" / "model.pt")
    assert state["out.bias"].shape == (7,)


def test_stopping_rule_of_the_adding_problem():
    """Sec. 5.4: average error below 0.01 and all of the 2,000 most recent sequences correct."""
    import collections
    recent = collections.deque([(1e-4, True)] * 1999, maxlen=2000)
    assert not train.stopping_rule_met(recent)                 # not yet 2,000 sequences
    recent.append((1e-4, True))
    assert train.stopping_rule_met(recent)
    recent.append((0.05 ** 2, False))
    assert not train.stopping_rule_met(recent)                 # one wrong among the last 2,000
    assert not train.stopping_rule_met(collections.deque([(0.02, True)] * 2000, maxlen=2000))   # error too high


def test_blocks_that_are_off_are_silent_and_frozen():
    """OnlineLSTM1997.active (sequential network construction): a block that is off sends zeros from its cells
    and gates, and none of the weights into it, nor the output weights from its cells, change."""
    torch.manual_seed(0)
    model = LSTM1997(reber_config()).double()
    online = OnlineLSTM1997(model)
    online.active[:] = [True, False, False]
    x, target, lengths = encode_reber(reber_sets(1, torch.Generator().manual_seed(0)))
    xs, ts = x[0, :lengths[0]].double().numpy(), target[0, :lengths[0]].double().numpy()
    out_before, _ = online.forward(xs)
    with torch.no_grad():                      # what a block that is off sends out must not matter
        model.out.weight[:, 2:] = 5.0
        model.U[:, 2:6] = 5.0                  # from its cells
        model.U[:, [7, 8, 10, 11]] = 5.0       # from its input and output gates
    np.testing.assert_allclose(online.forward(xs)[0], out_before, rtol=1e-12)
    before = {k: v.copy() for k, v in online.params.items()}
    online.online_sequence(xs, ts, np.ones_like(ts), lr=0.5)
    off_rows = [2, 3, 4, 5, 7, 8, 10, 11]      # cells 3-6, input and output gates of blocks 2 and 3
    on_rows = [0, 1, 6, 9]
    for name in ("W", "U"):
        np.testing.assert_array_equal(online.params[name][off_rows], before[name][off_rows])
        assert not np.array_equal(online.params[name][on_rows], before[name][on_rows])
    np.testing.assert_array_equal(online.params["gate_bias"][[1, 2, 4, 5]], before["gate_bias"][[1, 2, 4, 5]])
    np.testing.assert_array_equal(online.params["out.weight"][:, 2:], before["out.weight"][:, 2:])
    assert not np.array_equal(online.params["out.weight"][:, :2], before["out.weight"][:, :2])


def test_sequential_construction_and_input_gate_biases_are_options(tmp_path):
    args = train.parse_args(["--task", "reber", "--in-gate-bias=-1,-2,-3"])
    assert train.make_model("reber", "1997", args).gate_bias[:3].tolist() == [-1.0, -2.0, -3.0]
    rec = _quick(tmp_path, "--task", "reber", "--sequential-construction", "--eval-every", "20")
    assert [m["name"] for m in rec["metrics"]] == ["reber_1997_sequential_trials_solved"]
    trials = json.loads((tmp_path / "reber-1997" / "history.json").read_text())
    added = trials[0]["blocks_added"]
    assert [a["block"] for a in added] == [2, 3][:len(added)]     # blocks join in order, after block 1
    assert all(a["sequences"] % 20 == 0 for a in added)
    for bad in (["--task", "reber", "--in-gate-bias=-1,-2"], ["--in-gate-bias", "x"],
                ["--task", "adding", "--sequential-construction"],
                ["--task", "reber", "--sequential-construction", "--full-gradient"]):
        with pytest.raises(SystemExit):
            train.parse_args(bad)


def test_update_from_last_step_equals_the_per_step_online_update():
    """The adding problem's fast path: with the error only at the end, the closed-form update is the per-step one."""
    torch.manual_seed(0)
    a, b = LSTM1997(adding_config()).double(), LSTM1997(adding_config()).double()
    b.load_state_dict(a.state_dict())
    w_before = a.W.detach().clone()
    x = np.random.default_rng(0).uniform(-1, 1, (30, 2))
    target, mask = np.zeros((30, 1)), np.zeros((30, 1))
    target[-1], mask[-1] = 0.8, 1.0
    e_step, out_step = OnlineLSTM1997(a).online_sequence(x, target, mask, lr=0.5)
    e_end, out_end = OnlineLSTM1997(b).update_from_last_step(x, target[-1], lr=0.5)
    assert e_step == pytest.approx(e_end, rel=1e-12)
    np.testing.assert_allclose(out_end, out_step[-1], rtol=1e-12)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-13, err_msg=name)
    assert not torch.equal(a.W.detach(), w_before)


def test_per_string_update_is_one_autograd_step_and_differs_from_per_step(tmp_path):
    """--update-every string: the NumPy update equals one plain gradient step through the truncated model on the
    whole string; the per-step online update (the default) is a different algorithm on a Reber string."""
    torch.manual_seed(0)
    a, b, c = (LSTM1997(reber_config()).double() for _ in range(3))
    b.load_state_dict(a.state_dict())
    c.load_state_dict(a.state_dict())
    x, target, lengths = encode_reber(reber_sets(1, torch.Generator().manual_seed(0)))
    xs, ts = x[:1, :lengths[0]].double(), target[:1, :lengths[0]].double()
    e, _ = OnlineLSTM1997(a).update_per_sequence(xs[0].numpy(), ts[0].numpy(), np.ones_like(ts[0].numpy()), 0.5)
    loss = train.reber_loss(b, xs, ts, lengths[:1])
    assert e == pytest.approx(loss.item(), rel=1e-12)
    loss.backward()
    with torch.no_grad():
        for p in b.parameters():
            p -= 0.5 * p.grad
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-13, err_msg=name)
    OnlineLSTM1997(c).online_sequence(xs[0].numpy(), ts[0].numpy(), np.ones_like(ts[0].numpy()), 0.5)
    assert not np.allclose(a.W.detach().numpy(), c.W.detach().numpy(), rtol=1e-6)
    rec = _quick(tmp_path, "--task", "reber", "--update-every", "string")
    assert rec["hyperparameters"]["reber_update_every_1997"] == "string"
    assert [m["name"] for m in rec["metrics"]] == ["reber_1997_per_string_trials_solved"]
    for bad in (["--task", "adding", "--update-every", "string"],
                ["--task", "reber", "--update-every", "string", "--optimizer", "adam", "--lr", "0.01"]):
        with pytest.raises(SystemExit):
            train.parse_args(bad)


def test_selection_files_are_what_the_validation_records_give(tmp_path, capsys):
    """results/*_selection.json are rebuilt from results/validation/ by RNN/lstm/selection.py; a changed record
    changes the choice, and --check notices a file that no longer matches."""
    import shutil

    from RNN.lstm import selection
    assert selection.main(["--check"]) == 0
    built = selection.build()
    reber = built["reber_lr_selection.json"]
    assert reber["chosen"] == {"paper": 0.1, "output bias": 0.5, "Adam": 0.003, "Adam with output biases": 0.01}
    adam = [(e["lr"], e["solved"]) for e in reber["runs"] if e["variant"].startswith("Adam instead")]
    assert adam == [(0.003, 4), (0.01, 3)]                        # six seeds each, capped at 100,000 strings
    with_bias = [(e["lr"], e["solved"], e["median_sequences_solved"]) for e in reber["runs"]
                 if e["variant"].startswith("Adam with output biases")]
    assert with_bias == [(0.003, 4, 32_000), (0.01, 4, 17_000)]  # a tie, broken by the median strings
    assert [e["cap"] for e in reber["other_probes"] if e["variant"].startswith("Adam")] == [30_000] * 3
    baseline = [(e["lr"], e["cap"], e["trials"]) for e in reber["other_probes"] if e["variant"].startswith("paper")]
    assert baseline == [(0.1, 100_000, 6)]                         # the paper's setup on the later probes' seeds
    assert built["modern_selection.json"]["chosen"]["reber"].startswith("Adam lr 0.03, PyTorch's initialisation")
    assert built["adding_adam_selection.json"]["chosen"] == {"lr": 0.01, "batch_size": 256}
    cosine = built["adding_adam_cosine_selection.json"]
    assert cosine["chosen"] == {"lr": 0.003, "batch_size": 256, "sequences": 3_000_064}
    assert [(s["lr"], s["seeds"]) for s in cosine["summary"]] == [(0.003, [100, 101, 102]), (0.01, [100, 101, 102])]
    assert all(r["seed"] >= 100 for r in cosine["runs"])          # validation seeds only, never a final run's

    runs = tmp_path / "validation"
    shutil.copytree(selection.VALIDATION, runs)
    record_path = runs / "paper-lr0.5" / "metrics.json"
    record = json.loads(record_path.read_text())
    record["runs"]["reber-1997"].update(solved=4, median_sequences=9000.0)
    record_path.write_text(json.dumps(record))
    assert selection.build(runs)["reber_lr_selection.json"]["chosen"]["paper"] == 0.5
    assert selection.main(["--check", "--runs", str(runs)]) == 1
    assert "differs" in capsys.readouterr().err

    shutil.rmtree(runs / "paper-lr0.5" / "reber-1997")
    with pytest.raises(FileNotFoundError, match="history.json is missing"):
        selection.build(runs)


def test_finetune_diagnostic_runs_and_records(tmp_path):
    """RNN/lstm/finetune.py: trains, reports on its validation stream, writes its record; bad input is refused."""
    from RNN.lstm import finetune
    errors, target = torch.tensor([0.05, -0.01, 0.0, -0.06]), torch.tensor([0.05, 0.5, 0.5, 0.95])
    s = finetune.summarise(errors, target)
    assert s["wrong_per_2560"] == 2 * 2560 / 4
    assert s["mean_error_below_0.1"] == pytest.approx(0.05) and s["mean_error_above_0.9"] == pytest.approx(-0.06)
    assert s["rms_error_between"] == pytest.approx(math.sqrt(0.0001 / 2))
    assert finetune.summarise(errors[1:3], target[1:3])["mean_error_below_0.1"] is None

    weights = tmp_path / "model.pt"
    torch.save(LSTM1997(adding_config()).state_dict(), weights)
    out = tmp_path / "ft"
    assert finetune.main(["--weights", str(weights), "--T", "10", "--sequences", "8", "--batch-size", "4",
                          "--reports", "2", "--val-size", "32", "--out", str(out), "--no-progress"]) == 0
    rec = json.loads((out / "finetune.json").read_text())
    assert [c["sequences"] for c in rec["curve"]] == [0, 4, 8]
    assert rec["n_weights"] == 93 and rec["weights"] == str(weights)
    assert (out / "finetune.png").stat().st_size > 0
    with pytest.raises(SystemExit):
        finetune.parse_args(["--weights", str(tmp_path / "missing.pt")])
    with pytest.raises(SystemExit):
        finetune.parse_args(["--sequences", "10", "--batch-size", "4", "--reports", "5"])
    with pytest.raises(SystemExit):
        finetune.parse_args(["--test"])                           # a test needs the trained run's weights

    # --test: the fine-tuned weights are tested once, on the test set of train.py's run with the same seed
    tested = tmp_path / "tested"
    assert finetune.main(["--weights", str(weights), "--T", "10", "--sequences", "8", "--batch-size", "4",
                          "--reports", "2", "--val-size", "32", "--seed", "3", "--test", "--test-size", "40",
                          "--out", str(tested), "--no-progress"]) == 0
    m = json.loads((tested / "metrics.json").read_text())["metrics"][0]
    assert m["name"] == "adding_T10_1997_sgd_then_adam_test_wrong" and m["of"] == 40
    model = LSTM1997(adding_config())
    model.load_state_dict(torch.load(tested / "model.pt", weights_only=True))
    assert train.adding_test(model, *train.adding_test_set(40, 10, 3))["wrong"] == m["ours"]

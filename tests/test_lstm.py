"""RNN/lstm: the 1997 cell against the paper's equations, the loops (trials.py), train.py's records and resume,
the shipped results, and the experiment scripts."""

import functools
import importlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.results import reproduce_command
from common.summary import count_parameters
from common.training import load_checkpoint
from RNN.lstm import train, trials
from RNN.lstm.model import PAPER_WEIGHTS, LSTM1997, ModernLSTM, adding_config, build, g, h, reber_config
from RNN.lstm.online import OnlineLSTM1997
from RNN.lstm.tasks import adding_problem, encode_reber, reber_sets

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "RNN/lstm/results"


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


def test_stopping_rule_of_the_adding_problem():
    """Sec. 5.4: average error below 0.01 and all of the 2,000 most recent sequences correct."""
    import collections
    recent = collections.deque([(1e-4, True)] * 1999, maxlen=2000)
    assert not trials.stopping_rule_met(recent)                 # not yet 2,000 sequences
    recent.append((1e-4, True))
    assert trials.stopping_rule_met(recent)
    recent.append((0.05 ** 2, False))
    assert not trials.stopping_rule_met(recent)                 # one wrong among the last 2,000
    assert not trials.stopping_rule_met(collections.deque([(0.02, True)] * 2000, maxlen=2000))   # error too high


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


# --------------------------------------------------------------------------- the paper's loops (RNN/lstm/trials.py)


def test_loss_falls_on_a_tiny_reber_set():
    torch.manual_seed(0)
    model = LSTM1997(reber_config())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    data = encode_reber(reber_sets(32, torch.Generator().manual_seed(0)))
    before = trials.reber_loss(model, *data).item()
    for _ in range(150):
        opt.zero_grad()
        trials.reber_loss(model, *data).backward()
        opt.step()
    assert trials.reber_loss(model, *data).item() < 0.6 * before


def test_data_seed_gives_every_trial_the_same_strings():
    """The paper's protocol (Sec. 5.1): several trials on one pair of sets; without a data seed each trial draws
    its own strings from its seed."""
    tr0, te0, _ = trials.reber_data(0, 256)
    assert tr0 == reber_sets(256, torch.Generator().manual_seed(0))
    assert trials.reber_data(1, 256)[0] != tr0
    (tr_a, te_a, rng_a), (tr_b, te_b, rng_b) = trials.reber_data(0, 256, 1000), trials.reber_data(1, 256, 1000)
    assert tr_a == tr_b and te_a == te_b and len(tr_a) == len(te_a) == 256 and not set(tr_a) & set(te_a)
    picks = [torch.randint(0, 256, (20,), generator=r).tolist() for r in (rng_a, rng_b)]
    assert picks[0] != picks[1]                          # the order of training strings is the trial's own


def _args(**kw):
    """The namespace the loops read, as train.py --quick sets it."""
    return train.parse_args(["--quick", "--no-progress", *[f"--{k.replace('_', '-')}={v}" for k, v in kw.items()]])


def test_online_engine_and_autograd_train_the_same_weights(tmp_path):
    """The closed form (the default) and plain gradient descent through autograd give the same adding trial."""
    args = _args(max_sequences=60)
    a, ra = trials.adding_trial(0, args, tmp_path / "np.pt")
    b, rb = trials.adding_trial(0, args, tmp_path / "ag.pt",
                                make_optimizer=lambda m, lr: torch.optim.SGD(m.parameters(), lr=lr))
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    assert ra["sequences"] == rb["sequences"] == 60 and ra["history"] == {"sequences": [], "train_mse": [],
                                                                        "recent_correct": []}


def test_train_to_cap_ignores_the_stopping_rule(monkeypatch, tmp_path):
    """With the rule forced to hold at once, the paper's setup stops after one update and train_to_cap does not."""
    monkeypatch.setattr(trials, "stopping_rule_met", lambda recent: len(recent) > 0)
    args = _args(max_sequences=40)
    _, rule = trials.adding_trial(0, args, tmp_path / "a.pt")
    assert rule["sequences"] == 1 and rule["stopping_rule_met"]
    _, cap = trials.adding_trial(0, args, tmp_path / "b.pt", train_to_cap=True)
    assert cap["sequences"] == 40 and cap["stopping_rule_first_met_after"] == 1 and not cap["stopping_rule_met"]


def test_trials_side_by_side_equal_trials_one_after_another():
    args = _args(max_sequences=100)
    one = trials.run_trials(functools.partial(trials.reber_trial, args=args), [0, 1], 1)
    two = trials.run_trials(functools.partial(trials.reber_trial, args=args), [0, 1], 2)
    for a, b in zip(one, two):
        assert a["curve"] == b["curve"] and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


# --------------------------------------------------------------------------- train.py


def _main(out, *extra):
    assert train.main(["--quick", "--no-progress", "--out", str(out), *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def test_quick_run_end_to_end_and_repeatable(tmp_path, capsys):
    a = _main(tmp_path / "a", "--deviation")
    log = capsys.readouterr().out
    assert "adding seed 0: 100 sequences, train MSE" in log and "Reber seed 1: 100 strings" in log  # --no-progress
    b = _main(tmp_path / "b", "--deviation")
    assert [m["name"] for m in a["metrics"]] == ["adding_T20_1997_mean_test_wrong",
                                                 "adding_T20_1997_sgd_then_adam_mean_test_wrong",
                                                 "reber_1997_trials_solved", "reber_1997_adam_trials_solved"]
    untimed = [[{k: v for k, v in m.items() if k != "training_time_s"} for m in r["metrics"]] for r in (a, b)]
    assert untimed[0] == untimed[1] and a["details"] == b["details"]
    assert all(m["claim"] for m in a["metrics"]) and a["model"]["class"] == "LSTM1997"
    for name in ("adding.json", "adding.pt", "reber.json", "reber.pt", "model.pt", "trials.png"):
        assert (tmp_path / "a" / name).exists()
    adding = json.loads((tmp_path / "a" / "adding.json").read_text())
    reber = json.loads((tmp_path / "a" / "reber.json").read_text())
    assert a["metrics"][0]["per_trial"] == [t["test_wrong"] for t in adding["paper"]]
    assert a["training_time_s"] == pytest.approx(sum(t["train_time_s"] for rec in (adding, reber)
                                                     for k, v in rec.items() if k != "settings" for t in v), abs=0.1)
    weights = load_checkpoint(tmp_path / "a" / "adding.pt")
    assert sorted(weights) == ["paper/seed0", "paper/seed1", "then_adam/seed0", "then_adam/seed1"]
    model = LSTM1997(adding_config())
    model.load_state_dict(weights["then_adam/seed1"])           # the record's test count is the weights' own
    assert trials.adding_test(model, *trials.adding_test_set(64, 20, 1))["test_wrong"] == adding["then_adam"][1][
        "test_wrong"]
    sa, sb = (load_checkpoint(tmp_path / x / "model.pt") for x in ("a", "b"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_equals_an_uninterrupted_run(monkeypatch, tmp_path):
    """Interrupted in the second adding trial (after its checkpoint at 60 sequences): --resume reads the first
    trial back and continues the second from its checkpoint, to the same weights and numbers."""
    extra = ["--task", "adding", "--max-sequences", "120", "--checkpoint-every", "30"]
    once = _main(tmp_path / "once", *extra)
    update, calls = OnlineLSTM1997.update_from_last_step, []

    def interrupted(self, *a, **k):
        calls.append(1)
        if len(calls) == 120 + 70:                           # trial 1 done; trial 2 checkpointed at 60
            raise KeyboardInterrupt
        return update(self, *a, **k)
    monkeypatch.setattr(OnlineLSTM1997, "update_from_last_step", interrupted)
    assert train.main(["--quick", "--no-progress", "--out", str(tmp_path / "twice"), *extra]) == 130
    monkeypatch.setattr(OnlineLSTM1997, "update_from_last_step", update)
    assert load_checkpoint(tmp_path / "twice" / "checkpoint.pt")["epoch"] == 60
    assert [t["seed"] for t in json.loads((tmp_path / "twice" / "adding.json").read_text())["paper"]] == [0]
    twice = _main(tmp_path / "twice", *extra, "--resume")
    assert [m["per_trial"] for m in twice["metrics"]] == [m["per_trial"] for m in once["metrics"]]
    a, b = (load_checkpoint(tmp_path / x / "adding.pt") for x in ("once", "twice"))
    assert sorted(a) == sorted(b) and all(torch.equal(a[k][n], b[k][n]) for k in a for n in a[k])


def test_committed_metrics_are_read_back_from_the_committed_trials(tmp_path):
    """results/metrics.json: its numbers are what train.py --deviation --resume computes from the committed
    records of the trials (nothing trains: every trial there has finished)."""
    for name in ("adding.json", "adding.pt", "reber.json", "reber.pt"):
        shutil.copy(RESULTS / name, tmp_path / name)
    assert train.main(["--deviation", "--resume", "--no-progress", "--out", str(tmp_path)]) == 0
    ours, committed = (json.loads((p / "metrics.json").read_text()) for p in (tmp_path, RESULTS))
    assert ours["metrics"] == committed["metrics"] and ours["details"] == committed["details"]
    assert ours["training_time_s"] == committed["training_time_s"] > 5 * 3600   # the runs behind the numbers
    assert reproduce_command(committed["command"]) == "python RNN/lstm/train.py --deviation"
    by_name = {m["name"]: m for m in committed["metrics"]}
    assert by_name["adding_T100_1997_sgd_then_adam_mean_test_wrong"]["passed"]
    assert by_name["adding_T100_1997_sgd_then_adam_mean_test_wrong"]["trials_in_band"] == 9
    assert not by_name["adding_T100_1997_mean_test_wrong"]["passed"]          # the paper's setup, as measured


def test_the_shipped_reber_weights_solve_their_trials():
    """results/reber.pt keeps one solved trial's weights per variant: each solves its trial's strings (the adding
    trials' weights are re-measured by common.verify, tests/test_verify.py)."""
    reber = load_checkpoint(RESULTS / "reber.pt")
    assert reber
    for key, state in reber.items():
        model = LSTM1997(reber_config())
        model.load_state_dict(state)
        train_strings, test_strings, _ = trials.reber_data(int(key.split("seed")[1]), 256)
        assert trials.reber_wrong(model, encode_reber(train_strings), encode_reber(test_strings)) == 0


def test_bad_input_is_refused(tmp_path, capsys):
    for bad in (["--T", "5"], ["--batch-size", "4"], ["--epochs", "3"], ["--task", "gru"]):
        with pytest.raises(SystemExit):
            train.parse_args(bad)
    capsys.readouterr()
    assert train.main(["--quick", "--resume", "--no-progress", "--out", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.startswith("error: --resume: nothing to resume")
    _main(tmp_path / "done", "--task", "adding")
    assert train.main(["--quick", "--no-progress", "--resume", "--task", "adding", "--T", "15",
                       "--out", str(tmp_path / "done")]) == 2                  # other settings: not read back
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "adding.json holds trials made with other settings" in err


def test_a_damaged_checkpoint_ends_in_one_error_line_and_is_kept(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    ckpt = out / "checkpoint.pt"
    ckpt.write_bytes(b"PK\x03\x04 not a whole checkpoint")
    code = train.main(["--quick", "--no-progress", "--task", "adding", "--resume", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error:") and str(ckpt) in err[0]
    assert "without --resume" in err[0] and ckpt.read_bytes() == b"PK\x03\x04 not a whole checkpoint"


# --------------------------------------------------------------------------- experiments/


EXPERIMENTS = sorted(p.stem for p in (REPO / "RNN/lstm/experiments").glob("[!_]*.py") if p.stem != "record")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_has_help(name):
    result = subprocess.run([sys.executable, f"RNN/lstm/experiments/{name}.py", "--help"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0 and "usage:" in result.stdout and "python RNN/lstm/experiments" in result.stdout


def _experiment(name, tmp_path, *extra):
    module = importlib.import_module(f"RNN.lstm.experiments.{name}")
    assert module.main(["--quick", "--no-progress", "--trials", "1", "--out", str(tmp_path), *extra]) == 0
    return json.loads((tmp_path / f"{module.NAME}.json").read_text())


def test_reber_probes_run_and_name_their_metrics(tmp_path):
    """Each probe is a script with its own metric; runs of one script add variants to one record file."""
    expected = {"output_bias": "reber_1997_output_bias_trials_solved",
                "table1": "reber_1997_4x1_lr0.1_trials_solved",
                "paper_protocol": "reber_1997_data1000_trials_solved",
                "full_gradient": "reber_1997_full_gradient_trials_solved",
                "per_string": "reber_1997_per_string_trials_solved",
                "in_gate_bias": "reber_1997_in_gate_bias_trials_solved",
                "adam_reber": "reber_1997_adam_trials_solved",
                "modern_lstm": "modern_reber_sgd_trials_solved"}
    for name, metric_name in expected.items():
        rec = _experiment(name, tmp_path / name, "--seed", "100")
        (variant, run), = rec["runs"].items()
        assert [m["name"] for m in run["metrics"]] == [metric_name] and run["metrics"][0]["split"] == "validation"
        assert run["provenance"][0]["seeds"] == [100] and "seeds100-100" in variant
    rec = _experiment("adam_reber", tmp_path / "adam_reber", "--seed", "100", "--output-bias", "--lr", "0.01")
    assert len(rec["runs"]) == 2


def test_sequential_construction_adds_blocks_in_order(tmp_path):
    rec = _experiment("sequential_construction", tmp_path, "--max-sequences", "200")
    (run,) = rec["runs"].values()
    added = run["trials"][0]["blocks_added"]
    assert [a["block"] for a in added] == [2, 3][:len(added)] and all(a["sequences"] % 50 == 0 for a in added)
    assert len(run["trials"][0]["curve"]["sequences"]) <= 4 - len(added)     # no test while blocks are missing
    from RNN.lstm.experiments.sequential_construction import GrowingNetwork
    model = LSTM1997(reber_config())
    grow = GrowingNetwork(model, 0.1)
    assert grow.engine.active.tolist() == [True, False, False]
    grow.errors, grow.best = [1.0], 1.0                      # not 2% below the best: the next block joins
    assert grow.testing_paused(1000) and grow.engine.active.tolist() == [True, True, False]


def test_output_bias_and_input_gate_biases_change_only_their_weights():
    import dataclasses
    assert count_parameters(LSTM1997(dataclasses.replace(reber_config(), output_bias=True))) == 276 + 7
    from RNN.lstm.experiments import in_gate_bias
    args = in_gate_bias.parse_args(["--in-gate-bias=-1,-2,-3"])
    assert LSTM1997(dataclasses.replace(reber_config(), in_gate_bias=args.in_gate_bias)).gate_bias[:3].tolist() == \
        [-1.0, -2.0, -3.0]
    for bad in (["--in-gate-bias=-1,-2"], ["--in-gate-bias", "x"]):
        with pytest.raises(SystemExit):
            in_gate_bias.parse_args(bad)
    from RNN.lstm.experiments import table1
    with pytest.raises(SystemExit):
        table1.parse_args(["--blocks", "5"])                    # not a row of Table 1


def test_adding_probes_run(tmp_path):
    from RNN.lstm.experiments.adam_adding import cosine
    assert cosine(0.01, 0, 1000) == 0.01 and cosine(0.01, 500, 1000) == pytest.approx(0.005)
    assert cosine(0.01, 1000, 1000) == pytest.approx(0.0, abs=1e-12)
    rec = _experiment("adam_adding", tmp_path / "adam", "--cosine", "--batch-size", "8", "--max-sequences", "96")
    (run,) = rec["runs"].values()
    assert run["metrics"][0]["name"] == "adding_T20_1997_adam_cosine_to_cap_mean_test_wrong"
    assert run["trials"][0]["sequences"] == 96
    rec = _experiment("error_function", tmp_path / "ef", "--max-sequences", "50")
    assert list(rec["runs"].values())[0]["metrics"][0]["name"] == "adding_T20_1997_lr1_mean_test_wrong"
    rec = _experiment("modern_lstm", tmp_path / "modern", "--task", "adding", "--optimizer", "adam", "--lr", "0.01",
                      "--forget-bias", "3")
    (run,) = rec["runs"].values()
    assert run["settings"]["forget_bias"] == 3.0 and run["metrics"][0]["name"] == "modern_adding_adam_mean_test_wrong"


def test_forget_bias_sets_the_modern_cells_forget_gates_only():
    m = ModernLSTM(adding_config(), forget_bias=3.0)
    H = m.n_cells
    bias = m.lstm.bias_ih_l0 + m.lstm.bias_hh_l0            # gates in PyTorch's order i, f, g, o
    assert torch.equal(bias[H:2 * H], torch.full((H,), 3.0))
    assert not torch.equal(bias[:H], torch.full((H,), 3.0))
    with pytest.raises(ValueError, match="no forget gate"):
        build(adding_config(), "1997", forget_bias=1.0)


def test_per_string_update_is_one_autograd_step_and_differs_from_per_step():
    """experiments/per_string.py: the NumPy update equals one plain gradient step through the truncated model on
    the whole string; the per-step online update (the paper's, train.py's) is a different algorithm."""
    torch.manual_seed(0)
    a, b, c = (LSTM1997(reber_config()).double() for _ in range(3))
    b.load_state_dict(a.state_dict())
    c.load_state_dict(a.state_dict())
    x, target, lengths = encode_reber(reber_sets(1, torch.Generator().manual_seed(0)))
    xs, ts = x[:1, :lengths[0]].double(), target[:1, :lengths[0]].double()
    e, _ = OnlineLSTM1997(a).update_per_sequence(xs[0].numpy(), ts[0].numpy(), np.ones_like(ts[0].numpy()), 0.5)
    loss = trials.reber_loss(b, xs, ts, lengths[:1])
    assert e == pytest.approx(loss.item(), rel=1e-12)
    loss.backward()
    with torch.no_grad():
        for p in b.parameters():
            p -= 0.5 * p.grad
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-13, err_msg=name)
    OnlineLSTM1997(c).online_sequence(xs[0].numpy(), ts[0].numpy(), np.ones_like(ts[0].numpy()), 0.5)
    assert not np.allclose(a.W.detach().numpy(), c.W.detach().numpy(), rtol=1e-6)


def test_selection_files_are_what_the_validation_records_give(tmp_path, capsys):
    """results/experiments/selection/*_selection.json are rebuilt from validation.json by selection.py; a changed
    record changes the choice, and --check notices a file that no longer matches."""
    from RNN.lstm.experiments import selection
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

    records = json.loads(selection.VALIDATION.read_text())
    records["runs"]["paper-lr0.5"]["record"]["runs"]["reber-1997"].update(solved=4, median_sequences=9000.0)
    changed = tmp_path / "validation.json"
    changed.write_text(json.dumps(records))
    assert selection.build(changed)["reber_lr_selection.json"]["chosen"]["paper"] == 0.5
    assert selection.main(["--check", "--runs", str(changed)]) == 1
    assert "differs" in capsys.readouterr().err
    del records["runs"]["paper-lr0.5"]["history"]
    changed.write_text(json.dumps(records))
    with pytest.raises(FileNotFoundError, match="has no history"):
        selection.build(changed)


def test_finetune_diagnostic_runs_and_records(tmp_path):
    """experiments/finetune.py: trains on from train.py's weights, reports on its validation stream, writes its
    record and figure; no test set is touched."""
    errors, target = torch.tensor([0.05, -0.01, 0.0, -0.06]), torch.tensor([0.05, 0.5, 0.5, 0.95])
    s = trials.summarise(errors, target)
    assert s["wrong_per_2560"] == 2 * 2560 / 4
    assert s["mean_error_below_0.1"] == pytest.approx(0.05) and s["mean_error_above_0.9"] == pytest.approx(-0.06)
    assert s["rms_error_between"] == pytest.approx(math.sqrt(0.0001 / 2))
    assert trials.summarise(errors[1:3], target[1:3])["mean_error_below_0.1"] is None
    rec = _experiment("finetune", tmp_path, "--weights", str(RESULTS / "adding.pt"))
    (run,) = rec["runs"].values()
    curve = run["trials"][0]["validation_curve"]
    assert [c["sequences"] for c in curve] == [0, 32, 64, 96, 128, 160] and "test_wrong" not in run["trials"][0]
    assert run["metrics"][0]["split"] == "validation" and (tmp_path / "finetune.png").stat().st_size > 0
    assert importlib.import_module("RNN.lstm.experiments.finetune").main(
        ["--quick", "--out", str(tmp_path), "--weights", str(tmp_path / "missing.pt")]) == 2

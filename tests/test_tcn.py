import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import common.data
from CNN.tcn import tasks, train
from CNN.tcn.model import PAPER_SETTINGS, TASK_SETTINGS, TCN, CausalConv1d, TaskModel, pmnist_permutation
from common.data import DATASETS, Sequences, load_polyphonic
from common.summary import count_parameters
from common.training import load_checkpoint
from RNN.gru import train as gru_train
from tests.conftest import one_error_line, require_mirror


@pytest.fixture(scope="module")
def jsb():
    require_mirror(DATASETS["jsb-pickle"][0].path)
    return load_polyphonic("jsb")


def _tcn(**kw) -> TCN:
    torch.manual_seed(0)
    return TCN(**{"n_in": 5, "n_out": 4, "hidden": 8, "levels": 3, "k": 3, "dropout": 0.0, **kw}).eval()


@pytest.mark.parametrize("k,levels", [(2, 1), (3, 2), (6, 4)])
def test_causal_an_output_never_changes_when_a_future_input_does(k, levels):
    model = _tcn(k=k, levels=levels)
    x = torch.randn(2, 40, 5)
    for t0 in (0, 17, 39):
        x2 = x.clone()
        x2[:, t0] += torch.randn(2, 5)
        y, y2 = model(x), model(x2)
        assert torch.equal(y[:, :t0], y2[:, :t0])
        assert not torch.allclose(y[:, t0], y2[:, t0])


@pytest.mark.parametrize("k,levels,expected", [(3, 2, 13), (6, 4, 151), (5, 4, 121), (2, 1, 3)])
def test_receptive_field_formula_matches_the_impulse_response(k, levels, expected):
    model = _tcn(k=k, levels=levels, hidden=32)
    assert model.receptive_field == expected
    T = expected + 20
    x = torch.randn(1, T, 5, requires_grad=True)
    model(x)[0, -1].sum().backward()                      # which inputs does the last output see?
    seen = (x.grad[0].abs().sum(1) > 0).nonzero().flatten()
    assert seen.min().item() == T - expected and seen.max().item() == T - 1


def test_left_padding_equals_the_authors_pad_both_sides_and_chop():
    torch.manual_seed(0)
    ours = CausalConv1d(4, 6, k=3, d=4)
    theirs = nn.Conv1d(4, 6, 3, dilation=4, padding=8)
    with torch.no_grad():
        theirs.weight.copy_(ours.conv.weight)
        theirs.bias.copy_(ours.conv.bias)
    x = torch.randn(2, 4, 30)
    assert torch.allclose(ours(x), theirs(x)[..., :-8], atol=1e-6)


def test_weight_normalisation_g_times_v_over_norm():
    conv = CausalConv1d(4, 6, k=3, d=1).conv
    g, v = conv.parametrizations.weight.original0, conv.parametrizations.weight.original1
    assert g.shape == (6, 1, 1) and v.shape == (6, 4, 3)
    with torch.no_grad():
        g.mul_(2.5)
    assert torch.allclose(conv.weight.flatten(1).norm(dim=1), g.flatten(), atol=1e-6)
    assert torch.allclose(conv.weight, g * v / v.flatten(1).norm(dim=1)[:, None, None], atol=1e-6)


def test_parameter_counts_of_the_paper_settings():
    # Table 1 gives the sizes as about 300K (JSB) and 1M (Nottingham); exact counts of Table 2's settings
    counts = {name: count_parameters(TCN(88, 88, s["hidden"], s["levels"], s["k"], s["dropout"]))
              for name, s in PAPER_SETTINGS.items()}
    assert counts == {"jsb": 269_938, "nottingham": 1_053_238}
    jsb = TCN(88, 88, 150, 2, 3)
    # level 1: two weight-normed convs (v + g + bias) and the 1x1 shortcut 88 -> 150; level 2 without one
    level1 = (150 * 88 * 3 + 150 + 150) + (150 * 150 * 3 + 150 + 150) + (88 * 150 + 150)
    level2 = 2 * (150 * 150 * 3 + 150 + 150)
    assert count_parameters(jsb) == level1 + level2 + 150 * 88 + 88
    assert jsb.blocks[1].downsample is None and jsb.blocks[0].downsample is not None


def test_dropout_only_in_training():
    model = _tcn(dropout=0.5)
    x = torch.randn(1, 20, 5)
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_the_music_nll_is_one_shared_definition():
    assert train.frame_nll is common.data.frame_nll and gru_train.frame_nll is common.data.frame_nll


def test_a_padded_batch_gives_the_sum_of_its_pieces():
    model = _tcn(n_in=88, n_out=88)
    torch.manual_seed(1)
    pieces = [torch.bernoulli(torch.full((n, 88), 0.05)) for n in (7, 12, 3)]
    batch = Sequences.from_list(pieces)
    loss, stats = train.step(model, (batch.data, batch.lengths))
    alone = [train.step(model, (p[None], torch.tensor([len(p)])))[1] for p in pieces]
    assert stats["n"] == sum(len(p) - 1 for p in pieces) == sum(a["n"] for a in alone)
    assert stats["loss"] == pytest.approx(sum(a["loss"] for a in alone), rel=1e-5)
    assert loss.item() == pytest.approx(stats["loss"] / 3, rel=1e-5)     # summed per piece, mean over pieces
    # frames x_2 .. x_T are predicted from x_1 .. x_{T-1}
    logits = model(pieces[0][None, :-1])
    manual = F.binary_cross_entropy_with_logits(logits, pieces[0][None, 1:], reduction="sum")
    assert alone[0]["loss"] == pytest.approx(manual.item(), rel=1e-5)


def test_all_frames_convention_predicts_every_frame_the_first_from_silence():
    model = _tcn(n_in=88, n_out=88)
    piece = torch.bernoulli(torch.full((9, 88), 0.1))
    _, later = train.step(model, (piece[None], torch.tensor([9])))
    _, every = train.step_all_frames(model, (piece[None], torch.tensor([9])))
    assert every["n"] == 9 and later["n"] == 8
    shifted = torch.cat([torch.zeros(1, 88), piece[:-1]])[None]
    manual = F.binary_cross_entropy_with_logits(model(shifted)[0], piece, reduction="sum")
    assert every["loss"] == pytest.approx(manual.item(), rel=1e-5)


def test_plateau_decay_reads_the_history():
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1.0)
    hook = train.plateau_decay(opt, after=3, window=2)
    history = []
    for epoch, val in enumerate([5, 4, 3, 9, 2, 2.5, 2.6, 2.7], start=1):
        history.append({"epoch": epoch, "val_loss": val})
        hook(history)
    # epoch 4 is the first after 3: 9 > max(4, 3) decays; 2.5 < max(9, 2) does not; 2.6 > max(2, 2.5) does
    assert [h["epoch"] for h in history if h.get("lr_divided")] == [4, 7, 8]
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_sample_shape_and_values():
    model = _tcn(n_in=88, n_out=88)
    prime = torch.bernoulli(torch.full((5, 88), 0.1))
    roll = model.sample(20, prime=prime, generator=torch.Generator().manual_seed(0))
    assert roll.shape == (25, 88) and torch.equal(roll[:5], prime)
    assert set(roll.unique().tolist()) <= {0.0, 1.0}
    assert model.sample(3).shape == (3, 88)


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match="levels"):
        TCN(levels=0)
    with pytest.raises(SystemExit):
        train.parse_args(["--dataset", "bach"])
    with pytest.raises(SystemExit):
        train.parse_args(["--clip", "-1"])
    assert train.parse_args([]).clip == 0.4 and train.parse_args(["--clip", "0"]).clip == 0


def test_training_lowers_the_nll(jsb):
    data = {s: Sequences(v.data[:16], v.lengths[:16]) for s, v in jsb.items()}
    torch.manual_seed(0)
    model = TCN(88, 88, 32, 2, 3, 0.0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    batches = train.loaders(data, 4, 0, "cpu")
    before = train.evaluate(model, batches["train"], train.step)["loss"]
    for _ in range(5):
        for batch in batches["train"]:
            loss, _ = train.step(model, batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert train.evaluate(model, batches["train"], train.step)["loss"] < 0.7 * before


def test_quick_run_end_to_end_and_resume(jsb, tmp_path):
    out = tmp_path / "run"
    assert train.main(["--quick", "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["quick"] is True and record["parameters"] == 269_938 and record["receptive_field"] == 13
    assert (out / "model.pt").is_file() and (out / "curves.png").is_file()
    assert train.main(["--quick", "--out", str(out), "--no-progress", "--evaluate", str(out / "model.pt")]) == 0
    assert train.main(["--quick", "--out", str(out), "--no-progress", "--resume"]) == 0
    # stopped after one epoch and resumed: the same weights as the uninterrupted run
    cut = tmp_path / "cut"
    assert train.main(["--quick", "--out", str(cut), "--no-progress", "--epochs", "1"]) == 0
    assert train.main(["--quick", "--out", str(cut), "--no-progress", "--epochs", "2", "--resume"]) == 0
    a, b = (load_checkpoint(d / "model.pt") for d in (out, cut))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_evaluate_rejects_another_setting(jsb, tmp_path, capsys):
    path = tmp_path / "m.pt"
    torch.save(TCN(88, 88, 150, 4, 6).state_dict(), path)
    assert train.main(["--quick", "--no-progress", "--evaluate", str(path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_comparison_table_is_generated_from_the_results_files(tmp_path):
    from CNN.tcn.experiments import compare

    assert compare.render() == compare.README.read_text(), "run python CNN/tcn/experiments/compare.py"
    # from files only: a fake tree with one GRU run and one TCN run
    (tmp_path / "RNN/gru/results").mkdir(parents=True)
    (tmp_path / "CNN/tcn/results/jsb").mkdir(parents=True)
    (tmp_path / "CNN/tcn").joinpath("README.md").write_text(f"x\n{compare.BEGIN}\n{compare.END}\n")
    unit = {"parameters": 100, "test_nll": 9.5, "wall_time_s": 60.0}
    (tmp_path / "RNN/gru/results/metrics.json").write_text(json.dumps({"dataset": "jsb", "units": {"gru": unit}}))
    (tmp_path / "CNN/tcn/results/jsb/metrics.json").write_text(json.dumps(
        {"parameters": 200, "test_nll_all_frames": 8.5, "metrics": [{"ours": 8.25}], "training_time_s": 120.0}))
    text = compare.render(tmp_path)
    assert "| JSB Chorales | GRU | RNN/gru (Chung et al. 2014's sizes) | 100 | 9.500 | - | 1.0 min | 8.43 |" in text
    assert ("| JSB Chorales | TCN | CNN/tcn (Bai et al. 2018's setting) | 200 | 8.500 | **8.250** | 2.0 min | 8.10 |"
            in text)


# --------------------------------------------------------------------------- Sec. 4's stress tests and pixel MNIST


def test_adding_problem_inputs_markers_and_answers():
    x, y = tasks.adding_problem(500, 30, torch.Generator().manual_seed(0))
    assert x.shape == (500, 30, 2) and y.shape == (500,) and x.dtype == y.dtype == torch.float32
    values, markers = x[..., 0], x[..., 1]
    assert 0 <= values.min() and values.max() < 1
    assert set(markers.unique().tolist()) == {0.0, 1.0} and torch.equal(markers.sum(1), torch.full((500,), 2.0))
    assert torch.allclose(y, (values * markers).sum(1))                 # the sum of the two marked numbers
    where = markers.nonzero()[:, 1]
    assert where.min() == 0 and where.max() == 29                       # anywhere in the sequence (the authors')


def test_copy_memory_layout_and_expected_output():
    T = 25
    x, y = tasks.copy_memory(64, T, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (64, T + 20)
    digits = x[:, :10]
    assert digits.min() >= 1 and digits.max() <= 8                      # 10 digits from 1..8
    assert (x[:, 10:T + 9] == 0).all() and (x[:, T + 9:] == 9).all()    # T - 1 blanks, then eleven 9s
    assert (y[:, :T + 10] == 0).all() and torch.equal(y[:, -10:], digits)   # blanks, then the 10 digits again
    # the authors' copy_memory/utils.py layout, built from the same digits
    theirs_x = torch.cat([digits, torch.zeros(64, T)[:, :-1].to(x.dtype), torch.full((64, 11), 9, dtype=x.dtype)], 1)
    theirs_y = torch.cat([torch.zeros(64, 10 + T, dtype=y.dtype), digits], 1)
    assert torch.equal(x, theirs_x) and torch.equal(y, theirs_y)
    # remembering nothing: a blank wherever blank, a guess among 8 digits at the end: Table 1's recurrent level
    assert tasks.copy_memory_zero_guess_loss(1000) == pytest.approx(10 * math.log(8) / 1020) == pytest.approx(0.0204,
                                                                                                             abs=1e-4)


@pytest.mark.parametrize("task", ["adding", "copy"])
def test_fixed_test_and_validation_sets_whatever_the_seed(task):
    sizes = {"train": 20, "valid": 10, "test": 10}
    a, b = tasks.task_splits(task, 15, seed=0, sizes=sizes), tasks.task_splits(task, 15, seed=7, sizes=sizes)
    for split in ("valid", "test"):
        assert all(torch.equal(u, v) for u, v in zip(a[split], b[split]))
    assert not torch.equal(a["train"][0], b["train"][0])                 # the training set follows --seed
    assert not torch.equal(a["test"][0], a["valid"][0][: len(a["test"][0])])
    assert a["train"][0].shape[0] == 20 and tasks.SIZES[task]["test"] == 1000


def test_pmnist_permutation_is_fixed_by_its_seed():
    p0 = pmnist_permutation(0)
    assert torch.equal(p0, pmnist_permutation(0)) and not torch.equal(p0, pmnist_permutation(1))
    assert torch.equal(p0.sort().values, torch.arange(784))
    model = TaskModel("pmnist", hidden=4, levels=2, k=2, permutation_seed=3)
    assert torch.equal(model.permutation, pmnist_permutation(3)) and "permutation" in model.state_dict()


def _task_input(task: str, n: int = 3, T: int = 12):
    if task in ("smnist", "pmnist"):
        return torch.rand(n, 1, 28, 28)
    return tasks.make(task, n, T, 0)[0]


@pytest.mark.parametrize("arch", ["tcn", "lstm", "gru", "rnn"])
@pytest.mark.parametrize("task", ["smnist", "pmnist", "adding", "copy"])
def test_task_model_shapes(task, arch):
    torch.manual_seed(0)
    model = TaskModel(task, arch, hidden=6, levels=2, k=3).eval()
    y = model(_task_input(task))
    assert y.shape == {"smnist": (3, 10), "pmnist": (3, 10), "adding": (3,), "copy": (3, 32, 10)}[task]
    assert torch.isfinite(y).all()


# Exact sizes of the default networks: the TCNs of Table 2 (Fig. 3: "8x25, k=7 (66K)"; Fig. 2: "8x24, k=8 (70K)";
# Fig. 4: "8x10, k=8 (13K)") and the recurrent baselines built to Table 1's size (70K, 70K, 70K, 16K).
SIZES = {"smnist": {"tcn": 66_910, "lstm": 70_470, "gru": 70_360, "rnn": 69_928},
         "pmnist": {"tcn": 66_910, "lstm": 70_470, "gru": 70_360, "rnn": 69_928},
         "adding": {"tcn": 70_369, "lstm": 69_811, "gru": 70_367, "rnn": 69_955},
         "copy": {"tcn": 12_530, "lstm": 16_236, "gru": 16_040, "rnn": 15_970}}


@pytest.mark.parametrize("task", list(SIZES))
def test_parameter_counts_are_table_1s_sizes(task):
    for arch, expected in SIZES[task].items():
        args = train.parse_args(["--task", task, "--model", arch])
        assert count_parameters(TaskModel(**train.model_kwargs(args))) == expected, arch
        table1 = TASK_SETTINGS[task]["size"]
        if arch != "tcn":
            assert abs(expected - table1) / table1 < 0.03           # within 3% of Table 1's size
    figure = {"smnist": 66e3, "pmnist": 66e3, "adding": 70e3, "copy": 13e3}[task]
    assert abs(SIZES[task]["tcn"] - figure) / figure < 0.04          # the TCN of the paper's figures
    tcn = TaskModel(**train.model_kwargs(train.parse_args(["--task", task])))
    assert tcn.receptive_field >= train.sequence_length(task, train.SEQ_LEN.get(task))   # sees the whole input


@pytest.mark.parametrize("task", ["smnist", "pmnist"])
def test_tcn_on_pixels_is_causal(task):
    torch.manual_seed(0)
    model = TaskModel(task, "tcn", hidden=6, levels=3, k=3).eval()
    x = torch.rand(2, 1, 28, 28)
    for row, col in ((0, 0), (13, 5), (27, 27)):
        x2 = x.clone()
        x2[:, 0, row, col] = 1.0 - x2[:, 0, row, col]
        y, y2 = model.net(model.sequence(x)), model.net(model.sequence(x2))   # the outputs at every step
        t = row * 28 + col                                                   # the step that reads this pixel
        if task == "pmnist":
            t = int((model.permutation == t).nonzero())
        assert torch.equal(y[:, :t], y2[:, :t]) and not torch.allclose(y[:, t], y2[:, t])


def _read(out):
    return json.loads((out / "metrics.json").read_text())


# short sequences and (P-MNIST) a small TCN keep these seconds; sequential MNIST runs the paper's network
QUICK = {"adding": ["--seq-len", "30"], "copy": ["--seq-len", "20"], "smnist": [],
         "pmnist": ["--hidden", "8", "--levels", "3", "--k", "3", "--permutation-seed", "5"]}


@pytest.mark.parametrize("task", list(QUICK))
def test_quick_run_of_each_task(task, tmp_path, mnist_root):
    out = tmp_path / task
    argv = ["--task", task, "--quick", "--no-progress", "--out", str(out), "--data-dir", str(mnist_root),
            *QUICK[task]]
    assert train.main(argv) == 0
    record = _read(out)
    key = train.TABLE1_TASKS[task]["key"]
    assert record["quick"] is True and record["task"] == task and record["epochs"] == 2
    assert [m["name"] for m in record["metrics"]] == [key] and record["metrics"][0]["paper"] == train.TABLE1_TASKS[
        task]["TCN"]
    assert record[key] == pytest.approx(record["metrics"][0]["ours"], rel=1e-3)
    assert record["parameters"] == (SIZES[task]["tcn"] if task != "pmnist" else count_parameters(
        TaskModel("pmnist", hidden=8, levels=3, k=3)))
    if task == "pmnist":
        assert record["permutation_seed"] == 5 and record["model"]["kwargs"]["permutation_seed"] == 5
    assert all((out / f).is_file() for f in ("model.pt", "checkpoint.pt", "history.json", "curves.png"))
    assert train.main([*argv, "--evaluate", str(out / "model.pt")]) == 0
    checks = train.verify(out, record, fast=True)                        # common.verify on this run
    assert [c.agrees for c in checks] == [True]


def test_quick_recurrent_baseline_is_reported_without_a_band(tmp_path):
    results = tmp_path / "results"
    base = ["--task", "adding", "--seq-len", "30", "--quick", "--no-progress"]
    assert train.main([*base, "--model", "gru", "--out", str(results / "baselines" / "adding-gru")]) == 0
    record = _read(results / "baselines" / "adding-gru")
    assert record["metrics"] == [] and record["arch"] == "gru" and record["parameters"] == SIZES["adding"]["gru"]
    measured = record["measured"]
    assert measured["band"] is None and measured["paper"] == 5.3e-5 and measured["name"] == "test_mse"
    assert measured["ours"] == pytest.approx(record["test_mse"], rel=1e-3)
    # verify of the TCN's run measures the task's baselines beside it
    assert train.main([*base, "--out", str(results / "adding")]) == 0
    checks = train.verify(results / "adding", _read(results / "adding"), fast=True)
    assert [c.claim for c in checks] == ["test_mse", "baselines/adding-gru: test_mse"]
    assert all(c.agrees for c in checks)


def test_resume_of_a_task_gives_the_uninterrupted_run(tmp_path):
    base = ["--task", "copy", "--seq-len", "20", "--quick", "--no-progress"]      # dropout, clipping, RMSprop
    assert train.main([*base, "--out", str(tmp_path / "whole")]) == 0
    assert train.main([*base, "--out", str(tmp_path / "cut"), "--epochs", "1"]) == 0
    assert train.main([*base, "--out", str(tmp_path / "cut"), "--resume"]) == 0
    a, b = (load_checkpoint(tmp_path / d / "model.pt") for d in ("whole", "cut"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _read(tmp_path / "whole")["test_loss"] == _read(tmp_path / "cut")["test_loss"]


def test_output_folders_and_defaults():
    results = train.PAPER_DIR / "results"
    assert train.parse_args(["--task", "smnist"]).out == results / "smnist"
    assert train.parse_args(["--task", "adding", "--model", "gru"]).out == results / "baselines" / "adding-gru"
    assert train.parse_args(["--task", "copy", "--seq-len", "500"]).out == results / "copy-T500"
    assert train.parse_args(["--task", "adding", "--quick"]).out.name == "tcn-adding-quick"
    music = train.parse_args([])
    assert (music.out, music.epochs, music.batch_size, music.lr, music.clip) == (results / "jsb", 100, 1, 2e-3, 0.4)
    copy = train.parse_args(["--task", "copy"])
    assert (copy.k, copy.levels, copy.hidden, copy.dropout, copy.clip, copy.optimizer, copy.lr, copy.seq_len) == (
        8, 8, 10, 0.05, 1.0, "rmsprop", 5e-4, 1000)
    lstm = train.parse_args(["--task", "pmnist", "--model", "lstm"])
    assert (lstm.hidden, lstm.levels, lstm.optimizer, lstm.lr, lstm.clip, lstm.forget_bias) == (
        130, 1, "rmsprop", 1e-3, 1.0, 10.0)
    assert train.parse_args(["--task", "pmnist"]).permutation_seed == 0


@pytest.mark.parametrize("bad, says", [
    (["--task", "sort"], "--task"),
    (["--task", "smnist", "--dataset", "nottingham"], "--dataset"),
    (["--model", "lstm"], "--model lstm"),
    (["--task", "smnist", "--seq-len", "100"], "--seq-len"),
    (["--task", "adding", "--seq-len", "1"], "--seq-len"),
    (["--task", "adding", "--model", "gru", "--k", "3"], "--k"),
    (["--task", "adding", "--k", "1"], "--k"),
    (["--task", "adding", "--model", "gru", "--forget-bias", "1"], "--forget-bias"),
    (["--time-limit-h", "1"], "--time-limit-h"),
    (["--task", "adding", "--time-limit-h", "0"], "--time-limit-h"),
    (["--task", "adding", "--permutation-seed", "3"], "--permutation-seed"),
    (["--task", "copy", "--dropout", "1.5"], "--dropout"),
    (["--task", "copy", "--clip", "-1"], "--clip"),
])
def test_bad_flags_are_one_error_line(bad, says, capsys):
    with pytest.raises(SystemExit) as e:
        train.parse_args(bad)
    assert e.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and says in errors[0], errors


def test_evaluate_weights_of_another_task_is_one_error_line(tmp_path, capsys):
    path = tmp_path / "m.pt"
    torch.save(TaskModel("copy", hidden=10, levels=8, k=8).state_dict(), path)
    assert train.main(["--task", "adding", "--seq-len", "30", "--quick", "--no-progress", "--evaluate",
                       str(path)]) == 2
    assert str(path) in one_error_line(capsys)


def test_time_limit_reads_the_history():
    hook = train.time_limit(1.0)
    assert hook([{"epoch_time_s": 1000.0}]) is None                       # 2,000 s < 1 h
    assert hook([{"epoch_time_s": 1000.0}] * 2) is None                   # 3,000 s
    assert "time box" in hook([{"epoch_time_s": 1000.0}] * 3)             # a fourth would end at 4,000 s


def test_verify_of_the_shipped_jsb_run(jsb):
    # (Nottingham and every other shipped run: tests/test_verify.py, through python -m common.verify --fast)
    from common.verify import papers

    runs = {name: (results, record) for folder, name, results, record in papers() if folder == "CNN/tcn"}
    assert {"jsb", "nottingham"} <= runs.keys()
    checks = train.verify(*runs["jsb"], fast=False)
    assert [c.claim for c in checks] == ["test_nll", "test_nll_all_frames"]
    assert all(c.agrees for c in checks) and abs(checks[0].measured - 8.1766) < 1e-3, checks


def test_table1_is_generated_from_the_results_files(tmp_path):
    from CNN.tcn.experiments import compare

    results = tmp_path / "CNN/tcn/results"
    for folder, record in {"adding": {"test_mse": 4.321e-5},
                           "baselines/smnist-lstm": {"test_accuracy_pct": 61.25, "epochs": 3, "stopped_early": True,
                                                     "time_limit_h": 6},
                           "baselines/copy-gru": {"test_loss": 0.0197123}}.items():
        (results / folder).mkdir(parents=True)
        (results / folder / "metrics.json").write_text(json.dumps(record))
    (tmp_path / "CNN/tcn/README.md").write_text(
        f"{compare.BEGIN}\n{compare.END}\nx\n{compare.TABLE1_BEGIN}\n{compare.TABLE1_END}\n")
    text = compare.render(tmp_path)
    assert ("| Adding problem T = 600, test MSE | 70K | **4.32e-5** | 5.8e-5 | pending | 0.164 | pending | 5.3e-5 | "
            "pending | 0.177 |") in text
    assert "| Sequential MNIST, test accuracy % | 70K | pending | 99.0 | 61.25 (3 epochs, 6 h box) | 87.2 |" in text
    assert "| Copy memory T = 1000, test loss | 16K | pending | 3.5e-5 | pending | 0.0204 | 0.0197 | 0.0197 |" in text
    assert "| JSB Chorales, test NLL | 300K | pending | 8.1 | - | 8.45 |" in text

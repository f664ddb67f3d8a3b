import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import common.data
from CNN.tcn import train
from CNN.tcn.model import PAPER_SETTINGS, TCN, CausalConv1d
from common.data import DATASETS, Sequences, load_polyphonic
from common.summary import count_parameters
from common.training import load_checkpoint
from RNN.gru import train as gru_train
from tests.conftest import require_mirror


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

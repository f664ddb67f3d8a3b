import json

import pytest
import torch
from torch import nn

from common.data import DATASETS, frame_nll, load_polyphonic, notes_to_roll, sequence_mask
from RNN.gru import train
from common.summary import count_parameters
from RNN.gru.model import GRUCell, LSTMCell, MusicRNN, TanhRNNCell
from tests.conftest import require_mirror


@pytest.fixture(scope="module")
def jsb():
    require_mirror(DATASETS["jsb-pickle"][0].path)
    return load_polyphonic("jsb")


def _copy_lstm(ours: LSTMCell, ref: nn.LSTMCell):
    with torch.no_grad():
        ours.W.weight.copy_(ref.weight_ih)
        ours.W.bias.copy_(ref.bias_ih + ref.bias_hh)
        ours.U.weight.copy_(ref.weight_hh)


def test_lstm_cell_without_peepholes_equals_nn_lstm():
    torch.manual_seed(0)
    ref, ours = nn.LSTMCell(5, 7), LSTMCell(5, 7, peephole=False)
    _copy_lstm(ours, ref)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    h_ref, c_ref = ref(x, (h, c))
    out = ours(ours.input_part(x), torch.cat([h, c], 1))
    assert torch.allclose(out[:, :7], h_ref, atol=1e-6) and torch.allclose(out[:, 7:], c_ref, atol=1e-6)


def test_lstm_peepholes_enter_the_gates():
    torch.manual_seed(0)
    cell = LSTMCell(5, 7)
    assert cell.V.shape == (3, 7)  # diagonal V_i, V_f, V_o
    x, state = torch.randn(3, 5), torch.randn(3, 14)
    before = cell(cell.input_part(x), state)
    with torch.no_grad():
        cell.V.fill_(0.5)
    assert not torch.allclose(before, cell(cell.input_part(x), state))


def test_gru_cell_reset_after_equals_nn_gru_with_the_update_gate_flipped():
    torch.manual_seed(0)
    ref, ours = nn.GRUCell(5, 7), GRUCell(5, 7, reset_after=True)
    n = 7
    with torch.no_grad():  # PyTorch stacks (r, z, n); its z is the paper's 1 - z: negate z's weights
        sign = torch.cat([torch.ones(n), -torch.ones(n), torch.ones(n)])[:, None]
        ours.W.weight.copy_(ref.weight_ih * sign)
        ours.W.bias.copy_((ref.bias_ih + torch.cat([ref.bias_hh[: 2 * n], torch.zeros(n)])) * sign[:, 0])
        ours.U_rz.weight.copy_(ref.weight_hh[: 2 * n] * sign[: 2 * n])
        ours.U.weight.copy_(ref.weight_hh[2 * n :])
        ours.U.bias.copy_(ref.bias_hh[2 * n :])
    x, h = torch.randn(3, 5), torch.randn(3, 7)
    assert torch.allclose(ours(ours.input_part(x), h), ref(x, h), atol=1e-6)


def test_gru_eq_5_to_8_by_hand():
    torch.manual_seed(0)
    cell = GRUCell(4, 3)
    x, h = torch.randn(2, 4), torch.randn(2, 3)
    s = torch.sigmoid
    Wr, Wz, Wh = cell.W.weight.split(3)
    br, bz, bh = cell.W.bias.split(3)
    Ur, Uz = cell.U_rz.weight.split(3)
    z = s(x @ Wz.T + bz + h @ Uz.T)
    r = s(x @ Wr.T + br + h @ Ur.T)
    h_tilde = torch.tanh(x @ Wh.T + bh + (r * h) @ cell.U.weight.T)
    assert torch.allclose(cell(cell.input_part(x), h), (1 - z) * h + z * h_tilde, atol=1e-6)


def test_tanh_cell_and_sizes_of_table_1():
    cell = TanhRNNCell(4, 3)
    x, h = torch.randn(2, 4), torch.randn(2, 3)
    assert torch.allclose(cell(cell.input_part(x), h), torch.tanh(cell.W(x) + h @ cell.U.weight.T))
    counts = {u: count_parameters(MusicRNN(u)) for u in ("tanh", "gru", "lstm")}
    assert {u: MusicRNN(u).n_hidden for u in counts} == {"tanh": 100, "gru": 46, "lstm": 36}
    assert counts == {"tanh": 27_788, "gru": 22_766, "lstm": 21_364}
    assert max(counts.values()) / min(counts.values()) < 1.35  # about the same size, as Table 1 intends


def test_masked_nll_ignores_padding():
    torch.manual_seed(0)
    roll = (torch.rand(2, 6, 88) < 0.1).float()
    lengths = torch.tensor([6, 3])
    logits = torch.randn(2, 6, 88)
    total, frames = frame_nll(logits, roll, lengths)
    assert frames == 9
    garbage = logits.clone()
    garbage[1, 3:] = 1e3
    assert torch.allclose(frame_nll(garbage, roll, lengths)[0], total)
    by_hand = sum(nn.functional.binary_cross_entropy_with_logits(logits[i, :n], roll[i, :n], reduction="sum")
                  for i, n in enumerate(lengths.tolist()))
    assert torch.allclose(total, by_hand)
    assert sequence_mask(lengths, 6).sum() == 9


def test_model_is_causal():
    torch.manual_seed(0)
    model = MusicRNN("gru")
    roll = (torch.rand(1, 10, 88) < 0.1).float()
    changed = roll.clone()
    changed[0, 6] = 1 - changed[0, 6]
    a, b = model(roll), model(changed)
    assert torch.allclose(a[0, :7], b[0, :7]) and not torch.allclose(a[0, 7:], b[0, 7:])


def test_notes_to_roll():
    roll = notes_to_roll([[21, 60], [], [108]])
    assert roll.shape == (3, 88) and roll.sum() == 3 and roll[0, 0] == 1 and roll[0, 39] == 1 and roll[2, 87] == 1


def test_pickle_loader_reads_the_published_splits(jsb):
    assert {k: len(v) for k, v in jsb.items()} == {"train": 229, "valid": 76, "test": 77}
    assert {k: int(v.lengths.sum()) for k, v in jsb.items()} == {"train": 13807, "valid": 4602, "test": 4725}
    assert jsb["train"].data.shape[-1] == 88 and jsb["train"].data.dtype == torch.uint8


def test_pickle_and_mat_give_the_same_rolls(jsb, tmp_path, monkeypatch):
    """The .mat path (used to download) and the pickle (the distributed format) agree."""
    require_mirror(DATASETS["jsb-mat"][0].path)
    import shutil

    mirror = tmp_path / "mirror"
    (mirror / "polyphonic").mkdir(parents=True)
    src = require_mirror(DATASETS["jsb-mat"][0].path) / DATASETS["jsb-mat"][0].path
    shutil.copy(src, mirror / DATASETS["jsb-mat"][0].path)
    monkeypatch.setenv("PAPER_DATA_MIRROR", str(mirror))
    from_mat = load_polyphonic("jsb", tmp_path / "root")
    for split in jsb:
        assert torch.equal(from_mat[split].lengths, jsb[split].lengths)
        assert torch.equal(from_mat[split].data, jsb[split].data)


def test_quick_run_end_to_end(jsb, tmp_path):
    assert train.main(["--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["quick"] is True and set(record["units"]) == {"tanh", "lstm", "gru"}
    names = [m["name"] for m in record["metrics"]]
    assert names == ["jsb_tanh_test_nll", "jsb_lstm_test_nll", "jsb_gru_test_nll", "gru_and_lstm_below_tanh"]
    for unit in ("tanh", "lstm", "gru"):
        assert (tmp_path / f"jsb-{unit}" / "model.pt").exists()
        assert 0 < record["units"][unit]["test_nll"] < 88 * 0.7


def test_training_lowers_the_nll(jsb):
    torch.manual_seed(0)
    model = MusicRNN("gru")
    roll, lengths = jsb["train"].data[:16].float(), jsb["train"].lengths[:16]
    roll = roll[:, : int(lengths.max())]
    opt = torch.optim.RMSprop(model.parameters(), lr=2e-3)
    first = None
    for _ in range(40):
        nll, frames = frame_nll(model(roll), roll, lengths)
        loss = nll / frames
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize("bad", [["--unit", "rnn"], ["--dataset", "bach"], ["--epochs", "0"], ["--hidden", "-3"]])
def test_bad_flags(bad):
    with pytest.raises(SystemExit) as e:
        train.parse_args(bad)
    assert e.value.code == 2


def _tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def test_update_hook_takes_the_gradient_at_noisy_weights_and_steps_from_clean_ones():
    """The step that fit's old weight_noise and max_grad_norm options made, now train.noisy_clipped_update:
    noise on every weight for the forward and backward pass only, the gradient rescaled to norm <= clip,
    then the optimiser step from the clean weights."""
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    model = _tiny_model()
    clean = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(1)
    train.noisy_clipped_update(0.5, 1.0)(lambda: ((model(x) - y) ** 2).mean(), model, opt)
    grads = [p.grad.clone() for p in model.parameters()]

    # the same step by hand: the same noise draws, the gradient at w + noise, clipped, applied to w
    reference = _tiny_model()
    torch.manual_seed(1)
    noise = [torch.randn_like(p) * 0.5 for p in reference.parameters()]
    with torch.no_grad():
        for p, e in zip(reference.parameters(), noise):
            p.add_(e)
    ((reference(x) - y) ** 2).mean().backward()
    noisy_grads = [p.grad for p in reference.parameters()]
    norm = torch.sqrt(sum((g ** 2).sum() for g in noisy_grads))
    assert norm > 1.0                                  # so that clipping has something to do
    for g, g_ref in zip(grads, noisy_grads):
        torch.testing.assert_close(g, g_ref / norm, rtol=1e-5, atol=1e-6)
    assert torch.sqrt(sum((g ** 2).sum() for g in grads)) == pytest.approx(1.0, rel=1e-5)   # clipped to 1

    # the weights moved by -lr * gradient from the clean weights: the noise is gone
    for p, w, g in zip(model.parameters(), clean, grads):
        torch.testing.assert_close(p.detach(), w - 0.1 * g, rtol=0, atol=1e-6)

    # and the noise did change the step: the clean gradient points elsewhere
    plain = _tiny_model()
    ((plain(x) - y) ** 2).mean().backward()
    assert not all(torch.allclose(g, p.grad / norm, atol=1e-3) for g, p in zip(grads, plain.parameters()))


def test_update_hook_without_noise_and_clipping_is_plain_sgd():
    from common.training import sgd_update
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    a, b = _tiny_model(), _tiny_model()
    for model, update in ((a, train.noisy_clipped_update(0.0, None)), (b, sgd_update)):
        opt = torch.optim.RMSprop(model.parameters(), lr=0.01, alpha=0.95, momentum=0.9)
        for _ in range(3):
            update(lambda model=model: ((model(x) - y) ** 2).mean(), model, opt)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_clipping_leaves_small_gradients_alone():
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    model, reference = _tiny_model(), _tiny_model()
    train.noisy_clipped_update(0.0, 1e6)(lambda: ((model(x) - y) ** 2).mean(), model,
                                          torch.optim.SGD(model.parameters(), lr=0.1))
    ((reference(x) - y) ** 2).mean().backward()
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(model.parameters(), reference.parameters()))


def test_patience_stop_reads_the_history():
    """Best at epoch 19, then only ties (not better): the old fit(patience=20) ran 39 epochs."""
    stop = train.patience_stop(20)
    losses = [20.0 - e for e in range(19)] + [2.0] * 30
    history = [{"epoch": i + 1, "val_loss": v} for i, v in enumerate(losses)]
    assert stop(history[:38]) is None
    assert "best 2.0000 at epoch 19" in stop(history[:39])


def test_fit_with_patience_hook_stops_as_the_old_option_did(tmp_path):
    """A validation loss that never improves after epoch 1 stops the run after 1 + patience epochs, and the
    model of epoch 1 is kept (fit's select), as fit(select="val_loss", patience=...) used to do."""
    from common.data import TensorLoader
    from common.training import fit

    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    loader = TensorLoader(torch.randn(8, 3), torch.randn(8, 1), batch_size=4)
    step = lambda m, b: (((m(b[0]) - b[1]) ** 2).mean(), {"n": 4, "loss": 1.0})    # noqa: E731
    first = {k: v.clone() for k, v in model.state_dict().items()}
    history = fit(model, torch.optim.SGD(model.parameters(), lr=0.0), step, loader, epochs=50, val_loader=loader,
                  select="val_loss", on_epoch_end=train.patience_stop(3), progress=False)
    assert len(history) == 4
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())


def test_single_unit_runs_do_not_overwrite_results():
    assert train.parse_args([]).out is None                                   # results/ (cli.run's default)
    assert train.parse_args(["--unit", "gru"]).out.parts[-2:] == ("gru", "jsb-gru")
    assert train.parse_args(["--unit", "gru", "--out", "x"]).out.name == "x"


def test_resume_reads_finished_units_back(jsb, tmp_path, capsys):
    assert train.main(["--quick", "--unit", "gru", "--out", str(tmp_path), "--no-progress"]) == 0
    before = json.loads((tmp_path / "metrics.json").read_text())
    assert train.main(["--quick", "--unit", "gru", "--out", str(tmp_path), "--no-progress", "--resume"]) == 0
    after = json.loads((tmp_path / "metrics.json").read_text())
    assert "finished earlier (2 epochs)" in capsys.readouterr().out
    assert len(json.loads((tmp_path / "jsb-gru" / "history.json").read_text())) == 2      # no third epoch
    assert after["units"]["gru"]["test_nll"] == before["units"]["gru"]["test_nll"]


def test_damaged_checkpoint_given_to_resume(jsb, tmp_path, capsys):
    """A truncated checkpoint.pt: one error line naming the file, exit status 2, the file left in place."""
    assert train.main(["--quick", "--unit", "gru", "--out", str(tmp_path), "--no-progress"]) == 0
    ckpt = tmp_path / "jsb-gru" / "checkpoint.pt"
    damaged = ckpt.read_bytes()[:300]
    ckpt.write_bytes(damaged)
    capsys.readouterr()
    assert train.main(["--quick", "--unit", "gru", "--out", str(tmp_path), "--no-progress", "--resume"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:") and str(ckpt) in errors[0]
    assert ckpt.read_bytes() == damaged

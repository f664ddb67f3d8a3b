import json

import pytest
import torch

from common.summary import count_parameters
from common.training import load_checkpoint
from RNN.elman import train
from RNN.elman.model import PAPER_SIZES, SRN
from RNN.elman.tasks import temporal_xor


def test_sizes_are_the_papers():
    assert PAPER_SIZES == {"xor": (1, 2, 1), "letters": (6, 20, 6)}
    assert count_parameters(SRN(1, 2, 1)) == 1 * 2 + 2 * 2 + 2 + 2 * 1 + 1     # 11 weights and biases
    assert count_parameters(SRN(6, 20, 6)) == 6 * 20 + 20 * 20 + 20 + 20 * 6 + 6


def test_context_is_the_previous_hidden_state():
    torch.manual_seed(0)
    model = SRN(1, 2, 1)
    x = torch.rand(7, 1)
    out, hidden = model(x)
    context = model.initial_context()
    assert torch.equal(context, torch.full((2,), 0.5))
    for t in range(7):
        y, hid = model.step(x[t:t + 1], context.unsqueeze(0))
        assert torch.allclose(hid[0], hidden[t]) and torch.allclose(y[0], out[t])
        context = hid[0]


def test_context_is_an_input_not_a_path_back_in_time():
    """Plain backpropagation: the error reaches the context weights, but not earlier inputs."""
    torch.manual_seed(0)
    model = SRN(1, 2, 1)
    x = torch.rand(5, 1, requires_grad=True)
    out, _ = model(x)
    out[-1].sum().backward()
    assert x.grad[:-1].abs().sum() == 0 and x.grad[-1].abs().sum() > 0
    assert model.context_to_hidden.weight.grad.abs().sum() > 0


def test_training_lowers_the_error():
    torch.manual_seed(0)
    model = SRN(1, 2, 1)
    stream = temporal_xor(60, torch.Generator().manual_seed(0)).unsqueeze(-1)
    first = train.run_pass(model, stream, 0.5)
    for _ in range(10):
        last = train.run_pass(model, stream, 0.5)
    assert last < first


def test_online_update_is_the_backpropagation_gradient():
    """run_pass's hand-written deltas equal autograd's gradient of 1/2 sum (y - target)^2, step by step."""
    torch.manual_seed(0)
    model, reference = SRN(3, 4, 3), SRN(3, 4, 3)
    reference.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(reference.parameters(), lr=0.3)
    stream = torch.rand(6, 3)
    train.run_pass(model, stream, 0.3)
    context = reference.initial_context()
    for t in range(len(stream) - 1):
        y, hidden = reference.step(stream[t:t + 1], context.unsqueeze(0))
        loss = 0.5 * ((y[0] - stream[t + 1]) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        context = hidden[0].detach()
    for k, v in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_xor_phase_rms_reads_the_predictable_bit():
    stream = temporal_xor(20, torch.Generator().manual_seed(0)).unsqueeze(-1)
    errors = torch.full((len(stream) - 1, 1), 0.25)
    phase = (torch.arange(len(errors)) + 1) % 3
    errors[phase == 2] = 0.0                                  # perfect on the XOR bits only
    assert train.xor_phase_rms(errors).tolist() == pytest.approx([0.5, 0.5, 0.0])


def test_letter_rms_separates_onsets():
    letters = "badiiguuu"
    errors = torch.zeros(len(letters) - 1, 6)
    errors[[1, 4]] = 1.0                                      # predicting d and g
    r = train.letter_rms(errors, letters)
    assert r["consonant_rms"] == 1.0 and r["vowel_rms"] == 0.0


def test_quick_run_end_to_end_and_repeatable(tmp_path):
    for name in ("a", "b"):
        assert train.main(["--quick", "--no-progress", "--out", str(tmp_path / name)]) == 0
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("a", "b"))
    assert [m["name"] for m in a["metrics"]] == ["xor_predictable_below_random", "letters_vowel_rms",
                                                 "letters_onset_above_vowel"]
    assert all(m["claim"] for m in a["metrics"])
    assert a["metrics"] == b["metrics"]
    xor = a["metrics"][0]
    assert xor["ours"] == xor["ci95"][0] < xor["mse_difference"] < xor["ci95"][1]
    assert a["details"]["rows"][0][:3] == ["XOR: the predictable bit", xor["predictable_bit_rms"], 0.3333]
    for task, fig in (("xor", "fig3_xor_error.png"), ("letters", "fig4-6_letter_error.png")):
        for name in ("model.pt", "history.json", "curves.png", fig):
            assert (tmp_path / "a" / task / name).exists()
    sa, sb = (load_checkpoint(tmp_path / n / "xor" / "model.pt") for n in ("a", "b"))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_gives_the_same_weights(tmp_path):
    common = ["--task", "xor", "--length", "20", "--no-progress"]
    assert train.main([*common, "--epochs", "40", "--out", str(tmp_path / "once")]) == 0
    assert train.main([*common, "--epochs", "20", "--out", str(tmp_path / "twice")]) == 0
    assert train.main([*common, "--epochs", "40", "--out", str(tmp_path / "twice"), "--resume"]) == 0
    a, b = (load_checkpoint(tmp_path / n / "xor" / "model.pt") for n in ("once", "twice"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    h1, h2 = (json.loads((tmp_path / n / "xor" / "history.json").read_text()) for n in ("once", "twice"))
    assert [h["train_mse"] for h in h1] == [h["train_mse"] for h in h2] and len(h1) == 40


def test_no_progress_prints_a_line_per_reporting_interval(tmp_path, capsys):
    assert train.main(["--task", "xor", "--length", "20", "--epochs", "60", "--no-progress",
                       "--out", str(tmp_path)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("xor pass")]
    assert [line.split()[2] for line in lines] == ["20/60", "40/60", "60/60"]


def test_damaged_checkpoint_given_to_resume(tmp_path, capsys):
    """A truncated checkpoint.pt: one error line naming the file, exit status 2, the file left in place."""
    assert train.main(["--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    ckpt = tmp_path / "xor" / "checkpoint.pt"
    damaged = ckpt.read_bytes()[:200]
    ckpt.write_bytes(damaged)
    capsys.readouterr()
    assert train.main(["--quick", "--no-progress", "--out", str(tmp_path), "--resume"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:") and str(ckpt) in errors[0]
    assert ckpt.read_bytes() == damaged


def test_xor_contrast_interval():
    """xor_contrast: the difference of mean squared errors (random bits minus the XOR bit) per triple, and a
    95% interval that covers 0 about 95% of the time when the three bits are predicted equally badly."""
    n = 3 * 4800
    phase = (torch.arange(n - 1) + 1) % 3                     # the phase of the predicted bit
    perfect_xor = torch.where(phase == 2, 0.0, 0.25).unsqueeze(1)
    c = train.xor_contrast(perfect_xor)
    assert c["triples"] == 4799 and c["mse_difference"] == pytest.approx(0.25) and c["ci95"] == pytest.approx(
        [0.25, 0.25])
    gen = torch.Generator().manual_seed(0)
    covered = 0
    for _ in range(400):
        null = torch.rand(n - 1, 1, generator=gen) ** 2       # the same error distribution at every phase
        lo, hi = train.xor_contrast(null)["ci95"]
        covered += lo <= 0 <= hi
    assert 0.92 <= covered / 400 <= 0.98
    shifted = torch.rand(n - 1, 1, generator=gen) ** 2 - 0.02 * (phase == 2).unsqueeze(1)
    assert train.xor_contrast(shifted)["ci95"][0] > 0         # a small real dip is detected on 4,800 triples


def test_bad_input_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        train.parse_args(["--task", "words"])
    with pytest.raises(ValueError, match="letter"):
        from RNN.elman.tasks import encode_letters
        encode_letters("baz")
    assert train.main(["--task", "xor", "--resume", "--out", str(tmp_path / "none"), "--no-progress"]) == 2
    assert train.parse_args(["--task", "xor"]).out.name == "elman-xor"      # results/ is the default run's
    assert train.parse_args([]).out is None


def test_xor_limit_quick_run(tmp_path):
    from RNN.elman.experiments import xor_limit
    assert xor_limit.main(["--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "xor_limit.json").read_text())
    assert report["ideal_observer_rms_by_window"]["2"] == pytest.approx(1 / 3, abs=1e-4)
    assert {r["gradient"] for r in report["srn_probes"]} == {"one step (Elman)", "full BPTT"}
    assert [(r["windows"], r["gradient"], r["hidden"]) for r in report["phase_aligned_probes"]] == [
        ("start of a triple", "full BPTT", 2)]
    assert {r["windows"] for r in report["srn_probes"]} == {"random phase"}
    assert all(0 <= r["xor_bit_rms"] <= 1 for r in report["srn_probes"])


def test_full_bptt_option_passes_error_back_in_time():
    torch.manual_seed(0)
    model = SRN(1, 2, 1, truncate=False)
    x = torch.rand(5, 1, requires_grad=True)
    out, _ = model(x)
    out[-1].sum().backward()
    assert x.grad[:-1].abs().sum() > 0

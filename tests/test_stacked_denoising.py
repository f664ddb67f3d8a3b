import json

import pytest
import torch
import torch.nn.functional as F

from AutoEncoders.stacked_denoising import train
from AutoEncoders.stacked_denoising.model import (DenoisingAutoencoder, StackedDenoisingAutoencoder, gaussian_noise,
                                                  masking_noise, salt_and_pepper)
from common.summary import count_parameters


def _x(n=64, d=784, seed=0):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) * 0.9 + 0.05   # no exact 0 or 1


@pytest.mark.parametrize("nu", [0.0, 0.1, 0.25, 0.5, 1.0])
def test_masking_zeroes_exactly_the_fraction_and_leaves_the_input_clean(nu):
    x = _x()
    clean = x.clone()
    x_tilde = masking_noise(x, nu, torch.Generator().manual_seed(1))
    assert torch.equal(x, clean)                                     # the target stays clean
    assert ((x_tilde == 0).sum(1) == round(nu * 784)).all()         # round(nu d) per example
    kept = x_tilde != 0
    assert torch.equal(x_tilde[kept], x[kept])
    # different components for different examples
    if 0 < nu < 1:
        assert not torch.equal(x_tilde[0] == 0, x_tilde[1] == 0)


def test_salt_and_pepper_sets_the_fraction_to_the_extremes_half_and_half():
    x = _x(n=200)
    x_tilde = salt_and_pepper(x, 0.25, torch.Generator().manual_seed(2))
    changed = x_tilde != x
    assert (changed.sum(1) == 196).all()
    assert set(x_tilde[changed].unique().tolist()) == {0.0, 1.0}
    assert (x_tilde[changed] == 1).float().mean().item() == pytest.approx(0.5, abs=0.02)


def test_gaussian_noise_has_the_asked_std():
    x = _x(n=500)
    noise = gaussian_noise(x, 0.3, torch.Generator().manual_seed(3)) - x
    assert noise.mean().item() == pytest.approx(0.0, abs=0.005) and noise.std().item() == pytest.approx(0.3, rel=0.01)


def test_bad_noise_levels_are_errors():
    with pytest.raises(ValueError, match="nu"):
        masking_noise(_x(), 1.5)
    with pytest.raises(ValueError, match="corruption"):
        DenoisingAutoencoder(4, 3, corruption="dropout")
    with pytest.raises(ValueError, match="noise levels"):
        StackedDenoisingAutoencoder((784, 10, 10), level=[0.1, 0.2, 0.3])


def test_tied_weights_share_storage():
    dae = DenoisingAutoencoder(784, 100)
    assert [n for n, _ in dae.named_parameters()] == ["W", "b", "b_prime"]
    assert count_parameters(dae) == 784 * 100 + 100 + 784
    y = torch.rand(3, 100)
    with torch.no_grad():
        dae.W[5, 7] += 1.0                                       # the decoder sees the encoder's change
    manual = torch.sigmoid(y @ dae.W + dae.b_prime)
    assert torch.allclose(dae.decode(y), manual)
    dae.zero_grad()
    dae.decode_logits(y).sum().backward()                        # the decoder's gradient lands on W
    assert dae.W.grad is not None and dae.W.grad.abs().sum() > 0


def test_loss_is_the_cross_entropy_of_the_clean_input_from_the_corrupted_one():
    torch.manual_seed(0)
    dae = DenoisingAutoencoder(20, 8, level=0.3)
    x = _x(n=5, d=20)
    g = torch.Generator().manual_seed(4)
    x_tilde = masking_noise(x, 0.3, torch.Generator().manual_seed(4))
    z = dae.decode(dae.encode(x_tilde))
    expected = -(x * z.log() + (1 - x) * (1 - z).log()).sum(1).mean()
    assert dae.loss(x, g).item() == pytest.approx(expected.item(), rel=1e-5)


def test_sda3_shapes_and_parameters():
    model = StackedDenoisingAutoencoder()
    out = model(torch.rand(4, 1, 28, 28))
    assert out.shape == (4, 10)
    assert model.features(torch.rand(4, 784), depth=1).shape == (4, 1000)
    # the classifier: 784-1000-1000-1000-10; the decoders' visible biases exist for pretraining only
    mlp = 784 * 1000 + 1000 + 2 * (1000 * 1000 + 1000) + 1000 * 10 + 10
    assert count_parameters(model) == mlp + 784 + 1000 + 1000


def test_a_small_dae_reconstruction_error_falls():
    torch.manual_seed(0)
    x = (torch.rand(256, 64) < 0.3).float()
    dae = DenoisingAutoencoder(64, 32, level=0.25)
    opt = torch.optim.SGD(dae.parameters(), lr=0.05)

    def clean_error():
        with torch.no_grad():
            return F.binary_cross_entropy(dae(x), x, reduction="sum").item() / len(x)

    before = clean_error()
    for _ in range(300):
        loss = dae.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert clean_error() < 0.8 * before


def test_quick_run_end_to_end_resume_and_evaluate(mnist_root, tmp_path):
    out = tmp_path / "run"
    args = ["--quick", "--data-dir", str(mnist_root), "--out", str(out), "--no-progress", "--hidden", "64", "32"]
    assert train.main(args) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["quick"] is True and [p["layer"] for p in record["pretraining"]] == [1, 2]
    assert (out / "pretrain-2" / "history.json").is_file() and (out / "model.pt").is_file()
    first = torch.load(out / "model.pt", weights_only=True)
    assert train.main(args + ["--resume"]) == 0                 # finished parts are read back, not retrained
    assert all(torch.equal(first[k], v) for k, v in torch.load(out / "model.pt", weights_only=True).items())
    assert train.main(args + ["--evaluate", str(out / "model.pt")]) == 0
    assert train.main(["--quick", "--data-dir", str(mnist_root), "--out", str(tmp_path / "mlp"), "--no-progress",
                       "--hidden", "64", "32", "--no-pretrain"]) == 0
    assert json.loads((tmp_path / "mlp" / "metrics.json").read_text())["pretraining"] == []


def test_evaluate_rejects_another_shape(mnist_root, tmp_path, capsys):
    path = tmp_path / "m.pt"
    torch.save(StackedDenoisingAutoencoder((784, 10, 10)).state_dict(), path)
    assert train.main(["--quick", "--data-dir", str(mnist_root), "--no-progress", "--evaluate", str(path)]) == 2
    assert "error:" in capsys.readouterr().err

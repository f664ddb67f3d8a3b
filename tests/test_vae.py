import json
import math

import pytest
import torch

from AutoEncoders.vae import train
from AutoEncoders.vae.model import VAE, gaussian_kl, log_normal, log_standard_normal
from common.training import load_checkpoint
from tests.conftest import one_error_line


def test_analytic_kl_matches_a_monte_carlo_estimate():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4) * 0.5
    z = VAE.reparameterize(mu, logvar, k=200_000)
    mc = (log_normal(z, mu, logvar) - log_standard_normal(z)).mean(0)       # E_q[log q - log p]
    assert torch.allclose(mc, gaussian_kl(mu, logvar), atol=0.02)
    assert torch.allclose(gaussian_kl(torch.zeros(2, 5), torch.zeros(2, 5)), torch.zeros(2))


def test_importance_sampled_bound_is_above_the_elbo():
    torch.manual_seed(0)
    model = VAE(x_dim=16, hidden=(8,), latent=3)
    x = torch.bernoulli(torch.full((40, 16), 0.3))
    with torch.no_grad():
        elbo = torch.stack([model(x) for _ in range(200)]).mean(0)          # E[ELBO] per example
    ll1 = model.log_likelihood(x, k=1).mean()
    ll = model.log_likelihood(x, k=2000, chunk=300).mean()
    assert ll >= elbo.mean() - 0.05                                         # log p(x) >= ELBO
    assert ll1 == pytest.approx(elbo.mean().item(), abs=1.0)                # k = 1 is the ELBO itself (noisy)
    assert ll > ll1


def test_reparameterised_gradients_reach_the_encoder_and_shapes():
    torch.manual_seed(0)
    model = VAE()
    x = torch.bernoulli(torch.rand(5, 1, 28, 28))
    elbo = model(x)
    assert elbo.shape == (5,) and (elbo < 0).all()
    (-elbo.mean()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (5, 50)
    s = model.sample(7, generator=torch.Generator().manual_seed(0))
    assert s.shape == (7, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    assert sum(p.numel() for p in model.parameters()) == (784 * 200 + 200) + (200 * 200 + 200) + (200 * 100 + 100) \
        + (50 * 200 + 200) + (200 * 200 + 200) + (200 * 784 + 784)


def test_initialisations_of_the_two_settings():
    torch.manual_seed(0)
    model = VAE()                                                             # Burda et al.: Glorot uniform
    first = model.encoder[0]
    assert first.weight.abs().max() <= math.sqrt(6 / (784 + 200)) and first.bias.abs().sum() == 0
    means = torch.rand(784) * 0.98 + 0.01
    means[0] = 0.0                                                            # a pixel that is always black
    model.init_output_bias(means)
    assert torch.allclose(torch.sigmoid(model.decoder[-1].bias[1:]), means[1:], atol=1e-5)
    assert torch.sigmoid(model.decoder[-1].bias[0]).item() == pytest.approx(1e-3)   # clipped, finite
    kingma = VAE(hidden=(500,), init="normal")                                # Kingma & Welling: N(0, 0.01)
    assert kingma.encoder[0].weight.std().item() == pytest.approx(0.01, rel=0.02)
    with pytest.raises(ValueError, match="init"):
        VAE(init="xavier")


def test_burdas_schedule():
    assert [train.stage_of(e) for e in (0, 1, 3, 4, 12, 13, 39, 40, 3279)] == [0, 1, 1, 2, 2, 3, 3, 4, 7]
    assert sum(1 for e in range(3280) if train.stage_of(e) == 7) == 3**7
    assert train.lr_factor(3279) == pytest.approx(10 ** -1)
    assert train.parse_args([]).epochs == 3280 and train.parse_args(["--stages", "6"]).epochs == 364


def test_dynamic_binarisation():
    x = torch.tensor([[[0, 255, 128]]], dtype=torch.uint8).expand(2000, 1, 3)
    b = train.binarize(x, torch.Generator().manual_seed(0))
    assert b.shape == (2000, 3) and set(b.unique().tolist()) <= {0.0, 1.0}
    assert b[:, 0].sum() == 0 and b[:, 1].sum() == 2000 and b[:, 2].mean().item() == pytest.approx(0.5, abs=0.05)


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(train, "QUICK_SUBSET", (400, 100))


def _run(root, out, *extra):
    return train.main(["--quick", "--data-dir", str(root), "--out", str(out), "--no-progress", *extra])


def test_quick_end_to_end_resume_and_evaluate(mnist_root, tmp_path, tiny, capsys):
    assert _run(mnist_root, tmp_path / "once") == 0
    record = json.loads((tmp_path / "once" / "metrics.json").read_text())
    assert record["metrics"][0]["name"] == "test_nll" and record["importance_samples"] == 50
    history = json.loads((tmp_path / "once" / "history.json").read_text())
    assert len(history) == 2 and history[1]["train_loss"] < history[0]["train_loss"] and "test_loss" in history[0]
    assert record["test_nll"] <= record["test_negative_elbo"] + 1.0          # the k-sample bound is tighter
    assert _run(mnist_root, tmp_path / "twice", "--epochs", "1") == 0
    assert _run(mnist_root, tmp_path / "twice", "--epochs", "2", "--resume") == 0
    a, b = (load_checkpoint(tmp_path / d / "model.pt") for d in ("once", "twice"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    capsys.readouterr()
    assert _run(mnist_root, tmp_path / "e", "--evaluate", str(tmp_path / "once" / "model.pt")) == 0
    assert "test log-likelihood" in capsys.readouterr().out
    bad = tmp_path / "other.pt"
    torch.save(VAE(latent=2).state_dict(), bad)
    assert _run(mnist_root, tmp_path / "e", "--evaluate", str(bad)) == 2
    assert str(bad) in one_error_line(capsys)
    assert math.isfinite(record["test_nll_stderr"])

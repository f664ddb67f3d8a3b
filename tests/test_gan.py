import json
import math

import pytest
import torch

from common.fileio import UserError
from common.training import load_checkpoint
from GANs.gan import train
from GANs.gan.model import (Discriminator, Generator, Maxout, discriminator_loss, generator_loss,
                            generator_loss_saturating)
from GANs.gan.parzen import SIGMA_GRID, choose_sigma, parzen_log_likelihood


def test_parzen_equals_a_direct_computation_and_a_gaussian_density():
    torch.manual_seed(0)
    x, s, sigma = torch.rand(7, 5), torch.rand(11, 5), 0.3
    direct = torch.stack([torch.log(torch.stack([
        torch.exp(-((xi - sj) ** 2).sum() / (2 * sigma**2)) / (2 * math.pi * sigma**2) ** 2.5 for sj in s]).mean())
        for xi in x.double()])
    assert torch.allclose(parzen_log_likelihood(x, s, sigma, batch=3).double(), direct, atol=1e-5)
    # one sample: the log-density of N(mu, sigma^2 I)
    mu = torch.randn(1, 4)
    normal = torch.distributions.Normal(mu[0], 0.5)
    z = torch.randn(6, 4)
    assert torch.allclose(parzen_log_likelihood(z, mu, 0.5), normal.log_prob(z).sum(1), atol=1e-5)
    # far points do not underflow to -inf (log-sum-exp)
    assert torch.isfinite(parzen_log_likelihood(torch.full((1, 784), 50.0), torch.zeros(3, 784), 0.1)).all()
    sigma, scores = choose_sigma(torch.randn(200, 2) * 0.3, torch.randn(2000, 2) * 0.3)
    assert len(scores) == 10 and sigma in SIGMA_GRID and SIGMA_GRID[0] == pytest.approx(0.1)


def test_shapes_ranges_and_losses():
    g, d = Generator(), Discriminator()
    assert Maxout(784, 240, 5)(torch.rand(3, 784)).shape == (3, 240)
    z = g.noise(64, torch.Generator().manual_seed(0))
    assert z.shape == (64, 100) and z.abs().max() <= math.sqrt(3)
    x = g.sample(8, torch.Generator().manual_seed(0))
    assert x.shape == (8, 1, 28, 28) and x.min() >= 0 and x.max() <= 1
    assert d(x).shape == (8,)
    g.init_output_bias(torch.full((784,), 0.25))                  # z = 0: zero hidden units, the output is the bias
    assert torch.allclose(g.images(torch.zeros(1, 100)), torch.full((1, 1, 28, 28), 0.25), atol=1e-6)
    logits = torch.tensor([0.0])
    assert discriminator_loss(logits, logits).item() == pytest.approx(math.log(2))
    assert generator_loss(torch.tensor([10.0])).item() < 1e-4                      # D fooled: no loss
    assert generator_loss_saturating(torch.tensor([-10.0])).item() == pytest.approx(-4.5e-5, abs=1e-5)


def test_the_two_noises_of_the_authors_generator():
    """uniform on [-sqrt 3, sqrt 3] (the published yaml) and N(0, I) (the Generator's default): both zero mean,
    unit variance; the same seed gives the same draws; anything else is refused."""
    uniform, gaussian = Generator(), Generator(noise="gaussian")
    assert uniform.noise_kind == "uniform" and "noise=gaussian" in repr(gaussian)
    for g in (uniform, gaussian):
        z = g.noise(20_000, torch.Generator().manual_seed(0))
        assert z.shape == (20_000, 100)
        assert abs(z.mean().item()) < 0.01 and z.var().item() == pytest.approx(1.0, abs=0.01)
        assert torch.equal(z, g.noise(20_000, torch.Generator().manual_seed(0)))
    zu, zg = (g.noise(20_000, torch.Generator().manual_seed(0)) for g in (uniform, gaussian))
    assert zu.abs().max() <= math.sqrt(3) < zg.abs().max()                       # the Gaussian is unbounded
    assert abs((zg.pow(4).mean() - 3).item()) < 0.05 and abs((zu.pow(4).mean() - 1.8).item()) < 0.05   # kurtosis
    assert gaussian.sample(4, torch.Generator().manual_seed(0)).shape == (4, 1, 28, 28)
    with pytest.raises(ValueError, match="noise"):
        Generator(noise="normal")


def test_sigma_grid_and_noise_options(tmp_path):
    assert train.sigma_grid(*train.AUTHORS_SIGMA_GRID) == SIGMA_GRID                # parzen_ll.py's default grid
    fine = train.sigma_grid(0.13, 0.28, 31)
    assert len(fine) == 31 and fine[0] == pytest.approx(0.13) and fine[-1] == pytest.approx(0.28)
    assert all(b / a == pytest.approx(fine[1] / fine[0]) for a, b in zip(fine, fine[1:]))   # log-spaced
    args = train.parse_args([])
    assert args.sigma_grid == [0.1, 1.0, 10] and args.noise is None
    args = train.parse_args(["--sigma-grid", "0.13", "0.28", "31", "--noise", "gaussian"])
    assert args.sigma_grid == [0.13, 0.28, 31] and args.noise == "gaussian"
    for bad in (["0.3", "0.1", "5"], ["0.1", "1", "2.5"], ["0", "1", "5"]):
        with pytest.raises(SystemExit):
            train.parse_args(["--sigma-grid", *bad])
    # the noise of a saved generator: its metrics' model.kwargs; runs from before the option were uniform
    assert train.recorded_noise(train.PAPER_DIR / "results" / "generator.pt") == "uniform"
    assert train.recorded_noise(tmp_path / "generator.pt") is None
    (tmp_path / "metrics.json").write_text(json.dumps(
        {"model": {"class": "Generator", "kwargs": {"noise": "gaussian"}, "weights": "generator.pt"}}))
    assert train.recorded_noise(tmp_path / "generator.pt") == "gaussian"
    assert train.resolve_noise(None, "gaussian", "x") == "gaussian"
    assert train.resolve_noise(None, None, "x") == "uniform"
    assert train.resolve_noise("gaussian", None, "x") == "gaussian"
    with pytest.raises(UserError, match="--noise gaussian"):
        train.resolve_noise("uniform", "gaussian", "x")


def test_each_players_step_lowers_its_own_loss():
    torch.manual_seed(0)
    pair = train.Pair()
    pair.D.eval()                                      # no dropout: the same function before and after
    for w in pair.D.parameters():                      # a discriminator that already tells something apart
        torch.nn.init.uniform_(w, -0.1, 0.1)
    x = torch.rand(100, 784) * 0.3
    z = pair.G.noise(100)
    d_opt = torch.optim.SGD(pair.D.parameters(), lr=0.01)
    g_opt = torch.optim.SGD(pair.G.parameters(), lr=0.01)

    def d_loss():
        return discriminator_loss(pair.D(x), pair.D(pair.G.images(z).detach()))

    def g_loss():
        return generator_loss(pair.D(pair.G.images(z)))

    before = d_loss().item()
    d_opt.zero_grad()
    d_loss().backward()
    d_opt.step()
    assert d_loss().item() < before
    before = g_loss().item()
    g_opt.zero_grad()
    g_loss().backward()
    g_opt.step()
    assert g_loss().item() < before


def test_the_simultaneous_update_uses_each_players_own_gradient():
    torch.manual_seed(0)
    pair = train.Pair()
    adv = train.AdversarialStep()
    opt = torch.optim.SGD(pair.parameters(), lr=0.1)
    x = torch.rand(10, 784)
    torch.manual_seed(1)
    adv.step(pair, (x,))
    d_params, g_params = list(pair.D.parameters()), list(pair.G.parameters())
    want_d = torch.autograd.grad(adv.d_obj, d_params, retain_graph=True)
    want_g = torch.autograd.grad(adv.g_obj, g_params, retain_graph=True)
    both_d = torch.autograd.grad(adv.d_obj + adv.g_obj, d_params)
    torch.manual_seed(1)                                          # the same noise and dropout masks again
    adv.update(lambda: adv.step(pair, (x,))[0], pair, opt)
    assert all(torch.allclose(p.grad, w) for p, w in zip(d_params, want_d))     # D: its own objective only
    assert all(torch.allclose(p.grad, w) for p, w in zip(g_params, want_g))     # G: the non-saturating one
    assert not all(torch.allclose(p.grad, w) for p, w in zip(d_params, both_d))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 / train.LR_DECAY)     # divided after every update


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(train, "QUICK", {"train": 300, "valid": 200, "test": 100, "samples": 200, "epochs": 3})


def _run(root, out, *extra):
    return train.main(["--quick", "--data-dir", str(root), "--out", str(out), "--no-progress", *extra])


def test_quick_end_to_end_resume_to_more_epochs_and_evaluate(mnist_root, tmp_path, tiny, capsys):
    """A finished 1-epoch run continued with --epochs 3 --resume ends with the weights, optimiser state (the
    per-update learning-rate decay, the momentum) and history of an uninterrupted 3-epoch run."""
    assert _run(mnist_root, tmp_path / "once") == 0                       # --quick: 3 epochs here
    record = json.loads((tmp_path / "once" / "metrics.json").read_text())
    assert record["metrics"][0]["name"] == "parzen_ll" and record["parzen_sigma"] in SIGMA_GRID
    assert (tmp_path / "once" / "samples.png").exists() and record["model"]["class"] == "Generator"
    assert record["model"]["kwargs"] == {"noise": "uniform"} and record["sigma_grid"] == [0.1, 1.0, 10]
    history = json.loads((tmp_path / "once" / "history.json").read_text())
    assert len(history) == 3 and history[1]["lr"] < 0.1 and "val_parzen_ll" in history[0]
    assert _run(mnist_root, tmp_path / "twice", "--epochs", "1") == 0
    assert _run(mnist_root, tmp_path / "twice", "--epochs", "3", "--resume") == 0
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("once", "twice"))
    assert a["epoch"] == b["epoch"] == 3 and all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    (ga,), (gb,) = (c["optimizer"]["param_groups"] for c in (a, b))
    assert ga["lr"] == gb["lr"] == pytest.approx(0.1 / train.LR_DECAY ** 9)    # 3 epochs x 3 batches of 100
    assert ga["momentum"] == gb["momentum"] and all(
        torch.equal(a["optimizer"]["state"][i]["momentum_buffer"], b["optimizer"]["state"][i]["momentum_buffer"])
        for i in a["optimizer"]["state"])
    strip = ("train_time_s", "epoch_time_s")
    assert ([{k: v for k, v in h.items() if k not in strip} for h in json.loads(b["history"])]
            == [{k: v for k, v in h.items() if k not in strip} for h in history])
    capsys.readouterr()
    assert _run(mnist_root, tmp_path / "e", "--evaluate", str(tmp_path / "once" / "generator.pt")) == 0
    assert f"test Parzen log-likelihood {record['parzen_ll']:.1f}" in capsys.readouterr().out


def test_gaussian_noise_is_recorded_and_read_back(mnist_root, tmp_path, tiny, capsys):
    """--noise gaussian goes into the checkpoint and metrics.json; --resume and --evaluate take it from there, and
    a different --noise is refused rather than silently mixed."""
    out = tmp_path / "gauss"
    assert _run(mnist_root, out, "--noise", "gaussian", "--epochs", "1") == 0
    assert load_checkpoint(out / "checkpoint.pt")["hook"] == {"noise": "gaussian"}
    assert _run(mnist_root, out, "--noise", "uniform", "--epochs", "2", "--resume") == 2
    assert "trained with gaussian noise" in capsys.readouterr().err
    assert _run(mnist_root, out, "--epochs", "2", "--resume") == 0             # no --noise: the checkpoint's
    record = json.loads((out / "metrics.json").read_text())
    assert record["model"]["kwargs"] == {"noise": "gaussian"} and record["hyperparameters"]["noise"] == "gaussian"
    assert train.load_generator(out / "generator.pt").noise_kind == "gaussian"
    capsys.readouterr()
    assert _run(mnist_root, tmp_path / "e", "--evaluate", str(out / "generator.pt")) == 0
    printed = capsys.readouterr().out
    assert f"test Parzen log-likelihood {record['parzen_ll']:.1f}" in printed and "gaussian noise" in printed
    with pytest.raises(UserError, match="trained with gaussian noise"):
        train.load_generator(out / "generator.pt", noise="uniform")
    # a finer grid, chosen on validation: every width of it tried, the chosen one among them
    assert _run(mnist_root, tmp_path / "e", "--evaluate", str(out / "generator.pt"), "--sigma-grid", "0.2", "0.4",
                "7") == 0
    assert "of 7 from 0.2 to 0.4" in capsys.readouterr().out

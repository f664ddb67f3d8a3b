"""Deep autoencoder (Hinton & Salakhutdinov 2006): the RBM, the unrolled net, the metric, PCA, train.py."""

import json

import pytest
import torch

from AutoEncoders.deep_autoencoder import train
from AutoEncoders.deep_autoencoder.model import (MNIST_LAYERS, PCA, RBM, DeepAutoencoder, layer_table, rbm_stack,
                                                 squared_error_per_image)
from tests.conftest import require_mirror


def test_shapes_and_parameter_count():
    net = DeepAutoencoder()
    x = torch.rand(5, 1, 28, 28)
    assert net.encode(x).shape == (5, 30)
    assert net(x).shape == (5, 784)
    r = net.reconstruct(x)
    assert r.min() >= 0 and r.max() <= 1
    # weights 2 x (784*1000 + 1000*500 + 500*250 + 250*30) = 2,833,000, plus 1,780 + 2,534 biases
    assert sum(p.numel() for p in net.parameters()) == 2_837_314
    assert sum(n for _, _, n in layer_table(net)) == 2_837_314


def test_code_layer_is_linear_and_others_logistic():
    stack = rbm_stack()
    assert [r.hidden for r in stack] == ["logistic"] * 3 + ["linear"]
    assert [tuple(r.w.shape) for r in stack] == list(zip(MNIST_LAYERS[:-1], MNIST_LAYERS[1:]))
    with pytest.raises(ValueError, match="hidden"):
        RBM(4, 3, hidden="relu")


def test_unrolled_net_uses_the_rbm_weights_and_their_transposes():
    g = torch.Generator().manual_seed(0)
    stack = rbm_stack((12, 8, 6, 3), generator=g)
    for r in stack:
        torch.nn.init.normal_(r.b_vis), torch.nn.init.normal_(r.b_hid)
    net = DeepAutoencoder.from_rbms(stack)
    v = torch.rand(4, 12)
    h = v
    for r in stack:
        h = r.hidden_mean(h)
    torch.testing.assert_close(net.encode(v), h)  # encoder = the RBMs' upward pass
    down = h
    for r in reversed(list(stack)):
        down = r.visible_prob(down)
    torch.testing.assert_close(net.reconstruct(v), down)  # decoder = the RBMs' downward pass


def test_one_cd1_step_lowers_the_reconstruction_error_of_a_tiny_rbm():
    g = torch.Generator().manual_seed(0)
    patterns = (torch.rand(4, 16, generator=g) > 0.5).float()
    v = patterns.repeat(25, 1)
    rbm = RBM(16, 8, generator=g)

    def recon_error():
        return squared_error_per_image(v, rbm.visible_prob(rbm.hidden_mean(v))).mean().item()

    before = recon_error()
    grads, _ = rbm.cd1(v, generator=g)
    with torch.no_grad():
        for name in ("w", "b_vis", "b_hid"):
            getattr(rbm, name).add_(grads[name], alpha=0.1)
    assert recon_error() < before
    for _ in range(200):
        grads, _ = rbm.cd1(v, generator=g)
        with torch.no_grad():
            for name in ("w", "b_vis", "b_hid"):
                getattr(rbm, name).add_(grads[name], alpha=0.1)
    assert recon_error() < 0.5 * before


def test_squared_error_per_image_by_hand():
    x = torch.tensor([[0.0, 1.0, 0.5, 0.25], [1.0, 1.0, 1.0, 1.0]])
    r = torch.tensor([[0.5, 1.0, 0.0, 0.25], [0.0, 1.0, 1.0, 0.5]])
    # image 1: 0.25 + 0 + 0.25 + 0 = 0.5; image 2: 1 + 0 + 0 + 0.25 = 1.25
    torch.testing.assert_close(squared_error_per_image(x, r), torch.tensor([0.5, 1.25]))


def test_pca_on_a_tiny_case():
    # points on a line through (1, 1, 1) along (1, -1, 0)/sqrt2, plus a small 3rd-axis wobble
    t = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0])
    wobble = torch.tensor([0.1, -0.2, 0.0, 0.2, -0.1])  # mean 0, orthogonal to t
    x = torch.stack([1 + t, 1 - t, 1 + wobble], 1)
    pca = PCA(x, 1)
    torch.testing.assert_close(pca.components[:, 0].abs(), torch.tensor([2 ** -0.5, 2 ** -0.5, 0], dtype=torch.float64))
    # one component keeps the line, loses exactly the wobble: error per point = wobble^2
    torch.testing.assert_close(squared_error_per_image(x, pca.reconstruct(x)), wobble ** 2)
    torch.testing.assert_close(PCA(x, 3).reconstruct(x), x)
    with pytest.raises(ValueError, match="n_components"):
        PCA(x, 4)


def test_bad_layers_are_refused():
    with pytest.raises(SystemExit):
        train.parse_args(["--layers", "100", "30"])


def test_quick_run_end_to_end_and_pretraining_resumes_exactly(tmp_path, mnist_root, monkeypatch):
    require_mirror()
    common = ["--quick", "--data-dir", str(mnist_root), "--no-progress", "--pretrain-epochs", "2"]
    assert train.main(common + ["--out", str(tmp_path / "a")]) == 0
    rec = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert rec["quick"] and rec["pretrained"]
    assert [m["name"] for m in rec["metrics"]] == ["test_sq_err", "pca30_test_sq_err"]
    for f in ("model.pt", "curves.png", "pretrain_curves.png", "history.json", "pretrain_history.json"):
        assert (tmp_path / "a" / f).exists(), f
    hist = json.loads((tmp_path / "a" / "pretrain_history.json").read_text())
    assert len(hist) == 2 * 4 and all(h["recon_sq_err"] > 0 for h in hist)
    assert hist[1]["recon_sq_err"] < hist[0]["recon_sq_err"]  # the first RBM learns

    # a run killed right after its third pretraining checkpoint (RBM 2, pass 1), then resumed,
    # ends with the same weights as the uninterrupted run (a)
    b = ["--out", str(tmp_path / "b")]
    saved = []

    def save_then_die(obj, path):
        real_save(obj, path)
        saved.append(path)
        if len(saved) == 3:
            raise KeyboardInterrupt

    real_save = train.atomic_save
    monkeypatch.setattr(train, "atomic_save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train.main(common + b)
    monkeypatch.setattr(train, "atomic_save", real_save)
    assert not (tmp_path / "b" / "checkpoint.pt").exists()
    assert train.main(common + b + ["--resume"]) == 0
    a_w = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b_w = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    for k in a_w:
        torch.testing.assert_close(a_w[k], b_w[k], rtol=0, atol=0)


def test_no_pretrain_and_resume_without_checkpoint(tmp_path, mnist_root, capsys):
    require_mirror()
    args = ["--quick", "--data-dir", str(mnist_root), "--no-progress", "--out", str(tmp_path)]
    assert train.main(args + ["--resume"]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    assert train.main(args + ["--no-pretrain", "--layers", "784", "64", "2"]) == 0
    rec = json.loads((tmp_path / "metrics.json").read_text())
    assert not rec["pretrained"] and rec["model"]["kwargs"]["layers"] == [784, 64, 2]
    assert train.main(args + ["--layers", "784", "64", "2", "--evaluate", str(tmp_path / "model.pt")]) == 0

"""Deep autoencoder (Hinton & Salakhutdinov 2006): the RBM, the unrolled net, the metric, PCA, train.py."""

import json
import re
from pathlib import Path

import pytest
import torch

from AutoEncoders.deep_autoencoder import train
from AutoEncoders.deep_autoencoder.model import (MNIST_LAYERS, PCA, RBM, DeepAutoencoder, rbm_stack,
                                                 squared_error_per_image, unrolled_layers)
from common.summary import layer_table
from tests.conftest import require_mirror
from tests.conftest import Payload, one_error_line

RESULTS = Path(train.__file__).parent / "results"


def test_shapes_and_parameter_count():
    net = DeepAutoencoder()
    x = torch.rand(5, 1, 28, 28)
    assert net.encode(x).shape == (5, 30)
    assert net(x).shape == (5, 784)
    r = net.reconstruct(x)
    assert r.min() >= 0 and r.max() <= 1
    # weights 2 x (784*1000 + 1000*500 + 500*250 + 250*30) = 2,833,000, plus 1,780 + 2,534 biases
    assert sum(p.numel() for p in net.parameters()) == 2_837_314
    chain = unrolled_layers(net)
    torch.testing.assert_close(chain(x.flatten(1)), net(x))  # the table's view is the same function
    rows = layer_table(chain, torch.zeros(1, 784))
    assert [(name, shape) for name, shape, _, _ in rows] == [
        ("encoder1", (1000,)), ("encoder2", (500,)), ("encoder3", (250,)), ("code", (30,)),
        ("decoder3", (250,)), ("decoder2", (500,)), ("decoder1", (1000,)), ("output", (784,))]
    assert [n for _, _, n, _ in rows] == [785_000, 500_500, 125_250, 7_530, 7_750, 125_500, 501_000, 784_784]
    assert train.layer_summary(net).splitlines()[-1].split() == ["total", "2,837,314"]


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


def test_quick_run_end_to_end_and_pretraining_resumes_exactly(tmp_path, mnist_root, monkeypatch, capsys):
    require_mirror()
    common = ["--quick", "--data-dir", str(mnist_root), "--no-progress", "--pretrain-epochs", "2"]
    assert train.main(common + ["--out", str(tmp_path / "a")]) == 0
    # --no-progress: a line per RBM pass and per fine-tuning epoch
    out = capsys.readouterr().out
    assert re.findall(r"^RBM (\d)/4 \S+ pass (\d)/2  recon_sq_err", out, re.M) == [
        (str(k), str(e)) for k in range(1, 5) for e in (1, 2)]
    assert len(re.findall(r"^fine-tune epoch \d/2 ", out, re.M)) == 2
    rec = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert rec["quick"] and rec["pretrained"] and rec["model"]["weights"] == "model.pt"
    assert [m["name"] for m in rec["metrics"]] == ["test_sq_err", "pca30_test_sq_err"]
    assert all(m["claim"] for m in rec["metrics"])
    for f in ("model.pt", "curves.png", "history.json", "pretrain/curves.png", "pretrain/history.json"):
        assert (tmp_path / "a" / f).exists(), f
    hist = json.loads((tmp_path / "a" / "pretrain" / "history.json").read_text())
    assert len(hist) == 2 * 4 and all(h["recon_sq_err"] > 0 for h in hist)
    assert hist[1]["recon_sq_err"] < hist[0]["recon_sq_err"]  # the first RBM learns
    fine = json.loads((tmp_path / "a" / "history.json").read_text())
    assert rec["training_time_s"] == pytest.approx(sum(h["time_s"] for h in hist)
                                                   + sum(h["epoch_time_s"] for h in fine), abs=0.1)

    # a run killed right after its third pretraining checkpoint (RBM 2, pass 1), then resumed,
    # ends with the same weights as the uninterrupted run (a)
    b = ["--out", str(tmp_path / "b")]
    saved = []

    def save_then_die(path, *args, **kwargs):
        real_save(path, *args, **kwargs)
        saved.append(path)
        if len(saved) == 3:
            raise KeyboardInterrupt

    real_save = train.save_checkpoint
    monkeypatch.setattr(train, "save_checkpoint", save_then_die)
    assert train.main(common + b) == 130
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    assert not (tmp_path / "b" / "checkpoint.pt").exists() and (tmp_path / "b" / "pretrain" / "checkpoint.pt").exists()
    capsys.readouterr()
    assert train.main(common + b + ["--resume"]) == 0
    assert "pretraining: resumed from" in capsys.readouterr().out
    a_w = torch.load(tmp_path / "a" / "model.pt", weights_only=True)
    b_w = torch.load(tmp_path / "b" / "model.pt", weights_only=True)
    for k in a_w:
        torch.testing.assert_close(a_w[k], b_w[k], rtol=0, atol=0)

    # --evaluate (on the same 500 quick test images) gives the recorded number, from model.pt or checkpoint.pt
    for f in ("model.pt", "checkpoint.pt"):
        assert train.main(["--quick", "--data-dir", str(mnist_root), "--evaluate", str(tmp_path / "a" / f)]) == 0
        assert f"test squared error per image {rec['test_sq_err']:.4f} on 500 images" in capsys.readouterr().out

    # a damaged pretraining checkpoint given to --resume: one error line, the file kept as it was
    ckpt = tmp_path / "b" / "pretrain" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    before = ckpt.read_bytes()
    assert train.main(common + b + ["--resume"]) == 2
    line = one_error_line(capsys)
    assert str(ckpt) in line and "damaged" in line and "without --resume" in line
    assert ckpt.read_bytes() == before


def test_no_pretrain_and_resume_without_checkpoint(tmp_path, mnist_root, capsys):
    require_mirror()
    args = ["--quick", "--data-dir", str(mnist_root), "--no-progress", "--out", str(tmp_path)]
    assert train.main(args + ["--resume"]) == 2
    assert "nothing to resume" in one_error_line(capsys)
    assert train.main(args + ["--no-pretrain", "--layers", "784", "64", "2"]) == 0
    rec = json.loads((tmp_path / "metrics.json").read_text())
    assert not rec["pretrained"] and rec["model"]["kwargs"]["layers"] == [784, 64, 2]
    assert not (tmp_path / "pretrain").exists()
    assert train.main(args + ["--layers", "784", "64", "2", "--evaluate", str(tmp_path / "model.pt")]) == 0
    # the same file for the paper's net: a clear error, not a traceback
    capsys.readouterr()
    assert train.main(args + ["--evaluate", str(tmp_path / "model.pt")]) == 2
    line = one_error_line(capsys)
    assert "does not hold the weights of this DeepAutoencoder (" in line and "--layers 784 1000" in line


def _bad_file(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    if kind == "code":
        torch.save({"m": Payload()}, path)
    elif kind == "truncated":
        torch.save(DeepAutoencoder((784, 8, 2)).state_dict(), path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path  # "missing": never written


@pytest.mark.parametrize("kind, says", [("code", "not a plain weights file"), ("truncated", "damaged"),
                                        ("missing", "no such file")])
def test_evaluate_a_bad_file_is_one_clear_error(kind, says, tmp_path, capsys):
    path = _bad_file(kind, tmp_path)
    before = path.read_bytes() if path.exists() else None
    assert train.main(["--layers", "784", "8", "2", "--evaluate", str(path)]) == 2  # before any data are read
    line = one_error_line(capsys)
    assert str(path) in line and says in line and "state_dict" in line
    assert (path.read_bytes() if path.exists() else None) == before


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_clear_error(tmp_path, capsys):
    assert train.main(["--quick", "--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    assert "--device cuda" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()

import json

import pytest
import torch
import torch.nn.functional as F
import torchvision

from CNN.resnet import train
from CNN.resnet.model import TABLE1, TABLE6, CifarResNet, ImageNetResNet, ZeroPadShortcut, multiply_adds
from common.summary import count_parameters
from common.training import load_checkpoint
from tests.conftest import Payload, one_error_line


@pytest.mark.parametrize("depth", sorted(TABLE6))
def test_parameters_match_table_6(depth):
    ours = count_parameters(CifarResNet.from_depth(depth))
    printed = TABLE6[depth][0]                                   # 0.27M ... 1.7M, two significant figures
    assert round(ours, -4 if ours < 1e6 else -5) == printed, ours
    assert ours == {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}[depth]


def test_option_a_adds_no_parameters_and_b_adds_projections():
    a, plain = CifarResNet(3), CifarResNet(3, plain=True)
    assert count_parameters(a) == count_parameters(plain)
    # B: a 1x1 projection (+ BN) at the two places the width doubles: 16*32 + 64 and 32*64 + 128
    assert count_parameters(CifarResNet(3, shortcut="B")) - count_parameters(a) == 16 * 32 + 64 + 32 * 64 + 128
    assert not any(isinstance(m, ZeroPadShortcut) for m in plain.modules())
    assert sum(isinstance(m, ZeroPadShortcut) for m in a.modules()) == 2


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    x = torch.randn(2, 16, 8, 8)
    y = ZeroPadShortcut(16, 32, 2)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()


def test_cifar_shapes_and_the_6n_plus_2_layers():
    model = CifarResNet(2)
    assert model.depth == 14
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) + 1 == 14                                  # + the fully connected layer
    assert [c.out_channels for c in convs] == [16] * 5 + [32] * 4 + [64] * 4
    h = model.features(torch.rand(3, 3, 32, 32))
    assert h.shape == (3, 64, 8, 8) and model(torch.rand(3, 3, 32, 32)).shape == (3, 10)
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet.from_depth(21)
    with pytest.raises(ValueError, match="N x 3 x 32 x 32"):
        model(torch.rand(3, 1, 28, 28))


@pytest.mark.parametrize("depth", sorted(TABLE1))
def test_imagenet_resnets_match_torchvision_and_table_1_flops(depth):
    ours = ImageNetResNet(depth)
    theirs = getattr(torchvision.models, f"resnet{depth}")()
    assert count_parameters(ours) == count_parameters(theirs)
    flops = multiply_adds(ours, torch.zeros(1, 3, 224, 224))
    # printed with two or three significant figures (1.8 ... 11.3): ours 1.81, 3.66, 3.86, 7.57, 11.28
    assert flops == pytest.approx(TABLE1[depth][2], rel=0.02), flops


def test_the_mean_image_is_subtracted_inside_the_model():
    model = CifarResNet(1).eval()
    x = torch.rand(2, 3, 32, 32)
    model.mean.fill_(0.25)
    shifted = model(x + 0.25)
    model.mean.zero_()
    assert torch.allclose(shifted, model(x), atol=1e-5)
    assert "mean" in model.state_dict()                          # the shipped weights carry it


def test_one_sgd_step_lowers_the_loss():
    torch.manual_seed(0)
    model = CifarResNet(1)
    x, y = torch.rand(32, 3, 32, 32), torch.randint(0, 10, (32,))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(3):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.train()
    assert F.cross_entropy(model(x), y).item() < losses[0]


def test_help_and_bad_depth(capsys):
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--help"])
    assert e.value.code == 0 and "--shortcut" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--depth", "21"])
    assert e.value.code == 2 and "6n+2" in capsys.readouterr().err
    assert train.parse_args(["--depth", "56", "--plain"]).out == train.PAPER_DIR / "results" / "plain56"
    assert train.parse_args([]).out is None                       # ResNet-20: results/


@pytest.fixture
def tiny(monkeypatch):
    """--quick on fewer images (two batches of 128 per epoch), to keep the tests short."""
    monkeypatch.setattr(train, "QUICK_SUBSET", (256, 0, 128))


def _run(cifar_root, out, *extra):
    return train.main(["--quick", "--depth", "8", "--data-dir", str(cifar_root), "--out", str(out), "--no-progress",
                       *extra])


def test_quick_end_to_end_and_evaluate(cifar_root, tmp_path, tiny, capsys):
    out = tmp_path / "quick"
    assert _run(cifar_root, out, "--epochs", "2") == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["quick"] and record["model"]["kwargs"] == {"n": 1, "shortcut": "A", "plain": False}
    assert record["metrics"] == []                               # ResNet-8 is not in Table 6
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 2 and all("test_error_pct" in h for h in history)
    assert (out / "curves.png").exists() and (out / "fig6.png").exists()
    assert [h["lr"] for h in history] == pytest.approx([0.1, 0.01])           # divided after half of the epochs
    weights = load_checkpoint(out / "model.pt")
    assert weights["mean"].abs().sum() > 0                        # the training images' mean travels along
    capsys.readouterr()
    assert _run(cifar_root, out, "--evaluate", str(out / "model.pt")) == 0
    assert f"test error {record['test_error_pct']:.2f}%" in capsys.readouterr().out


def test_resumed_run_equals_uninterrupted_run(cifar_root, tmp_path, tiny, monkeypatch):
    argv = ["--epochs", "3"]
    assert _run(cifar_root, tmp_path / "once", *argv) == 0
    calls = []
    real = train.TestCurve.__call__

    def interrupt_in_epoch_2(self, history):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, history)

    monkeypatch.setattr(train.TestCurve, "__call__", interrupt_in_epoch_2)
    assert _run(cifar_root, tmp_path / "twice", *argv) == 130     # Ctrl-C in epoch 2: epoch 1's checkpoint stays
    monkeypatch.setattr(train.TestCurve, "__call__", real)
    assert _run(cifar_root, tmp_path / "twice", *argv, "--resume") == 0
    a, b = (load_checkpoint(tmp_path / d / "model.pt") for d in ("once", "twice"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("once", "twice"))
    assert [h["train_loss"] for h in ha] == [h["train_loss"] for h in hb]
    assert [h["test_error_pct"] for h in ha] == [h["test_error_pct"] for h in hb]


def test_bad_weights_are_one_error_line(cifar_root, tmp_path, tiny, capsys):
    code = tmp_path / "code.pt"
    torch.save({"x": Payload()}, code)
    assert _run(cifar_root, tmp_path / "o", "--evaluate", str(code)) == 2
    assert str(code) in one_error_line(capsys)
    other = tmp_path / "resnet14.pt"
    torch.save(CifarResNet(2).state_dict(), other)                 # a ResNet-14 given as ResNet-8
    assert _run(cifar_root, tmp_path / "o", "--evaluate", str(other)) == 2
    assert "--depth" in one_error_line(capsys)


def test_the_default_precision_follows_the_cpu(cifar_root, tmp_path, tiny, cpu_bf16, capsys):
    """--amp auto (the default): bf16 where the CPU computes it natively, fp32 where it would be emulated
    (9x slower for ResNet-20 on an AVX2 CPU); said at start and recorded."""
    assert _run(cifar_root, tmp_path, "--epochs", "1") == 0
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["hyperparameters"]["amp"] is cpu_bf16
    assert record["precision"].startswith("bf16 autocast (--amp auto" if cpu_bf16 else "fp32 (--amp auto")
    assert f"precision: {record['precision']}" in capsys.readouterr().out

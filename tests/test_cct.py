"""Transformers/cct: the named sizes against the authors' table, the pieces, and train.py end to end."""

import json

import pytest
import torch
import torch.nn.functional as F

from common.training import load_checkpoint
from tests.conftest import Payload, one_error_line
from Transformers.cct import train
from Transformers.cct.model import TABLE, CompactTransformer, DropPath, SeqPool, parse_name

# our count of each named size (10 classes, 32 x 32 images), the table's figure rounded from these
COUNTS = {"vit_lite_7_4": 3_716_874, "vit_lite_6_4": 3_190_538, "cvt_7_4": 3_716_619, "cvt_6_4": 3_190_283,
          "cct_2_3x2": 283_723, "cct_4_3x2": 482_123, "cct_6_3x2": 3_326_923, "cct_7_3x2": 3_853_259,
          "cct_7_3x1": 3_760_139}


@pytest.mark.parametrize("name", sorted(TABLE))
def test_parameters_match_the_table(name):
    ours = sum(p.numel() for p in CompactTransformer(name).parameters())
    assert ours == COUNTS[name]
    assert round(ours / 1e6, 3) == pytest.approx(TABLE[name][1] / 1e6)        # printed as 0.284M, 3.717M, ...


@pytest.mark.parametrize("name, tokens", [("cct_2_3x2", 64), ("cct_7_3x1", 256), ("cvt_7_4", 64),
                                          ("vit_lite_7_4", 65)])
def test_shapes_and_tokens(name, tokens):
    model = CompactTransformer(name).eval()
    assert model.tokens == tokens                                              # ViT-Lite: + the class token
    assert model(torch.rand(3, 3, 32, 32)).shape == (3, 10)
    assert model.tokenizer(torch.zeros(1, 3, 32, 32)).shape[1] == tokens - (name.startswith("vit"))


def test_unknown_names_are_refused():
    for bad in ("cct_3_3x2", "resnet20", "cct_2_3x", "vit_7_4"):
        with pytest.raises(ValueError, match="unknown model"):
            parse_name(bad)


def test_sequence_pooling_is_a_weighted_average_of_the_tokens():
    torch.manual_seed(0)
    pool = SeqPool(8)
    pool.keep_weights = True
    x = torch.randn(2, 5, 8)
    z = pool(x)
    w = pool.weights
    assert w.shape == (2, 5) and torch.allclose(w.sum(-1), torch.ones(2)) and (w > 0).all()
    assert torch.allclose(z, (w[:, :, None] * x).sum(1), atol=1e-6)


def test_the_encoder_layer_is_the_authors():
    """x = x + MHSA(LN_pre(x)); x = LN_1(x); x = x + MLP(x): the stream itself is normalised in between."""
    torch.manual_seed(0)
    model = CompactTransformer("cct_2_3x2").eval()
    layer = model.encoder[0]
    x = torch.randn(2, 64, 128)
    y = layer.norm1(x + layer.self_attn(layer.pre_norm(x)))
    y = y + layer.linear2(F.gelu(layer.linear1(y)))
    torch.testing.assert_close(layer(x), y)
    assert [layer.drop_path.p for layer in model.encoder] == pytest.approx([0.0, 0.1])   # linspace(0, 0.1, L)


def test_drop_path_drops_whole_examples_and_keeps_the_mean():
    torch.manual_seed(0)
    dp = DropPath(0.25)
    y = dp(torch.ones(20_000, 3, 4))
    per_example = y.flatten(1)
    assert ((per_example == 0).all(1) | (per_example == 1 / 0.75).all(1)).all()
    assert y.mean().item() == pytest.approx(1.0, abs=0.02)
    assert torch.equal(dp.eval()(torch.ones(2, 3)), torch.ones(2, 3))


def test_one_adamw_step_lowers_the_loss():
    torch.manual_seed(0)
    model = CompactTransformer("cct_2_3x2", drop_path=0.0, attention_dropout=0.0)
    x, y = torch.rand(16, 3, 32, 32), torch.randint(0, 10, (16,))
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.03)
    before = F.cross_entropy(model(x), y, label_smoothing=0.1)
    opt.zero_grad()
    before.backward()
    opt.step()
    assert F.cross_entropy(model(x), y, label_smoothing=0.1) < before


def test_the_learning_rate_schedule_of_the_authors():
    f = train.lr_factor(5, 200)
    assert [f(e) for e in range(6)] == pytest.approx([1 / 5, 1 / 4, 1 / 3, 1 / 2, 1, 1])
    assert f(102.5) == pytest.approx(0.5) and 0 < f(199) < 1e-3


def test_help_and_bad_arguments(capsys):
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--help"])
    assert e.value.code == 0 and "--model" in capsys.readouterr().out
    for bad in (["--model", "cct_3_3x2"], ["--warmup", "300"]):
        with pytest.raises(SystemExit) as e:
            train.parse_args(bad)
        assert e.value.code == 2
    assert "unknown model" in capsys.readouterr().err
    assert train.parse_args(["--model", "cvt_7_4"]).out == train.PAPER_DIR / "results" / "cvt_7_4"


@pytest.fixture
def tiny(monkeypatch):
    """--quick on fewer images (two batches of 128 per epoch), to keep the tests short."""
    monkeypatch.setattr(train, "QUICK_SUBSET", (256, 0, 128))


def _run(cifar_root, out, *extra):
    return train.main(["--quick", "--data-dir", str(cifar_root), "--out", str(out), "--no-progress", *extra])


def test_quick_end_to_end_and_evaluate(cifar_root, tmp_path, tiny, capsys):
    assert _run(cifar_root, tmp_path / "once", "--epochs", "2", "--warmup", "1") == 0
    record = json.loads((tmp_path / "once" / "metrics.json").read_text())
    assert record["quick"] and record["model"] == {"module": "Transformers/cct/model.py",
                                                   "class": "CompactTransformer", "kwargs": {"name": "cct_2_3x2"},
                                                   "weights": "model.pt"}
    assert [m["name"] for m in record["metrics"]] == ["test_accuracy_pct", "best_epoch_test_accuracy_pct",
                                                      "parameters_M"]
    assert record["metrics"][2]["passed"]
    history = json.loads((tmp_path / "once" / "history.json").read_text())
    assert len(history) == 2 and all("test_error_pct" in h for h in history)
    capsys.readouterr()
    assert _run(cifar_root, tmp_path / "e", "--evaluate", str(tmp_path / "once" / "model.pt")) == 0
    assert f"test accuracy {record['test_accuracy_pct']:.2f}%" in capsys.readouterr().out


def test_resumed_run_equals_uninterrupted_run(cifar_root, tmp_path, tiny, monkeypatch):
    argv = ["--epochs", "3", "--warmup", "1"]
    assert _run(cifar_root, tmp_path / "once", *argv) == 0

    real = train.TestCurve.__call__

    def interrupt_in_epoch_2(self, history):
        real(self, history)
        if len(history) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(train.TestCurve, "__call__", interrupt_in_epoch_2)
    assert _run(cifar_root, tmp_path / "twice", *argv) == 130                 # Ctrl-C after epoch 2's test pass
    monkeypatch.setattr(train.TestCurve, "__call__", real)
    assert _run(cifar_root, tmp_path / "twice", *argv, "--resume") == 0
    a, b = (load_checkpoint(tmp_path / d / "model.pt") for d in ("once", "twice"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_damaged_checkpoint_and_foreign_weights_are_one_error_line(cifar_root, tmp_path, tiny, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert _run(cifar_root, tmp_path / "run", "--resume") == 2
    assert "checkpoint.pt" in one_error_line(capsys)
    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    assert _run(cifar_root, tmp_path / "e", "--evaluate", str(tmp_path / "evil.pt")) == 2
    one_error_line(capsys)
    torch.save(CompactTransformer("cct_4_3x2").state_dict(), tmp_path / "other.pt")
    assert _run(cifar_root, tmp_path / "e", "--evaluate", str(tmp_path / "other.pt")) == 2
    assert "cct_2_3x2" in one_error_line(capsys)

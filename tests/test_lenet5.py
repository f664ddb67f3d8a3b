import json
from pathlib import Path

import pytest
import torch

from CNN.lenet5 import train
from CNN.lenet5.model import A, C3_TABLE, PAPER_PARAMETERS, LeNet5, LeNet5Modern, map_loss, rbf_codes, squash
from common.summary import layer_table
from common.training import load_checkpoint
from tests.conftest import Payload, one_error_line

PAPER_DIR = Path(train.__file__).parent


def test_parameters_per_layer_match_the_paper():
    rows = {name: (shape, ours, paper) for name, shape, ours, paper in
            layer_table(LeNet5(), torch.zeros(1, 1, 28, 28), paper=PAPER_PARAMETERS)}
    for name, paper in PAPER_PARAMETERS.items():
        assert rows[name][1] == paper == rows[name][2], name
    assert rows["C3"][0] == (16, 10, 10) and rows["F6"][0] == (84,)
    assert sum(p.numel() for p in LeNet5().parameters() if p.requires_grad) == 60_000
    table = train.layer_summary(LeNet5()).splitlines()
    assert table[-1].split() == ["total", "60,000", "60,000"]
    assert table[3].split() == ["C3", "16x10x10", "1,516", "1,516"]


def test_shapes_follow_fig_2():
    h = LeNet5().features(torch.rand(3, 1, 28, 28))
    expected = {"INPUT": (1, 32, 32), "C1": (6, 28, 28), "S2": (6, 14, 14), "C3": (16, 10, 10),
                "S4": (16, 5, 5), "C5": (120, 1, 1), "F6": (84,), "OUTPUT": (10,)}
    assert {k: tuple(v.shape[1:]) for k, v in h.items()} == expected
    assert LeNet5Modern()(torch.rand(3, 1, 28, 28)).shape == (3, 10)


def test_preprocessing_maps_background_and_ink_and_pads():
    x = torch.zeros(1, 1, 28, 28)
    x[0, 0, 10, 10] = 1.0
    z = LeNet5.preprocess(x)
    assert z.shape == (1, 1, 32, 32)
    assert z[0, 0, 12, 12].item() == pytest.approx(1.175) and z[0, 0, 0, 0].item() == pytest.approx(-0.1)
    assert torch.isclose(z, torch.tensor(-0.1)).sum() == 32 * 32 - 1


def test_c3_connection_table_is_table_1():
    assert len(C3_TABLE) == 16 and [len(c) for c in C3_TABLE] == [3] * 6 + [4] * 9 + [6]
    for i in range(6):  # the first six maps take contiguous triples, the next six contiguous quadruples
        assert set(C3_TABLE[i]) == {i % 6, (i + 1) % 6, (i + 2) % 6}
        assert set(C3_TABLE[6 + i]) == {(i + k) % 6 for k in range(4)}
    assert [sum(r in c for c in C3_TABLE) for r in range(6)] == [10] * 6  # ten X per row of Table I
    c3 = LeNet5().C3
    dense = c3.dense_weight()
    for o in range(16):
        for i in range(6):
            assert (dense[o, i].abs().sum() > 0) == (i in C3_TABLE[o])
    # an output map does not respond to an unconnected input map
    x = torch.zeros(1, 6, 14, 14)
    x[0, 5] = torch.randn(14, 14)
    out = c3(x) - c3.bias.view(1, -1, 1, 1)
    for o in range(16):
        assert (out[0, o].abs().max() > 0) == (5 in C3_TABLE[o])


def test_squash_and_rbf_output():
    assert squash(torch.tensor([1.0, -1.0])).tolist() == pytest.approx([1.0, -1.0], abs=1e-4)
    assert squash(torch.tensor(100.0)).item() == pytest.approx(A)
    codes = rbf_codes()
    assert codes.shape == (10, 84) and set(codes.unique().tolist()) == {-1.0, 1.0}
    assert min(((codes[i] != codes[j]).sum().item() for i in range(10) for j in range(i))) >= 10
    model = LeNet5()
    x = torch.randn(5, 84)
    brute = ((x[:, None, :] - codes[None]) ** 2).sum(-1)
    assert torch.allclose(model.OUTPUT(x), brute, atol=1e-4)
    assert model.OUTPUT(codes).argmin(1).tolist() == list(range(10))


def test_map_loss_is_eq_9():
    y = torch.tensor([[1.0, 3.0], [2.0, 0.5]])
    target = torch.tensor([0, 1])
    j = 2.0
    by_hand = [1.0 + torch.log(torch.exp(torch.tensor(-j)) + torch.exp(-y[0]).sum()),
               0.5 + torch.log(torch.exp(torch.tensor(-j)) + torch.exp(-y[1]).sum())]
    assert map_loss(y, target, j=j).item() == pytest.approx(sum(by_hand).item() / 2)


def test_a_small_batch_is_overfit(mnist):
    torch.manual_seed(0)
    x, y = mnist.train_x[:64].float() / 255, mnist.train_y[:64]
    model = LeNet5()
    opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    first = None
    for _ in range(150):
        loss = map_loss(model(x), y)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first
    assert (model(x).argmin(1) == y).all()


def test_quick_run_end_to_end_and_resume(mnist_root, tmp_path, capsys):
    args = ["--quick", "--data-dir", str(mnist_root), "--out", str(tmp_path), "--no-progress"]
    assert train.main(args) == 0
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["quick"] is True and record["model"] == {"module": "CNN/lenet5/model.py", "class": "LeNet5",
                                                           "kwargs": {}, "weights": "model.pt"}
    m = record["metrics"][0]
    assert m["name"] == "test_error_pct" and m["paper"] == 0.95 and 0 <= m["ours"] <= 100
    assert m["claim"] == train.CLAIM
    history = json.loads((tmp_path / "history.json").read_text())
    assert record["training_time_s"] + 0.05 >= sum(h["epoch_time_s"] for h in history) > 0   # rounded to 0.1 s
    assert m["passed"] == (0.80 <= m["ours"] <= 1.15)
    state = load_checkpoint(tmp_path / "model.pt")
    assert set(state) == set(LeNet5().state_dict())
    assert (tmp_path / "curves.png").exists() and (tmp_path / "history.json").exists()
    # a second call with --resume finds the finished checkpoint and evaluates the same weights
    assert train.main(args + ["--resume"]) == 0
    assert json.loads((tmp_path / "metrics.json").read_text())["metrics"][0]["ours"] == m["ours"]
    # --quick evaluates on the same 512 test images as the quick run
    assert train.main(["--quick", "--evaluate", str(tmp_path / "model.pt"), "--data-dir", str(mnist_root)]) == 0
    assert f"test error {m['ours']:.2f}% on 512 images" in capsys.readouterr().out
    # the model of a training checkpoint is accepted too
    assert train.main(["--quick", "--evaluate", str(tmp_path / "checkpoint.pt"), "--data-dir", str(mnist_root)]) == 0
    assert f"test error {m['ours']:.2f}% on 512 images" in capsys.readouterr().out


@pytest.mark.parametrize("bad", [["--no-such-flag"], ["--epochs", "-1"], ["--epochs", "0"], ["--lr", "-0.1"],
                                 ["--variant", "resnet"]])
def test_bad_flags_are_argparse_errors(bad, capsys):
    with pytest.raises(SystemExit) as e:
        train.parse_args(bad)
    assert e.value.code == 2 and "error:" in capsys.readouterr().err


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PAPER_DATA_MIRROR", str(tmp_path / "no-mirror"))
    assert train.main(["--quick", "--data-dir", str(tmp_path / "root"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "MNIST/raw/" in err and "PAPER_DATA_MIRROR" in err
    assert not (tmp_path / "out").exists()


def test_no_progress_prints_a_line_per_epoch(mnist_root, tmp_path, capsys):
    assert train.main(["--quick", "--epochs", "2", "--data-dir", str(mnist_root), "--out", str(tmp_path),
                       "--no-progress"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("LeNet-5 epoch")]
    assert [ln.split()[2] for ln in lines] == ["1/2", "2/2"]
    assert all("train_loss" in ln and "val_error_pct" in ln for ln in lines)


def _bad_file(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "model.pt"
    if kind == "code":
        torch.save({"m": Payload()}, path)
    elif kind == "truncated":
        torch.save(LeNet5().state_dict(), path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "other-network":
        torch.save(LeNet5Modern().state_dict(), path)
    return path  # "missing": never written


@pytest.mark.parametrize("kind, says", [("code", "not a plain weights file"), ("truncated", "damaged"),
                                        ("missing", "no such file"), ("other-network", "does not hold the weights")])
def test_evaluate_a_bad_file_is_one_clear_error(kind, says, tmp_path, capsys):
    path = _bad_file(kind, tmp_path)
    before = path.read_bytes() if path.exists() else None
    assert train.main(["--evaluate", str(path)]) == 2   # the file is checked before the data are read
    line = one_error_line(capsys)
    assert str(path) in line and says in line and "state_dict" in line  # names it, says what, says what to do
    assert (path.read_bytes() if path.exists() else None) == before     # nothing deleted or changed


def test_resume_from_a_damaged_checkpoint_is_one_clear_error(mnist_root, tmp_path, capsys):
    ckpt = tmp_path / "checkpoint.pt"
    torch.save({"model": LeNet5().state_dict(), "epoch": 1}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    before = ckpt.read_bytes()
    args = ["--quick", "--data-dir", str(mnist_root), "--out", str(tmp_path), "--no-progress", "--resume"]
    assert train.main(args) == 2
    line = one_error_line(capsys)
    assert str(ckpt) in line and "damaged" in line and "without --resume" in line
    assert ckpt.read_bytes() == before and not (tmp_path / "metrics.json").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_device_cuda_without_a_gpu_is_one_clear_error(tmp_path, capsys):
    assert train.main(["--quick", "--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    assert "--device cuda" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_benchmark_script_has_help_and_writes_under_results_experiments(capsys):
    from CNN.lenet5.experiments import benchmark

    with pytest.raises(SystemExit) as e:
        benchmark.main(["--help"])
    assert e.value.code == 0 and "--variant" in capsys.readouterr().out
    assert benchmark.OUT == PAPER_DIR / "results" / "experiments" / "benchmark"

"""common.perf: the measurements on a tiny model, the card's block, and every paper's experiments/perf.py --quick."""

import importlib
import json
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from common import perf
from common.data import REPO_ROOT, TensorLoader
from common.results import BEGIN, END, render
from tests.conftest import fresh_root

BIG_MIB = 96


def tiny(big: bool = False, batch: int = 16, hidden: int = 32) -> perf.Workload:
    """A linear classifier on random data; ``big``: its step also fills a 96 MiB tensor (and uses it)."""
    model = torch.nn.Sequential(torch.nn.Linear(32, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 4))
    x, y = torch.randn(64, 32), torch.randint(0, 4, (64,))
    loader = TensorLoader(x, y, batch_size=batch, shuffle=True, transform=None)

    def step(m, b):
        loss = F.cross_entropy(m(b[0]), b[1])
        if big:
            waste = torch.ones(BIG_MIB * 2**20 // 4)
            loss = loss + 0.0 * waste.sum()
        return loss, {"n": len(b[0]), "loss": loss.item() * len(b[0])}

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    device = torch.device("cpu")
    return perf.Workload(model, perf.fit_step(model, optimizer, step, loader, device=device, amp=False), batch,
                         eval_step=perf.eval_step(model, step, loader, device=device, amp=False), eval_items=batch,
                         info={"hidden": hidden})


def test_time_steps_counts_items_and_times_steps():
    work = tiny(batch=8)
    t = perf.time_steps(work.train_step, work.items, torch.device("cpu"), perf.QUICK)
    assert t["items_per_s"] > 0 and t["step_ms"] > 0 and t["items_per_step"] == 8
    assert t["steps_timed"] == 2 and len(t["slice_items_per_s"]) == 2


def test_peak_memory_sees_a_big_tensor_in_the_step():
    small = perf.peak_memory(perf.builder(tiny), "train", steps=2)
    big = perf.peak_memory(perf.builder(tiny, big=True), "train", steps=2)
    assert small["method"] in ("rss", "ru_maxrss", "cuda")
    assert small["peak_mib"] >= 0 and big["peak_mib"] > small["peak_mib"] + 0.8 * BIG_MIB, (small, big)
    assert perf.peak_memory(perf.builder(tiny), "eval", steps=1)["peak_mib"] < big["peak_mib"]


def test_profiles_name_the_top_operations():
    work = tiny()
    prof = perf.profile_torch(work.train_step, 2, torch.device("cpu"), top=5)
    assert 0 < len(prof["ops"]) <= 5 and all(op["self_ms"] > 0 for op in prof["ops"])
    assert any("addmm" in op["name"] or "mm" in op["name"] for op in prof["ops"])
    assert 0 < sum(op["share_pct"] for op in prof["ops"]) <= 100.5
    py = perf.profile_python(work.train_step, 2, top=4)
    assert len(py["ops"]) == 4 and py["step_ms"] > 0


def _fake_card(root, folder: str, with_perf: dict | None):
    paper = root / folder
    paper.mkdir(parents=True)
    (paper / "README.md").write_text(f"# card\n{BEGIN}\n{END}\n## Performance\n{perf.PERF_BEGIN}\npending\n"
                                     f"{perf.PERF_END}\ntail\n")
    if with_perf is not None:
        (paper / perf.PERF_DIR).mkdir(parents=True)
        (paper / perf.PERF_DIR / "perf.json").write_text(json.dumps(with_perf))
    return paper / "README.md"


def test_measure_writes_perf_json_and_the_card_block(tmp_path):
    points = [(str(h), perf.builder(tiny, hidden=h)) for h in (8, 32, 128)]
    out = tmp_path / "perf"
    record = perf.measure(paper_dir=tmp_path, out=out, unit="examples", workload="tiny MLP, batch 16",
                          axis="hidden units", points=points, main="32", device=torch.device("cpu"),
                          precision="fp32 (test)", quick=True, eval_desc="batches of 16", epoch=(640, "640 examples"),
                          extra=[("another step", perf.builder(tiny, batch=4))], notes=["a note"])
    saved = json.loads((out / "perf.json").read_text())
    assert saved == json.loads(json.dumps(record)) and (out / "scaling.png").stat().st_size > 1000
    for key in ("machine", "precision", "train", "epoch", "eval", "memory", "scaling", "profile", "extra", "commit"):
        assert key in saved, key
    assert saved["train"]["items_per_s"] > 0 and saved["eval"]["items_per_s"] > 0
    assert saved["epoch"]["seconds"] > 0 and saved["memory"]["train_peak_mib"] >= 0
    rows = saved["scaling"]["rows"]
    assert [r["point"] for r in rows] == ["8", "32", "128"] and [r["hidden"] for r in rows] == [8, 32, 128]
    assert rows[0]["parameters"] < rows[1]["parameters"] < rows[2]["parameters"]
    assert all(r["step_ms"] > 0 and r["peak_mib"] >= 0 for r in rows)

    # the card: filled where a perf.json exists, untouched where none does
    (tmp_path / "README.md").write_text(f"# top\n{BEGIN}\n{END}\n")
    card = _fake_card(tmp_path, "CNN/toy", saved)
    other = _fake_card(tmp_path, "RNN/other", None)
    (card.parent / "results").mkdir(exist_ok=True)
    (card.parent / "results" / "metrics.json").write_text(json.dumps(
        {"paper": "Toy", "metrics": [], "model": {}, "command": "python CNN/toy/train.py", "seed": 0, "epochs": 1,
         "wall_time_s": 500.0, "training_time_s": 754.0,  # a run continued by --resume: the time of its parts
         "device": "a test CPU", "torch": "2", "commit": "abc", "date": "2026-12-07"}))
    new = perf.fill_perf_blocks(tmp_path, {})
    assert other not in new
    text = new[card]
    block = text.split(perf.PERF_BEGIN)[1].split(perf.PERF_END)[0]
    assert "pending" not in block and text.endswith("tail\n") and text.startswith("# card")
    for expected in ("Training throughput", "examples/s", "One epoch (640 examples)", "12.6 min on a test CPU",
                     "Peak memory, training", "Peak memory, evaluation", "| hidden units | parameters | hidden |",
                     "| **32** |", "results/experiments/perf/scaling.png", "another step", "a note",
                     "not a measurement", "| Operation |"):
        assert expected in block, expected
    # python -m common.results fills it too, and leaves the other card's block alone
    texts = render(tmp_path)
    assert block in texts[card] and other not in texts


# --------------------------------------------------------------------------- every paper's script, --quick

PAPERS = {  # paper folder: the fixture giving a data root with its dataset (None: generated data)
    "CNN/lenet5": "mnist_root", "CNN/alexnet": "cifar_root", "CNN/resnet": "cifar_root", "CNN/tcn": "jsb_root",
    "AutoEncoders/stacked_denoising": "mnist_root", "AutoEncoders/deep_autoencoder": "mnist_root",
    "AutoEncoders/vae": "mnist_root", "GANs/gan": "mnist_root", "RNN/elman": None, "RNN/gru": "jsb_root",
    "RNN/lstm": None, "RNN/rnn_regularization": "ptb_root", "Transformers/cct": "cifar_root",
    "Transformers/transformer": "multi30k_root",
}


@pytest.fixture(scope="session")
def jsb_root(tmp_path_factory):
    return fresh_root(tmp_path_factory, "jsb-pickle")


@pytest.mark.parametrize("paper", sorted(PAPERS))
def test_perf_script_quick(paper, tmp_path, request):
    data = ["--data-dir", str(request.getfixturevalue(PAPERS[paper]))] if PAPERS[paper] else []
    module = importlib.import_module(paper.replace("/", ".") + ".experiments.perf")
    assert module.main(["--quick", "--out", str(tmp_path / "perf"), *data]) == 0
    record = json.loads((tmp_path / "perf" / "perf.json").read_text())
    assert record["quick"] and record["train"]["items_per_s"] > 0 and len(record["scaling"]["rows"]) >= 3
    assert record["profile"]["ops"] and (tmp_path / "perf" / "scaling.png").exists()
    assert "Training throughput" in perf.render_markdown(record, REPO_ROOT / paper)


def test_a_script_runs_from_the_command_line(tmp_path):
    """As a user runs it (the script is __main__: its workloads still reach the measuring processes)."""
    script = REPO_ROOT / "RNN/lstm/experiments/perf.py"
    assert "--quick" in subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True,
                                       check=True).stdout
    subprocess.run([sys.executable, script, "--quick", "--out", tmp_path], check=True, capture_output=True)
    record = json.loads((tmp_path / "perf.json").read_text())
    assert record["command"].startswith("python RNN/lstm/experiments/perf.py") and record["memory"]["train_peak_mib"]

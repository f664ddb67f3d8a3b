"""common.comparisons: COMPARISONS.md agrees with the committed metrics files, and is made from them alone."""

import json

from common import comparisons, results
from common.results import metric


def test_committed_page_equals_the_generated_one():
    assert not comparisons.stale(), "run `python -m common.results` (or python -m common.comparisons) to regenerate"


def _record(paper: str, metrics: list[dict], **extra) -> dict:
    return {"paper": paper, "metrics": metrics, "model": {}, "command": "python x.py", "seed": 0, "epochs": 1,
            "wall_time_s": 120.0, "device": "cpu (2 threads)", "torch": "2.14.1", "commit": "abc", "date": "2026-12-07",
            **extra}


def test_rows_come_from_the_files_and_planned_runs_show_pending(tmp_path):
    lenet = tmp_path / "CNN/lenet5/results"
    lenet.mkdir(parents=True)
    (lenet / "metrics.json").write_text(json.dumps(_record(
        "LeCun et al. 1998", [metric("test_error_pct", 0.87, paper=0.95, band=(0.8, 1.15))], parameters=1234)))
    tcn = tmp_path / "CNN/tcn"
    (tcn / "results/smnist").mkdir(parents=True)
    (tcn / "train.py").write_text("")                                      # the code of the planned runs
    (tcn / "results/smnist/metrics.json").write_text(json.dumps(_record(
        "Bai et al. 2018", [metric("test_accuracy_pct", 98.9, paper=99.0, band=(98.5, None))], parameters=66910,
        training_time_s=7200.0)))
    page = comparisons.render(tmp_path)
    assert "| LeNet-5 | LeCun et al. 1998 | [CNN/lenet5](CNN/lenet5/README.md) | test error, % | **0.87** | 0.95 | " \
           "1,234 | 2.0 min, cpu (2 threads) |" in page
    # an accuracy becomes an error; a run not made yet whose code is in the tree: pending, with the paper's number
    assert "| TCN, pixel by pixel (sequential MNIST) | Bai et al. 2018 | [CNN/tcn](CNN/tcn/README.md) | " \
           "test error, % | **1.1** | 1 | 66,910 | 2.0 h, cpu (2 threads) |" in page
    assert "| TCN, permuted pixels (P-MNIST) | Bai et al. 2018 | [CNN/tcn](CNN/tcn/README.md) | test error, % | " \
           "*run pending* | 2.8 | - | - |" in page
    # no file and no code: no row (ResNet, SdA, ...); a section without rows is left out
    assert "ResNet" not in page and "SdA" not in page and "## Penn Treebank" not in page
    # the page is written, then up to date, and a hand edit is caught
    assert comparisons.stale(tmp_path) and comparisons.write(tmp_path) and not comparisons.stale(tmp_path)
    (tmp_path / comparisons.PAGE).write_text(page.replace("**0.87**", "**0.80**"))
    assert comparisons.stale(tmp_path)


def test_parameters_are_counted_from_the_network_a_file_names():
    spec = {"module": "CNN/tcn/model.py", "class": "TaskModel",
            "kwargs": {"task": "copy", "arch": "tcn", "hidden": 10, "levels": 8, "k": 8, "dropout": 0.05}}
    assert comparisons.count_parameters({"model": spec}) == 12_530
    assert comparisons.count_parameters({"model": spec, "parameters": 7}) == 7
    assert comparisons.count_parameters({"model": {"module": "no/such.py", "class": "X", "kwargs": {}}}) is None


def test_common_results_regenerates_the_page(monkeypatch, tmp_path):
    monkeypatch.setattr(results, "REPO_ROOT", tmp_path)                   # a tree without READMEs or results
    monkeypatch.setattr(results, "render", lambda root=tmp_path: {})
    monkeypatch.setattr(results, "stale_readmes", lambda root=tmp_path: [])
    assert results.main(["--check"]) == 1                                   # no COMPARISONS.md yet
    assert results.main([]) == 0 and (tmp_path / comparisons.PAGE).read_text() == comparisons.render(tmp_path)
    assert results.main(["--check"]) == 0

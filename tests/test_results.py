import json
import subprocess
from pathlib import Path

import pytest

from common import results
from common.data import REPO_ROOT
from common.results import BEGIN, END, metric, paper_table, render, stale_readmes


def test_metric_computes_passed_from_the_band():
    assert metric("err", 0.9, paper=0.95, band=(0.8, 1.15))["passed"] is True
    assert metric("err", 1.15, paper=0.95, band=(0.8, 1.15))["passed"] is True
    assert metric("err", 1.2, paper=0.95, band=(0.8, 1.15))["passed"] is False
    assert metric("err", 0.7, paper=0.95, band=(0.8, 1.15))["passed"] is False
    # an open band: "at least 4"
    assert metric("ratio", 12.0, paper=6.0, band=(4.0, None))["passed"] is True
    assert metric("ratio", 3.9, paper=6.0, band=(4.0, None))["passed"] is False
    assert "| >= 4 |" in paper_table({"metrics": [metric("ratio", 5.0, paper=6.0, band=(4.0, None))], "seed": 0,
                                       "epochs": 1, "wall_time_s": 1.0, "device": "cpu", "torch": "2.14.1",
                                       "commit": "abc", "date": "2026-11-27", "command": "python x.py"})


def test_readme_tables_agree_with_metrics_files():
    stale = stale_readmes()
    assert not stale, f"run `python -m common.results` to regenerate: {stale}"


def _fake_repo(tmp_path, ours):
    (tmp_path / "CNN/toy/results").mkdir(parents=True)
    (tmp_path / "README.md").write_text(f"# top\n{BEGIN}\nold\n{END}\n")
    (tmp_path / "CNN/toy/README.md").write_text(f"# toy\n{BEGIN}\n{END}\ntail\n")
    record = {"paper": "Toy 2026", "metrics": [metric("test_error_pct", ours, paper=1.0, band=(0.5, 1.5))],
              "model": {}, "command": "python CNN/toy/train.py", "seed": 0, "epochs": 3, "wall_time_s": 90.0,
              "device": "cpu (2 threads)", "torch": "2.14.1", "commit": "abc1234", "date": "2026-11-27"}
    (tmp_path / "CNN/toy/results/metrics.json").write_text(json.dumps(record))
    return record


def test_render_writes_the_numbers_and_check_catches_a_mismatch(tmp_path):
    record = _fake_repo(tmp_path, ours=1.23)
    new = render(tmp_path)
    top, paper = new[tmp_path / "README.md"], new[tmp_path / "CNN/toy/README.md"]
    assert "**1.23**" in top and "[CNN/toy](CNN/toy/README.md)" in top and "1.5 min" in top
    assert paper_table(record) in paper and paper.endswith("tail\n")
    record["details"] = {"columns": ["unit", "nll"], "rows": [["gru", 8.5], ["tanh", 9.25]]}
    assert "| unit | nll |" in paper_table(record) and "| tanh | 9.25 |" in paper_table(record)
    assert "Command: `python CNN/toy/train.py`\n" in paper_table(record) + "\n"
    # a run continued with --resume: the card shows the command that reproduces it, and what was recorded
    resumed = dict(record, command="python CNN/toy/train.py --resume --no-progress", training_time_s=5400.0)
    assert ("Command: `python CNN/toy/train.py` (recorded as `python CNN/toy/train.py --resume --no-progress`)"
            in paper_table(resumed)) and "training time 1.5 h" in paper_table(resumed)
    assert len(stale_readmes(tmp_path)) == 2
    for path, text in new.items():
        path.write_text(text)
    assert stale_readmes(tmp_path) == []
    # someone edits the number by hand: the check fails
    readme = tmp_path / "CNN/toy/README.md"
    readme.write_text(readme.read_text().replace("**1.23**", "**0.99**"))
    assert stale_readmes(tmp_path) == [readme]


def test_a_paper_with_several_runs_gets_a_row_per_run(tmp_path):
    record = _fake_repo(tmp_path, ours=1.23)
    results_dir = tmp_path / "CNN/toy/results"
    (results_dir / "metrics.json").unlink()
    for run, ours in (("small", 1.1), ("medium", 2.5), ("experiments", 9.9)):   # experiments/ holds probes
        (results_dir / run).mkdir()
        (results_dir / run / "metrics.json").write_text(
            json.dumps({**record, "metrics": [metric("test_error_pct", ours, paper=1.0, band=(0.5, 1.5))]}))
    new = render(tmp_path)
    top, paper = new[tmp_path / "README.md"], new[tmp_path / "CNN/toy/README.md"]
    assert "[CNN/toy (small)](CNN/toy/README.md)" in top and "[CNN/toy (medium)](CNN/toy/README.md)" in top
    assert "**1.1**" in top and "**2.5**" in top and "9.9" not in top
    assert paper.index("**medium** (`results/medium/`)") < paper.index("**2.5**") < paper.index("**small**")
    assert "| NO |" in paper and "9.9" not in paper
    # beside a results/metrics.json, sub-folders are that run's parts or ablations, not rows
    (results_dir / "metrics.json").write_text(json.dumps(record))
    top = render(tmp_path)[tmp_path / "README.md"]
    assert "**1.23**" in top and "(small)" not in top and "**2.5**" not in top


def test_readme_without_markers_is_an_error(tmp_path):
    _fake_repo(tmp_path, ours=1.0)
    (tmp_path / "README.md").write_text("# no markers\n")
    with pytest.raises(ValueError, match="results:begin"):
        render(tmp_path)


def test_cli_check_exit_code(monkeypatch, tmp_path):
    _fake_repo(tmp_path, ours=1.0)
    monkeypatch.setattr(results, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(results, "render", lambda root=tmp_path: render(tmp_path))
    monkeypatch.setattr(results, "stale_readmes", lambda root=tmp_path: stale_readmes(tmp_path))
    assert results.main(["--check"]) == 1
    assert results.main([]) == 0
    assert results.main(["--check"]) == 0


def test_reproduce_command_drops_location_flags_and_the_default_precision():
    cmd = ("python CNN/alexnet/train.py --resume --epochs 30 --amp --data-dir /tmp/x --no-progress "
           "--out=CNN/alexnet/results/raw --lr 0.1")
    assert results.reproduce_command(cmd) == "python CNN/alexnet/train.py --epochs 30 --lr 0.1"
    assert results.reproduce_command("python a.py --amp auto --seed 1") == "python a.py --seed 1"
    assert results.reproduce_command("python a.py --amp off --seed 1") == "python a.py --amp off --seed 1"
    assert results.reproduce_command("python a.py --amp on") == "python a.py --amp on"


def test_an_fp32_run_is_reproduced_with_amp_off():
    """auto would pick bf16 on a CPU that computes it natively: a run that trained in fp32 by choice says so."""
    before = {"hyperparameters": {"amp": False}}                       # recorded before --amp auto|on|off
    since = {"precision": "fp32 (--amp auto: AVX2)"}
    assert results.reproduce_command("python a.py --resume", before) == "python a.py --amp off"
    assert results.reproduce_command("python a.py", since) == "python a.py --amp off"
    assert results.reproduce_command("python a.py --amp off", since) == "python a.py --amp off"
    assert results.reproduce_command("python a.py", {"precision": "fp32"}) == "python a.py"     # no --amp flag
    assert results.reproduce_command("python a.py --amp", {"precision": "bf16 autocast (--amp on)"}) == "python a.py"


def test_model_spec_comes_from_the_object():
    from torch import nn

    spec = results.model_spec(nn.Linear(2, 3), {"in_features": 2, "out_features": 3}, weights="model.pt")
    assert spec["class"] == "Linear" and spec["module"].endswith("torch/nn/modules/linear.py")
    assert spec["kwargs"] == {"in_features": 2, "out_features": 3} and spec["weights"] == "model.pt"


# --------------------------------------------------------------------------- what results/ keeps

MB = 1 << 20
WEIGHTS_BUDGET = 20 * MB     # shipped weights per paper (DESIGN.md)


def _tracked_results_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO_ROOT / p for p in out.decode().split("\0") if "/results/" in p and (REPO_ROOT / p).is_file()]


def _referenced_by_metrics() -> set[Path]:
    """Every file that some results/**/metrics.json names (a string value that is a path relative to the
    metrics file's folder or to the repository root)."""
    found = set()
    for metrics in REPO_ROOT.glob("*/*/results/**/metrics.json"):
        stack = [json.loads(metrics.read_text())]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str) and 0 < len(item) < 300 and "\n" not in item:
                for base in (metrics.parent, REPO_ROOT):
                    try:
                        path = (base / item).resolve()
                        if path.is_file():
                            found.add(path)
                    except (OSError, ValueError):   # text that is no path at all
                        pass
    return found


def test_large_results_files_are_referenced_by_a_metrics_file():
    referenced = _referenced_by_metrics()
    orphans = [p.relative_to(REPO_ROOT) for p in _tracked_results_files()
               if p.stat().st_size > MB and p.resolve() not in referenced]
    assert not orphans, f"tracked files over 1 MB that no metrics.json names (untrack them): {orphans}"


def test_shipped_weights_stay_within_the_budget_per_paper():
    per_paper: dict[str, int] = {}
    for p in _tracked_results_files():
        if p.suffix in (".pt", ".pth", ".bin", ".npz", ".safetensors"):
            paper = "/".join(p.relative_to(REPO_ROOT).parts[:2])
            per_paper[paper] = per_paper.get(paper, 0) + p.stat().st_size
    over = {k: f"{v / MB:.1f} MB" for k, v in per_paper.items() if v > WEIGHTS_BUDGET}
    assert not over, f"more than {WEIGHTS_BUDGET // MB} MB of tracked weights: {over}"


def test_the_paper_list_needs_a_paper_json_in_every_paper_folder(tmp_path):
    from common import papers

    for folder, year in (("CNN/b", 2001), ("CNN/a", 2005)):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "model.py").write_text("")
        (tmp_path / folder / "paper.json").write_text(json.dumps({
            "authors": "A", "year": year, "title": "T", "reproduces": "R",
            "runs": [{"command": f"python {folder}/train.py", "what": "w"}]}))
    listed = papers.load(tmp_path, ("CNN",))
    assert [f for f, _ in listed] == ["CNN/b", "CNN/a"]                  # by year within a family
    run = {"command": "python CNN/a/train.py", "wall_time_s": 120, "device": "cpu",
           "metrics": [{"passed": True}, {"passed": False}]}
    assert "1 of 2 claims in band" in papers.papers_table(listed, {"CNN/a": [(None, run)]})
    block = papers.running_block(listed, {"CNN/a": [(None, run)]})
    assert "python CNN/a/train.py   # w (ours: 2.0 min of training, cpu)" in block and "run pending" in block
    (tmp_path / "CNN/a/paper.json").unlink()
    with pytest.raises(FileNotFoundError, match="CNN/a has no paper.json"):
        papers.load(tmp_path, ("CNN",))

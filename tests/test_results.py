import json

import pytest

from common import results
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
    assert len(stale_readmes(tmp_path)) == 2
    for path, text in new.items():
        path.write_text(text)
    assert stale_readmes(tmp_path) == []
    # someone edits the number by hand: the check fails
    readme = tmp_path / "CNN/toy/README.md"
    readme.write_text(readme.read_text().replace("**1.23**", "**0.99**"))
    assert stale_readmes(tmp_path) == [readme]


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

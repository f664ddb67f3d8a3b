from common.probes import probe_main


def test_probe_main_runs_each_unfinished_probe_once_then_writes_the_summary(tmp_path, capsys):
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "metrics.json").write_text("{}")
    calls = []

    def run(name, out, rest):
        calls.append((name, out, rest))
        return 0

    probes = {"done": ["--a"], "new": ["--b"]}
    assert probe_main("d", probes, tmp_path, run, lambda out: f"table of {out.name}", ["--data-dir", "x"]) == 0
    assert calls == [("new", tmp_path / "new", ["--data-dir", "x"])]
    assert (tmp_path / "summary.md").read_text() == f"table of {tmp_path.name}\n"
    # a failing run stops the rest and returns its status, without a summary
    (tmp_path / "summary.md").unlink()
    assert probe_main("d", {"x": [], "y": []}, tmp_path, lambda *a: 2, lambda out: "") == 2
    assert not (tmp_path / "summary.md").exists()

from common.benchmark import Report, rates, time_interleaved


class Fake:
    """A pipeline whose slices take a known time; it logs the order in which it is asked."""

    def __init__(self, name, seconds_per_batch, log):
        self.name, self.s, self.log, self.times = name, seconds_per_batch, log, []

    def train(self, n):
        self.log.append((self.name, n))
        return n * self.s


def test_interleaved_slices_after_a_warm_up_and_median_rates(tmp_path, capsys):
    log = []
    pipes = {"a": Fake("a", 0.01, log), "b": Fake("b", 0.02, log)}
    time_interleaved(pipes, n=5, repeats=3, warmup=2)
    assert log == [("a", 2), ("b", 2)] + [("a", 5), ("b", 5)] * 3      # warm-up, then turns
    assert pipes["a"].times == [0.05] * 3                               # the warm-up is not timed
    report = Report()
    r = rates(pipes, items=50, unit="images", report=report, width=4)
    assert r == {"a": 1000.0, "b": 500.0}
    report.write(tmp_path / "x" / "cpu.txt")
    text = (tmp_path / "x" / "cpu.txt").read_text().splitlines()
    assert text[0].startswith("a") and "1,000 images/s" in text[0] and len(text) == 2
    assert "written to" in capsys.readouterr().out

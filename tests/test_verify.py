"""common.verify: every shipped number re-measured (--fast, the subset CI runs), and a wrong claim caught."""

import copy
import json

import pytest

from common import verify
from tests.conftest import require_mirror


@pytest.fixture(scope="module")
def mirror():
    return require_mirror("MNIST/raw/t10k-images-idx3-ubyte.gz", "cifar-10-batches-bin/test_batch.bin",
                          "polyphonic/JSB_Chorales.mat", "PennTreebank/ptb.test.txt")


def test_every_shipped_claim_agrees_fast(mirror, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PAPER_DATA_DIR", str(tmp_path / "data"))
    status = verify.main(["--fast"])
    out = capsys.readouterr().out
    assert status == 0, out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| Paper")]
    assert {row.split(" | ")[0].strip("| ").split(" (")[0] for row in rows} >= {
        "CNN/lenet5", "CNN/resnet", "AutoEncoders/vae", "GANs/gan", "RNN/gru", "RNN/lstm"}
    assert sum("| yes |" in row for row in rows) >= 15 and "**NO**" not in out


def test_a_wrong_claim_fails(mirror, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PAPER_DATA_DIR", str(tmp_path / "data"))
    folder, run_name, results, record = next(r for r in verify.papers() if r[0] == "CNN/lenet5")
    altered = copy.deepcopy(record)
    altered["metrics"][0]["ours"] += 0.05                          # five test images that were not misclassified
    monkeypatch.setattr(verify, "papers", lambda: [(folder, run_name, results, altered)])
    assert verify.main([]) == 1
    out = capsys.readouterr().out
    assert "**NO**" in out and "1 disagree" in out
    assert json.loads((results / "metrics.json").read_text()) == record          # nothing written


def test_an_unknown_paper_is_one_error_line(capsys):
    assert verify.main(["--paper", "no-such-paper"]) == 2
    assert capsys.readouterr().err.startswith("error: no paper")

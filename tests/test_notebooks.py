"""Every paper notebook runs top to bottom headless, on a tiny subset (PAPER_QUICK=1)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from common.results import FAMILIES
from tests.conftest import require_mirror

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for family in FAMILIES for p in (REPO / family).glob("*/*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(REPO)) for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, tmp_path):
    require_mirror()  # the notebook copies what it needs from the mirror into a fresh data root
    monkeypatch.setenv("PAPER_QUICK", "1")
    monkeypatch.setenv("PAPER_DATA_DIR", str(tmp_path / "data"))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors

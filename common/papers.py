"""The top README's paper list and its "Running a paper" block, generated so they cannot go stale.

Each paper folder holds a small ``paper.json``: who wrote the paper, when, its title, what this repository
reproduces of it, and the commands of its full runs, each with a few words on what it does::

    {"authors": "LeCun, Bottou, Bengio & Haffner", "year": 1998, "title": "Gradient-Based ...",
     "reproduces": "MNIST test error 0.95% ...", "runs": [{"command": "python CNN/lenet5/train.py",
     "what": "LeNet-5 on MNIST, 20 epochs"}]}

The status of each paper (claims in band, run pending) and each run's measured time come from the committed
``results/metrics.json`` files (:func:`common.results.find_records`). ``python -m common.results`` writes both
blocks into README.md, between ``<!-- papers:begin/end -->`` and ``<!-- running:begin/end -->``; its
``--check`` (and so a test) fails when they are out of date, or when a paper folder has no ``paper.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

PAPERS = ("<!-- papers:begin -->", "<!-- papers:end -->")
RUNNING = ("<!-- running:begin -->", "<!-- running:end -->")


def paper_folders(root: Path, families: tuple[str, ...]) -> list[str]:
    """Every paper folder (``family/name`` holding a ``model.py``), in family order."""
    return [str(p.parent.relative_to(root)) for family in families for p in sorted((root / family).glob("*/model.py"))]


def load(root: Path, families: tuple[str, ...]) -> list[tuple[str, dict]]:
    """``(folder, paper.json)`` of every paper, by family, then year; a paper without one is an error."""
    out = []
    for folder in paper_folders(root, families):
        path = root / folder / "paper.json"
        if not path.is_file():
            raise FileNotFoundError(f"{folder} has no paper.json (see common/papers.py for its fields)")
        out.append((folder, json.loads(path.read_text())))
    order = {f: i for i, f in enumerate(families)}
    return sorted(out, key=lambda fp: (order[fp[0].split("/")[0]], fp[1]["year"], fp[0]))


def status(runs: list[tuple[str | None, dict]] | None) -> str:
    """What the committed metrics say: how many of the paper's claims are in their bands."""
    if not runs:
        return "run pending"
    metrics = [m for _, rec in runs for m in rec["metrics"]]
    passed = sum(bool(m["passed"]) for m in metrics)
    return f"{passed} of {len(metrics)} claim{'s' * (len(metrics) > 1)} in band"


def papers_table(papers: list[tuple[str, dict]], records: dict) -> str:
    rows = ["| Folder | Paper | What we reproduce | Status |", "|---|---|---|---|"]
    for folder, meta in papers:
        rows.append(f"| [{folder}]({folder}/README.md) | {meta['authors']} ({meta['year']}), *{meta['title']}* | "
                    f"{meta['reproduces']} | {status(records.get(folder))} |")
    return "\n".join(rows)


def _matching_record(command: str, runs: list[tuple[str | None, dict]] | None):
    """The committed run of ``command`` (compared without ``--amp off``), or None."""
    from common.results import reproduce_command

    for _, rec in runs or []:
        shown = reproduce_command(rec["command"], rec)
        if shown.replace(" --amp off", "") == command.replace(" --amp off", ""):
            return rec, shown
    return None, command


def running_block(papers: list[tuple[str, dict]], records: dict) -> str:
    from common.results import _minutes

    lines, width = [], 0
    entries = []
    for folder, meta in papers:
        for run in meta["runs"]:
            rec, shown = _matching_record(run["command"], records.get(folder))
            if rec is None:
                took = "run pending" if not records.get(folder) else "not run with these flags yet"
            else:
                took = (f"ours: {_minutes(rec.get('training_time_s', rec['wall_time_s']))} of training, "
                        f"{rec['device']}")
            entries.append((shown, f"{run['what']} ({took})"))
            width = max(width, len(shown))
    lines = [f"{cmd.ljust(width)}   # {what}" for cmd, what in entries]
    return "```bash\n" + "\n".join(lines) + "\n```"

"""``results/metrics.json`` of each paper, and the README tables generated from them.

Run ``python -m common.results`` to rewrite every table (the top README's and each paper
README's, between ``<!-- results:begin -->`` and ``<!-- results:end -->``; the README's paper list and running
block, :mod:`common.papers`; and the cross-paper page
COMPARISONS.md, :mod:`common.comparisons`) from the committed metrics files;
``python -m common.results --check`` exits 1 when a table is out of date.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import json
import math
import platform
import re
import subprocess
import sys
from pathlib import Path

import torch

from common.data import REPO_ROOT
from common.training import write_json

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
FAMILIES = ("CNN", "RNN", "AutoEncoders", "GANs", "Transformers")


def metric(name: str, ours: float, *, paper: float, band: tuple[float, float | None], split: str = "test",
           claim: str | None = None, **extra) -> dict:
    """One checked number: ``passed`` is computed here, never typed in. ``band=(lo, None)``: at least lo.
    ``claim`` says in words what the number is (the headline table shows it), e.g. "MNIST test error, %"."""
    lo, hi = band
    return {"name": name, "split": split, "paper": paper, "band": [lo, hi], "ours": rounded(ours),
            "passed": bool(lo <= ours and (hi is None or ours <= hi)), **({"claim": claim} if claim else {}),
            **extra}


def rounded(x: float) -> float:
    """``x`` to 4 decimals, or to 4 significant digits when it is smaller than 0.001 (a loss of 5.8e-5 stays
    5.8e-5 instead of becoming 0.0001)."""
    x = float(x)
    if x == 0 or not math.isfinite(x) or abs(x) >= 1e-3:
        return round(x, 4)
    return round(x, 3 - math.floor(math.log10(abs(x))))


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        # the code's state: a run's own outputs (results/ folders, tracked) do not make the code "uncommitted"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude,glob)**/results/**"], cwd=REPO_ROOT,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def command_line(argv: list[str] | None = None) -> str:
    """The command as a user would type it from the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        argv[0] = str(script.relative_to(REPO_ROOT))
    except ValueError:
        pass
    return "python " + " ".join(argv)


def model_spec(model: torch.nn.Module, kwargs: dict | None = None, weights: str | None = None) -> dict:
    """How to rebuild ``model``: its module file (relative to the repository), class and constructor
    arguments, and the weights file (relative to the metrics file) that fits it."""
    cls = type(model)
    module = Path(inspect.getfile(cls)).resolve()
    try:
        module = module.relative_to(REPO_ROOT)
    except ValueError:
        pass
    spec = {"module": module.as_posix(), "class": cls.__name__, "kwargs": dict(kwargs or {})}
    if weights:
        spec["weights"] = weights
    return spec


def write_metrics(out_dir: Path, *, paper: str, metrics: list[dict], model: torch.nn.Module,
                  model_kwargs: dict | None = None, weights: str | None = None, seed: int, epochs: int,
                  wall_time_s: float, device: str, commit: str | None = None,
                  training_time_s: float | None = None, **extra) -> dict:
    """Write ``out_dir/metrics.json`` in the schema of DESIGN.md and return it.

    ``model`` is the trained network (its module, class and ``model_kwargs`` are recorded, see
    :func:`model_spec`). ``commit`` should be :func:`git_commit` taken when the run *started* (the
    code that trained). ``training_time_s`` is the total training time behind the numbers (default
    ``wall_time_s``; larger when parts were trained earlier and read back by --resume).
    """
    record = {
        "paper": paper,
        "metrics": metrics,
        "model": model_spec(model, model_kwargs, weights),
        "command": command_line(),
        "seed": seed,
        "epochs": epochs,
        "wall_time_s": round(wall_time_s, 1),
        "training_time_s": round(training_time_s if training_time_s is not None else wall_time_s, 1),
        "device": device,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__.split("+")[0],
        "commit": commit or git_commit(),
        "date": _dt.date.today().isoformat(),
        **extra,
    }
    write_json(record, Path(out_dir) / "metrics.json")
    return record


# --------------------------------------------------------------------------- tables


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) else str(x)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _band(b) -> str:
    return f">= {_fmt(b[0])}" if b[1] is None else f"{_fmt(b[0])} - {_fmt(b[1])}"


def print_metrics(metrics: list[dict], out) -> None:
    """A line per checked number (ours, the paper's, the band, the verdict), then where results went."""
    for m in metrics:
        verdict = "PASSED" if m["passed"] else "outside the band"
        print(f"{m['name']}: {_fmt(m['ours'])} (paper {_fmt(m['paper'])}, band {_band(m['band'])}): {verdict}")
    print(f"results in {out}")


def paper_table(record: dict) -> str:
    rows = ["| Metric | Split | Paper | Band | Ours | Passed |", "|---|---|---|---|---|---|"]
    for m in record["metrics"]:
        rows.append(f"| {m['name']} | {m['split']} | {_fmt(m['paper'])} | {_band(m['band'])} | "
                    f"**{_fmt(m['ours'])}** | {'yes' if m['passed'] else 'NO'} |")
    details = record.get("details")
    if details:  # an optional table of per-run numbers: {"columns": [...], "rows": [[...], ...]}
        rows += ["", "| " + " | ".join(details["columns"]) + " |", "|" + "---|" * len(details["columns"])]
        rows += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in details["rows"]]
    rows.append("")
    rows.append(f"Seed {record['seed']}, {record['epochs']} epochs, training time "
                f"{_minutes(record.get('training_time_s', record['wall_time_s']))} on "
                f"{record['device']}, torch {record['torch']}, commit `{record['commit']}`, {record['date']}. "
                f"Command: {_command(record)}")
    return "\n".join(rows)


# Flags that change where files live, how progress shows, or (--resume: tested to give the same
# weights) whether a run continues an interrupted one; never a number. The headline table leaves
# them out of the command it shows, so that the command reproduces the row from a fresh clone.
LOCATION_FLAGS = {"--data-dir": 1, "--out": 1, "--no-progress": 0, "--resume": 0}


def fp32_by_flag(record: dict) -> bool:
    """The run trained in fp32 where ``--amp`` was a choice: recorded as ``fp32 (--amp ...)`` (runs since
    ``--amp auto|on|off``) or ``hyperparameters.amp`` false (runs before it, when fp32 was the default)."""
    return (str(record.get("precision", "")).startswith("fp32 (--amp")
            or record.get("hyperparameters", {}).get("amp") is False)


def reproduce_command(command: str, record: dict | None = None) -> str:
    """The recorded command without :data:`LOCATION_FLAGS` (the same run, from a fresh clone), and without a bare
    ``--amp`` or ``--amp auto``: runs recorded before ``--amp auto|on|off`` asked for bf16 with a bare ``--amp`` on
    CPUs that compute it natively, which is what the default ``auto`` now picks there (and fp32 where bf16 would
    be emulated). A run of ``record`` that trained in fp32 (:func:`fp32_by_flag`) gets ``--amp off``: ``auto``
    would pick bf16 on such a CPU."""
    words, kept = command.split(), []
    i = 0
    while i < len(words):
        name = words[i].split("=")[0]
        if name in LOCATION_FLAGS:
            i += 1 + (LOCATION_FLAGS[name] if "=" not in words[i] else 0)
            continue
        following = words[i + 1] if i + 1 < len(words) else None
        if words[i] == "--amp=auto" or (words[i] == "--amp" and following not in ("on", "off")):
            i += 1 + (words[i] == "--amp" and following == "auto")
            continue
        kept.append(words[i])
        i += 1
    if record is not None and fp32_by_flag(record) and not any(w.split("=")[0] == "--amp" for w in kept):
        kept += ["--amp", "off"]
    return " ".join(kept)


def _command(record: dict) -> str:
    """The command that reproduces the run, and the one recorded where they differ (e.g. a run continued with
    --resume, or one recorded with a bare --amp)."""
    shown = reproduce_command(record["command"], record)
    return f"`{shown}`" if shown == record["command"] else f"`{shown}` (recorded as `{record['command']}`)"


def top_table(records: dict[str, list[tuple[str | None, dict]]]) -> str:
    rows = ["| Paper | Claim | Paper's value | Band | Ours | Passed | Training time | Hardware | Command |",
            "|---|---|---|---|---|---|---|---|---|"]
    for folder, runs in sorted(records.items()):
        for run_name, rec in runs:
            name = folder if run_name is None else f"{folder} ({run_name})"
            for m in rec["metrics"]:
                claim = m.get("claim") or f"{m['name']} ({m['split']})"
                time_s = m.get("training_time_s", rec.get("training_time_s", rec["wall_time_s"]))
                rows.append(f"| [{name}]({folder}/README.md) | {claim} | {_fmt(m['paper'])} | "
                            f"{_band(m['band'])} | **{_fmt(m['ours'])}** | {'yes' if m['passed'] else 'NO'} | "
                            f"{_minutes(time_s)} | {rec['device']} | `{reproduce_command(rec['command'], rec)}` |")
    return "\n".join(rows)


def find_records(root: Path = REPO_ROOT) -> dict[str, list[tuple[str | None, dict]]]:
    """``{"CNN/lenet5": [(None, metrics.json contents)], ...}`` for every paper with results.

    A paper's rows come from its ``results/metrics.json``. A paper whose claims are separate runs (e.g. the
    small and the medium model) has none; then each ``results/<run>/metrics.json`` gives ``(run, contents)``.
    Beside a ``results/metrics.json``, sub-folders are that run's parts or ablations, and
    ``results/experiments/`` holds probes: neither makes rows."""
    found: dict[str, list] = {}
    for family in FAMILIES:
        for results in sorted((root / family).glob("*/results")):
            if (results / "metrics.json").is_file():
                runs = [(None, results / "metrics.json")]
            else:
                runs = [(path.parent.name, path) for path in sorted(results.glob("*/metrics.json"))
                        if path.parent.name != "experiments"]
            if runs:
                found[str(results.parent.relative_to(root))] = [(n, json.loads(p.read_text())) for n, p in runs]
    return found


def runs_table(runs: list[tuple[str | None, dict]]) -> str:
    """A paper's results block: its one run's table, or one table per named run under its name."""
    if len(runs) == 1 and runs[0][0] is None:
        return paper_table(runs[0][1])
    return "\n\n".join(paper_table(rec) if name is None else f"**{name}** (`results/{name}/`)\n\n{paper_table(rec)}"
                        for name, rec in runs)


def replace_block(text: str, table: str, begin: str = BEGIN, end: str = END) -> str:
    """``text`` with what lies between the markers ``begin`` and ``end`` replaced by ``table``."""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {begin} ... {end} block")
    return pattern.sub(lambda _: f"{begin}\n{table}\n{end}", text)


def render(root: Path = REPO_ROOT) -> dict[Path, str]:
    """The new text of every README that holds a results block (or a perf block with a perf.json to fill it)."""
    from common import papers               # the paper list and the running block (it imports this module)

    records = find_records(root)
    top = replace_block((root / "README.md").read_text(), top_table(records))
    if papers.PAPERS[0] in top:             # the paper list and the running block, where the README has them
        listed = papers.load(root, FAMILIES)
        top = replace_block(top, papers.papers_table(listed, records), *papers.PAPERS)
        top = replace_block(top, papers.running_block(listed, records), *papers.RUNNING)
    out = {root / "README.md": top}
    for folder, runs in records.items():
        readme = root / folder / "README.md"
        if readme.exists():
            out[readme] = replace_block(readme.read_text(), runs_table(runs))
    from common.perf import fill_perf_blocks    # each card's perf block, from its perf.json (imports this module)
    return fill_perf_blocks(root, out)


def stale_readmes(root: Path = REPO_ROOT) -> list[Path]:
    """READMEs whose results table disagrees with the metrics files."""
    return [path for path, text in render(root).items() if path.read_text() != text]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only report out-of-date tables (exit 1 if any)")
    args = p.parse_args(argv)
    from common import comparisons     # the cross-paper page, made from the same files (it imports this module)

    if args.check:
        stale = stale_readmes() + ([REPO_ROOT / comparisons.PAGE] if comparisons.stale(REPO_ROOT) else [])
        for path in stale:
            print(f"out of date: {path.relative_to(REPO_ROOT)} (run: python -m common.results)")
        return 1 if stale else 0
    for path, text in render().items():
        if path.read_text() != text:
            path.write_text(text)
            print(f"updated {path.relative_to(REPO_ROOT)}")
    if comparisons.write(REPO_ROOT):
        print(f"updated {comparisons.PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

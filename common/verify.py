"""Re-measure every shipped number: each paper's committed model, evaluated afresh on its test set with the
project's code, against the value its ``results/metrics.json`` claims.

    python -m common.verify                   # every paper (at most about 10 minutes on a 2-core CPU)
    python -m common.verify --paper lenet5    # one paper (its folder name, or family/name)
    python -m common.verify --fast            # the stated subset that CI runs (a minute or two)

A paper takes part by defining ``verify(results, record, *, fast) -> list[Check]`` in its ``train.py``:
``results`` is the folder of one run (``results/`` or ``results/<run>/``), ``record`` its metrics file. The
papers are found through their metrics files (``common.results.find_records``) and their ``train.py`` is
imported by name when this command runs: ``common`` itself imports no paper folder.

Where an evaluation is stochastic (importance sampling, a Parzen estimate from generated samples) or slow, a
paper re-measures on a subset or with fewer samples, says so in ``how``, and derives its tolerance from the
standard error. Where no weights are shipped (over the size budget), the check says so and counts as
neither agreeing nor disagreeing. Exit status 1 when a re-measured value disagrees with its claim.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from common.data import REPO_ROOT, TensorLoader, to_unit_float
from common.results import find_records
from common.summary import count_parameters
from common.training import describe_device, evaluate


@dataclass
class Check:
    """One claim re-measured: ``measured`` None when it cannot be (``how`` says why)."""

    claim: str
    claimed: float
    measured: float | None
    tolerance: float
    how: str
    paper: str = ""

    @property
    def agrees(self) -> bool | None:
        return None if self.measured is None else abs(self.measured - self.claimed) <= self.tolerance


def claimed(record: dict, name: str) -> float:
    """The value ``record`` claims for the metric ``name`` (``ours`` of that metric, else a top-level key)."""
    for m in record.get("metrics", []):
        if m["name"] == name:
            return m["ours"]
    if name in record:
        return record[name]
    raise KeyError(f"{name} is neither a metric nor a key of the metrics file")


def test_error_pct(model: torch.nn.Module, data, step, *, transform=to_unit_float, batch_size: int = 1000,
                   amp: bool = False) -> float:
    """``model``'s error (%) on the test images of ``data`` (``test_x``, ``test_y``; ``transform`` as
    :class:`~common.data.TensorLoader`'s), evaluated by ``step`` on the CPU, in fp32 unless ``amp``: the figure a
    classification run records after its last epoch."""
    loader = TensorLoader(data.test_x, data.test_y, batch_size=batch_size, transform=transform)
    return evaluate(model, loader, step, torch.device("cpu"), amp=amp)["error_pct"]


def parameters_check(record: dict, model: torch.nn.Module) -> Check:
    """``parameters_M`` counted afresh (metrics.json keeps 4 decimals, hence the tolerance)."""
    return Check("parameters_M", claimed(record, "parameters_M"), count_parameters(model) / 1e6, 5e-5,
                 "counted (metrics.json keeps 4 decimals)")


def rebuild(record: dict, results: Path) -> torch.nn.Module:
    """The network ``record["model"]`` names (module file, class, constructor arguments), with the weights file
    it names beside the metrics file (default ``model.pt``) loaded, on the CPU, in eval mode."""
    from common.training import load_weights

    spec = record["model"]
    module = importlib.import_module(spec["module"].removesuffix(".py").replace("/", "."))
    model = getattr(module, spec["class"])(**spec["kwargs"])
    load_weights(model, results / spec.get("weights", "model.pt"), torch.device("cpu"),
                 fix=f"the shipped weights belong to the metrics file; rerun: {record['command']}")
    return model.eval()


def no_weights(record: dict, results: Path, what: str) -> list[Check]:
    """The checks of a run whose weights are not shipped (over the size budget): nothing re-measured."""
    return [Check(m["name"], m["ours"], None, 0.0, f"no weights shipped ({what}); rerun: {record['command']}")
            for m in record["metrics"]]


def papers(root: Path = REPO_ROOT) -> list[tuple[str, str | None, Path, dict]]:
    """(paper folder, run name or None, the run's results folder, its metrics) for every committed run."""
    out = []
    for folder, runs in find_records(root).items():
        for run_name, record in runs:
            results = root / folder / "results" / (run_name or "")
            out.append((folder, run_name, results, record))
    return out


def verify_run(folder: str, run_name: str | None, results: Path, record: dict, fast: bool) -> list[Check]:
    name = folder + (f" ({run_name})" if run_name else "")
    module = importlib.import_module(folder.replace("/", ".") + ".train")
    check = getattr(module, "verify", None)
    if check is None:
        found = [Check(m["name"], m["ours"], None, 0.0, "no re-check defined") for m in record["metrics"]]
    else:
        found = check(results, record, fast=fast)
    for c in found:
        c.paper = name
    return found


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.6g}"


def table(checks: list[Check]) -> str:
    rows = ["| Paper | Claim | Claimed | Re-measured | Tolerance | Agree | How |", "|---|---|---|---|---|---|---|"]
    for c in checks:
        agree = {True: "yes", False: "**NO**", None: "not checked"}[c.agrees]
        rows.append(f"| {c.paper} | {c.claim} | {_fmt(c.claimed)} | {_fmt(c.measured)} | {_fmt(c.tolerance)} | "
                    f"{agree} | {c.how} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--paper", default=None, help="only this paper: its folder name (lenet5) or family/name")
    p.add_argument("--fast", action="store_true",
                   help="the subset CI runs: smaller test subsets and fewer samples where a paper defines them")
    args = p.parse_args(argv)
    torch.set_grad_enabled(False)
    runs = [r for r in papers() if args.paper is None or args.paper in (r[0], r[0].split("/")[-1])]
    if not runs:
        print(f"error: no paper with committed results matches --paper {args.paper}", file=sys.stderr)
        return 2
    t0, checks = time.perf_counter(), []
    print(f"re-measuring {len(runs)} run(s) on {describe_device(torch.device('cpu'))}"
          f"{' (--fast)' if args.fast else ''}", flush=True)
    for folder, run_name, results, record in runs:
        t = time.perf_counter()
        found = verify_run(folder, run_name, results, record, args.fast)
        checks += found
        print(f"  {found[0].paper if found else folder}: {time.perf_counter() - t:.1f} s", flush=True)
    print(table(checks))
    disagree = [c for c in checks if c.agrees is False]
    print(f"{sum(c.agrees is True for c in checks)} agree, {len(disagree)} disagree, "
          f"{sum(c.agrees is None for c in checks)} not checked; {time.perf_counter() - t0:.0f} s")
    return 1 if disagree else 0


if __name__ == "__main__":
    raise SystemExit(main())

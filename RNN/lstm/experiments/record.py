"""What every experiment script shares: its flags, the run wrapper, and its one record file.

A script ``experiments/<name>.py`` writes ``RNN/lstm/results/experiments/<name>/<name>.json``:
{"experiment", "purpose", "runs": {variant: {"metrics", "settings", "trials", "training_time_s", "provenance":
[{"seeds", "command", "commit", "date", "device"}]}}}. Each run of the script adds (or replaces) its own
variant, so that one file holds every variant of the experiment. Trials use the loops of ``RNN/lstm/trials.py``,
seeded as train.py seeds them.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
from pathlib import Path

import torch

from common.cli import Run, positive_int, run
from common.data import REPO_ROOT
from common.results import command_line, metric, print_metrics
from common.training import describe_device
from RNN.lstm.trials import reber_trial, run_trials, sizes, write_record

PAPER_DIR = Path(__file__).resolve().parents[1]
RESULTS = PAPER_DIR / "results" / "experiments"


def parser(doc: str) -> argparse.ArgumentParser:
    """Flags every experiment has; the script adds its own."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="first trial's seed (validation trials: 100 and up)")
    p.add_argument("--trials", type=positive_int, default=10, help="trials (seeds seed .. seed+n-1)")
    p.add_argument("--max-sequences", type=positive_int, default=None, help="a trial gives up after this many")
    p.add_argument("--workers", type=positive_int, default=2, help="Reber: trials side by side in processes")
    p.add_argument("--quick", action="store_true", help="seconds, tiny sizes; writes runs/lstm-<name>-quick")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: results/experiments/<name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (a line per reporting interval)")
    return p


def main(train, args: argparse.Namespace, name: str) -> int:
    """Run ``train(r)`` under common.cli.run (one ``error:`` line and exit 2 on bad input, 1 on a NaN loss)."""
    if args.out is None:
        args.out = REPO_ROOT / "runs" / f"lstm-{name}-quick" if args.quick else RESULTS / name
    vars(args).update(device="cpu", resume=False, checkpoint_every=20_000)
    for key, default in (("lr", None), ("T", 100)):
        vars(args).setdefault(key, default)
    return run(train, sizes(args), PAPER_DIR)


def variant(args, base: str) -> str:
    """The run's key in the record: ``base``, plus its seeds and cap where they are not the final runs' (0-9, the
    default cap)."""
    seeds = "" if (args.seed, args.trials) == (0, 10) else f"-seeds{args.seed}-{args.seed + args.trials - 1}"
    return base + seeds + (f"-cap{args.max_sequences}" if args.max_sequences else "")


def reber_trials(args, **hooks) -> list[dict]:
    """``args.trials`` Reber trials with :func:`RNN.lstm.trials.reber_trial`'s ``hooks`` (model, update, lr, data)."""
    return run_trials(functools.partial(reber_trial, args=args, **hooks), range(args.seed, args.seed + args.trials),
                      args.workers)


def split(args) -> str:
    return "validation" if args.seed >= 100 else "test"


def solved_metric(name: str, trials: list[dict], args, claim: str, paper_rate: float = 1.0) -> dict:
    """Reber trials solved against the paper's rate (Table 1) and our band (at least 80% of the trials)."""
    n, solved = len(trials), [t["sequences"] for t in trials if t["solved"]]
    paper = n if paper_rate == 1 else round(paper_rate * n, 1)
    return metric(name, len(solved), paper=paper, band=(math.ceil(0.8 * n), n), split=split(args),
                  claim=f"Embedded Reber grammar: trials solved of {n}; {claim}", strings_to_solve=solved)


def wrong_metric(name: str, trials: list[dict], args, claim: str) -> dict:
    """Adding problem: test sequences wrong, mean over the trials, against Table 7 (1) and our band (at most 3)."""
    wrong = [t["test_wrong"] for t in trials]
    return metric(name, sum(wrong) / len(wrong), paper=1, band=(0, 3), split=split(args), per_trial=wrong,
                  claim=f"Adding problem, T = {args.T}: test sequences wrong of {args.test_size:,}, mean of "
                        f"{len(wrong)} trials; {claim}", trials_in_band=sum(w <= 3 for w in wrong))


def load(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def save_run(r: Run, name: str, purpose: str, variant: str, metrics: list[dict], settings: dict,
             trials: list[dict]) -> dict:
    """Add this run's variant to the experiment's record file and print its metrics."""
    path = r.out / f"{name}.json"
    rec = load(path) if path.exists() else {"experiment": name, "runs": {}}
    rec["purpose"] = purpose
    rec["runs"][variant] = {
        "metrics": metrics, "settings": settings, "trials": [{k: v for k, v in t.items() if k != "model"}
                                                             for t in trials],
        "training_time_s": round(sum(t["train_time_s"] for t in trials), 1),
        "provenance": [{"seeds": [t["seed"] for t in trials], "command": command_line(), "commit": r.commit,
                        "date": datetime.date.today().isoformat(), "device": describe_device(torch.device("cpu"))}]}
    write_record(rec, path)
    print_metrics(metrics, path)
    return rec["runs"][variant]

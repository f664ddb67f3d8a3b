"""Probes of train.py's choices on JSB Chorales, each a full run, compared on the validation NLL (EXPERIMENTS.md).

    python CNN/tcn/experiments/probes.py                 # every probe not run yet
    python CNN/tcn/experiments/probes.py --only batch8   # one of them

Each probe is train.py with a few flags changed, written to results/experiments/probes/<name>/ (metrics,
history, curves; the weights stay untracked). The summary table (validation NLL first: that is what chooses;
the test NLL is listed for the record, not used) goes to results/experiments/probes/summary.md.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from CNN.tcn import train
from common.probes import probe_main

OUT = Path(__file__).resolve().parents[1] / "results" / "experiments" / "probes"
PROBES = {
    "batch8": ["--batch-size", "8"],                    # padded batches: fewer, larger steps
    "batch16": ["--batch-size", "16"],
    "noclip": ["--clip", "0"],                          # as the authors' code runs (its clip call precedes backward)
    "lr1e-3": ["--lr", "1e-3"],                         # the code's default learning rate
}


DEFAULT = Path(__file__).resolve().parents[1] / "results" / "jsb" / "metrics.json"   # train.py's own run


def summary(out: Path = OUT) -> str:
    lines = ["| Probe | Flags | Best validation NLL (epoch) | Test NLL | Epochs | Minutes |",
             "|---|---|---|---|---|---|"]
    runs = {"train.py (results/jsb)": ([], DEFAULT)} | {name: (flags, out / name / "metrics.json")
                                                        for name, flags in PROBES.items()}
    for name, (flags, path) in runs.items():
        if not path.exists():
            continue
        rec = json.loads(path.read_text())
        lines.append(f"| {name} | `{' '.join(flags) or '(defaults)'}` | {rec['valid_nll']:.4f} ({rec['best_epoch']}) | "
                     f"{rec['metrics'][0]['ours']:.4f} | {rec['epochs']} | {rec['training_time_s'] / 60:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    return probe_main(__doc__, PROBES, OUT, lambda name, out, rest: train.main(
        ["--no-progress", "--out", str(out), *PROBES[name], *rest]), summary, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Probes of the fine-tuning learning rate of SdA-3, chosen on the validation error (EXPERIMENTS.md).

    python AutoEncoders/stacked_denoising/experiments/probes.py              # every probe not run yet
    python AutoEncoders/stacked_denoising/experiments/probes.py --only lr0.3

Every probe fine-tunes the autoencoders that train.py pretrained (results/pretrain-1..3, copied, so that only
the fine-tuning differs) with other flags, in results/experiments/probes/<name>/. The choice is made on the
validation error; the test error is listed for the record. The summary goes to
results/experiments/probes/summary.md.

Why the learning rate: train.py fine-tunes with batches of 10 at 1.0 on the mean loss, i.e. 0.1 per example, as
the authors' group's tutorial code does one example at a time; its first default was 0.1 (0.01 per example).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from AutoEncoders.stacked_denoising import train
from common.probes import probe_main

RESULTS = train.PAPER_DIR / "results"
OUT = RESULTS / "experiments" / "probes"
PROBES = {"lr0.1": ["--lr", "0.1"], "lr0.3": ["--lr", "0.3"]}


def summary(out: Path = OUT) -> str:
    lines = ["| Probe | Flags | Best validation error % (epoch) | Test error % | Fine-tuning epochs |",
             "|---|---|---|---|---|"]
    runs = {"train.py (results/)": ([], RESULTS / "metrics.json")}
    runs |= {name: (flags, out / name / "metrics.json") for name, flags in PROBES.items()}
    for name, (flags, path) in runs.items():
        if path.exists():
            rec = json.loads(path.read_text())
            lines.append(f"| {name} | `{' '.join(flags) or '(defaults: --lr 1.0)'}` | "
                         f"{rec['validation']['error_pct']:.2f} ({rec['validation']['best_epoch']}) | "
                         f"{rec['metrics'][0]['ours']:.2f} | {rec['epochs']} |")
    return "\n".join(lines)


def fine_tune(name: str, out: Path, rest: list[str]) -> int:
    for k in (1, 2, 3):   # train.py's pretrained autoencoders, read back by --resume
        if not (out / f"pretrain-{k}").exists():
            shutil.copytree(RESULTS / f"pretrain-{k}", out / f"pretrain-{k}")
    return train.main(["--no-progress", "--resume", "--out", str(out), *PROBES[name], *rest])


def main(argv=None) -> int:
    return probe_main(__doc__, PROBES, OUT, fine_tune, summary, argv)


if __name__ == "__main__":
    sys.exit(main())

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

import argparse
import json
import shutil
import sys
from pathlib import Path

from AutoEncoders.stacked_denoising import train

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=sorted(PROBES), nargs="+", default=None, help="run these probes only")
    p.add_argument("--out", type=Path, default=OUT, help="folder of the probes' runs")
    args, rest = p.parse_known_args(argv)   # anything else (e.g. --data-dir) goes to train.py
    for name in args.only or PROBES:
        out = args.out / name
        if (out / "metrics.json").exists():
            continue
        for k in (1, 2, 3):   # train.py's pretrained autoencoders, read back by --resume
            if not (out / f"pretrain-{k}").exists():
                shutil.copytree(RESULTS / f"pretrain-{k}", out / f"pretrain-{k}")
        code = train.main(["--no-progress", "--resume", "--out", str(out), *PROBES[name], *rest])
        if code:
            return code
    table = summary(args.out)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the ``<paper>/experiments/probes.py`` scripts share: run train.py once per named set of flags, each into
its own folder (a probe already finished is not run again), then write and print the summary table."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def probe_main(description: str, probes: dict[str, list[str]], out: Path,
               run: Callable[[str, Path, list[str]], int], summary: Callable[[Path], str], argv=None) -> int:
    """``--only`` picks probes, ``--out`` their folder; any other argument goes to ``run(name, folder, rest)``
    (which returns train.py's exit status). ``summary(out)`` goes to ``out/summary.md`` and is printed."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=sorted(probes), nargs="+", default=None, help="run these probes only")
    p.add_argument("--out", type=Path, default=out, help="folder of the probes' runs")
    args, rest = p.parse_known_args(argv)   # anything else (e.g. --data-dir) goes to train.py
    for name in args.only or probes:
        if (args.out / name / "metrics.json").exists():
            continue
        code = run(name, args.out / name, rest)
        if code:
            return code
    table = summary(args.out)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)
    return 0

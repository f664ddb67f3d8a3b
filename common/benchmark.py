"""What the speed benchmarks of the paper folders (``<paper>/experiments/benchmark.py``) share: pipelines timed
in interleaved slices, and a report that is printed and kept as the benchmark's record.

Timings on a shared machine are noisy: every pipeline runs a warm-up slice, then the pipelines take turns,
one slice each per round, so that drifts in machine load hit all of them alike; read the medians and ratios.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Protocol

from common.fileio import atomic_target


class Pipeline(Protocol):
    times: list[float]

    def train(self, n: int) -> float:
        """Seconds to train on the next ``n`` batches."""


class Report:
    """Lines printed as they come and written at the end to a text file: the benchmark's record."""

    def __init__(self):
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def write(self, path: Path) -> None:
        with atomic_target(path) as target:
            target.write_text("\n".join(self.lines) + "\n")
        print(f"written to {path}")


def time_interleaved(pipelines: dict[str, Pipeline], n: int, repeats: int, warmup: int | None = None) -> None:
    """A warm-up slice of ``warmup`` (default ``n``) batches per pipeline, then ``repeats`` rounds in which
    every pipeline trains ``n`` batches in turn; each slice's seconds go to the pipeline's ``times``."""
    for pipe in pipelines.values():
        pipe.train(warmup or n)
    for _ in range(repeats):
        for pipe in pipelines.values():
            pipe.times.append(pipe.train(n))


def rates(pipelines: dict[str, Pipeline], items: int, unit: str, report: Report, width: int = 50) -> dict[str, float]:
    """Items per second of every pipeline (median over its slices of ``items`` items), one report line each."""
    out = {}
    for name, pipe in pipelines.items():
        out[name] = items / statistics.median(pipe.times)
        spread = ", ".join(f"{items / t:,.0f}" for t in pipe.times)
        report.say(f"{name:<{width}}{out[name]:>10,.0f} {unit}/s   (slices: {spread})")
    return out

"""What the speed benchmarks of the paper folders (``<paper>/experiments/benchmark.py``) share: pipelines timed
in interleaved slices, and a report that is printed and kept as the benchmark's record.

Timings on a shared machine are noisy: every pipeline runs a warm-up slice, then the pipelines take turns,
one slice each per round, so that drifts in machine load hit all of them alike; read the medians and ratios.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from pathlib import Path
from typing import Callable, Iterable, Protocol

import torch

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


# --------------------------------------------------------------------------- the usual CIFAR-10 pipeline


def cifar10_race_parser(doc: str, *, batches: int, out: Path) -> argparse.ArgumentParser:
    """The flags of a CIFAR-10 data-pipeline race (ResNet's and the CCT's ``experiments/benchmark.py``)."""
    from common.cli import positive_int

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="writable data root (as in train.py)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto = CUDA if available")
    p.add_argument("--batches", type=positive_int, default=batches, help="batches per timed slice")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed slices per pipeline (interleaved)")
    p.add_argument("--workers", type=int, nargs="+", default=[2, 0], help="DataLoader num_workers to try")
    p.add_argument("--out", type=Path, default=out, help="folder for <device>.txt (what is printed)")
    return p


def write_python_version(x: torch.Tensor, y: torch.Tensor, root: Path, classes: Iterable[str]) -> Path:
    """Training images in the layout of ``cifar-10-python.tar.gz`` (five pickled batches + meta) under ``root``,
    so that torchvision's own ``CIFAR10`` class reads them (the mirror holds the binary version)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    flat = x.reshape(len(x), -1).numpy()
    for i, part in enumerate(torch.arange(len(x)).chunk(5), start=1):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": flat[part.numpy()], "labels": y[part].tolist()}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(classes)}, f)
    return root


def usual_cifar10(root: Path, transform):
    """torchvision's ``CIFAR10`` training set of :func:`write_python_version`'s files, handing out PIL images
    through ``transform``: what most training scripts use."""
    from torchvision import datasets

    class CIFAR10(datasets.CIFAR10):
        # our own files: torchvision's md5 sums are those of the original archive (None = only check they exist)
        train_list = [(name, None) for name, _ in datasets.CIFAR10.train_list]
        test_list = []      # only the training images are read here
        meta = {**datasets.CIFAR10.meta, "md5": None}

    return CIFAR10(str(root), train=True, transform=transform, download=False)


def endless(loader):
    while True:
        yield from loader


class TrainingPipeline:
    """One way of training, for :func:`time_interleaved`: a stream of batches, a model and its optimiser, the
    step's memory layout and precision, and the loss: ``loss_fn(model(images), labels)`` on (images, labels)
    batches, or a ``step(model, batch) -> (loss, logs)`` as ``train.py`` passes to ``common.training.fit``."""

    def __init__(self, batches, model: torch.nn.Module, optimizer: torch.optim.Optimizer, device: torch.device, *,
                 channels_last: bool = False, amp: bool, loss_fn: Callable = torch.nn.functional.cross_entropy,
                 step: Callable | None = None):
        from common.training import autocast

        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.optimizer, self.autocast = optimizer, lambda: autocast(device, amp)
        self.step = step or (lambda model, batch: (loss_fn(model(batch[0].to(device, non_blocking=True)),
                                                           batch[1].to(device, non_blocking=True)), {}))
        self.batches, self.device, self.times = batches, device, []

    def train(self, n_batches: int) -> float:
        """Seconds to train on ``n_batches`` batches (synchronised with the device at the end)."""
        t0 = time.perf_counter()
        for _ in range(n_batches):
            with self.autocast():
                loss, _ = self.step(self.model, next(self.batches))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

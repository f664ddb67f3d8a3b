"""The performance analysis of a paper card, measured the same way for every paper.

A paper's ``experiments/perf.py`` describes its training step (and evaluation step) as a :class:`Workload` built by
a module-level function, wraps that function and its arguments in a :class:`Builder` (:func:`builder`), and calls
:func:`measure`, which writes ``results/experiments/perf/perf.json`` and ``scaling.png``. ``python -m
common.results`` then renders the card's ``<!-- perf:begin -->`` ... ``<!-- perf:end -->`` block from that file
(:func:`fill_perf_blocks`, :func:`render_markdown`).

What is measured, and how:

* **Throughput and step time.** After a warm-up (at least ``warmup_steps`` steps and ``warmup_s`` seconds), a few
  timed slices of n consecutive steps (n chosen so that a slice lasts about ``slice_s``), synchronised with the
  device at the end of each slice. Reported: the median over the slices of items per second and of the time of
  one step. The time of one epoch is *implied*: the epoch's items divided by that throughput.
* **Peak memory**, of training and of evaluation, each in a fresh process (forked from a clean forkserver that
  has only imported torch and the paper's modules, so that no allocator cache, no warm-up and no other
  measurement of this process leaks in). On the CPU (Linux): the process's private resident memory is read
  (``RssAnon + RssShmem`` of ``/proc/self/status``), the high-water mark of its resident set is reset
  (``/proc/self/clear_refs``), the workload is built and runs a few steps, and the high-water mark (``VmHWM``)
  is read; minus the file-backed pages resident at the end (``RssFile``: the code of torch's libraries, paged
  in as kernels are first used and shared with every other process), and minus the private memory at the
  start, it is the private memory that building the model and running those steps *added* at their peak, as
  the operating system counts it: weights, gradients, optimiser state, activations, autocast's weight copies,
  oneDNN/BLAS workspaces, allocator slack. That is what a machine must provide; it is not an estimate from
  tensor shapes, and it counts memory that torch's own counters do not see. (It is exact but for code pages
  first touched after the peak, which would make it a slight underestimate.) The input data handed to the
  process (a slice of the dataset) is in its memory before the first reading, so it is not part of the figure;
  the dataset that a full run keeps in memory is reported beside it (``data_mib``, its tensors' bytes). On
  CUDA: ``torch.cuda.max_memory_allocated`` of the fresh process (tensors only, the CUDA context excluded).
* **Scaling**: the same timing and memory measurement at three or more points of the paper's own size axis
  (fewer steps per point; at most ``max_steps``).
* **Profile** of the training step: ``torch.profiler`` over a few steps, the top operations by self CPU time with
  their share of the profiled wall time (NumPy loops: ``cProfile``, the top functions by own time).
* The machine (:func:`common.training.describe_device`) and the precision, as the paper's ``train.py`` decides it
  (``--amp auto``: :func:`common.training.choose_amp`).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as _dt
import gc
import importlib
import json
import math
import multiprocessing
import pickle
import pstats
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from common.data import REPO_ROOT
from common.fileio import UserError
from common.results import FAMILIES, command_line, git_commit, replace_block
from common.training import (autocast, choose_amp, describe_device, describe_precision, resolve_device,
                             seed_everything, sgd_update, write_json)

PERF_BEGIN, PERF_END = "<!-- perf:begin -->", "<!-- perf:end -->"
PERF_DIR = Path("results") / "experiments" / "perf"      # relative to a paper folder
MIB = 2**20


# --------------------------------------------------------------------------- what a paper describes


@dataclass
class Workload:
    """A model with its training step and (optionally) its evaluation step, ready to run.

    ``train_step()`` does one iteration of the paper's training (next batch, forward, backward, update) and
    returns the items it processed (images, frames, words, ...), or None for ``items``. ``eval_step()`` likewise
    for one batch of the paper's evaluation. ``profiler``: "torch" (torch.profiler), or "python" (cProfile) for a
    step written in NumPy. ``info``: extra numbers for the scaling table (e.g. the receptive field). ``cycle``:
    the steps after which the batches come round again, where they differ in shape (pieces of music of different
    lengths): the warm-up and the memory measurement run through all of them."""

    model: torch.nn.Module
    train_step: Callable[[], int | None]
    items: int
    eval_step: Callable[[], int | None] | None = None
    eval_items: int | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    profiler: str = "torch"
    info: dict = field(default_factory=dict)
    cycle: int = 1

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


@dataclass
class Builder:
    """A picklable recipe for a :class:`Workload`: a module-level function (by module and name) and its keyword
    arguments, so that a fresh process can build the same workload (:func:`builder` makes one)."""

    module: str
    name: str
    kwargs: dict

    def __call__(self) -> Workload:
        return getattr(importlib.import_module(self.module), self.name)(**self.kwargs)


def _importable_module(fn: Callable) -> str:
    """The module name a fresh process imports ``fn`` from: a script run as ``python path/to/perf.py`` is
    ``__main__`` here, and its dotted path from the repository root there."""
    module = fn.__module__
    if module != "__main__":
        return module
    main = sys.modules["__main__"]
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and not spec.name.endswith("__main__"):
        return spec.name
    return ".".join(Path(main.__file__).resolve().relative_to(REPO_ROOT).with_suffix("").parts)


def builder(fn: Callable[..., Workload], **kwargs) -> Builder:
    """``Builder`` of ``fn(**kwargs)``; ``fn`` must be defined at the top level of an importable module."""
    return Builder(_importable_module(fn), fn.__name__, kwargs)


def endless(loader) -> Iterable:
    """Batches of ``loader`` without end, a new epoch (``set_epoch``) after each pass."""
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def fit_step(model: torch.nn.Module, optimizer, step, loader, *, device: torch.device, amp: bool,
             update: Callable = sgd_update) -> Callable[[], int]:
    """One iteration of :func:`common.training.fit` as a ``train_step``: the next batch of ``loader``, the paper's
    ``step`` under autocast with fit's finiteness check, its ``update``; returns the step's ``n``."""
    batches = endless(loader)
    model.train()

    def train_step() -> int:
        batch = next(batches)
        count = {}

        def forward():
            with autocast(device, amp):
                loss, sums = step(model, batch)
            if not math.isfinite(loss.item()):
                raise RuntimeError(f"loss became {loss.item()} while timing")
            count.update(sums)
            return loss

        update(forward, model, optimizer)
        return int(count.get("n", 0)) or None

    return train_step


def eval_step(model: torch.nn.Module, step, loader, *, device: torch.device, amp: bool) -> Callable[[], int]:
    """One batch of :func:`common.training.evaluate` as an ``eval_step`` (eval mode, no gradient, autocast)."""
    batches = endless(loader)

    def run() -> int:
        model.eval()
        try:
            with torch.no_grad(), autocast(device, amp):
                _, sums = step(model, next(batches))
        finally:
            model.train()
        return int(sums.get("n", 0)) or None

    return run


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Budget:
    """How long to measure one phase of one point."""

    warmup_steps: int = 2
    warmup_s: float = 1.0
    slice_s: float = 2.0
    repeats: int = 5
    max_steps: int = 300        # timed steps of all slices together
    profile_steps: int = 3
    memory_steps: int = 3


MAIN, SWEEP = Budget(), Budget(warmup_s=0.5, slice_s=1.5, repeats=3)
QUICK = Budget(warmup_steps=1, warmup_s=0.0, slice_s=0.0, repeats=2, max_steps=2, profile_steps=1, memory_steps=2)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(run: Callable[[], int | None], items: int, device: torch.device, budget: Budget,
               warmup: int = 1) -> dict:
    """Warm-up (at least ``warmup`` steps), then ``budget.repeats`` timed slices of n steps: the medians of items/s
    and of the step time."""
    t0, n, last = time.perf_counter(), 0, 0.0
    while n < max(budget.warmup_steps, warmup) or time.perf_counter() - t0 < budget.warmup_s:
        ts = time.perf_counter()
        run()
        _sync(device)
        last, n = time.perf_counter() - ts, n + 1
    per_slice = max(1, min(round(budget.slice_s / max(last, 1e-6)), budget.max_steps // budget.repeats))
    rates, step_times, counted = [], [], 0
    for _ in range(budget.repeats):
        done, ts = 0, time.perf_counter()
        for _ in range(per_slice):
            got = run()
            done += items if got is None else got
        _sync(device)
        dt = time.perf_counter() - ts
        rates.append(done / dt)
        step_times.append(dt / per_slice)
        counted += done
    return {"items_per_s": round(statistics.median(rates), 2),
            "step_ms": round(1000 * statistics.median(step_times), 3),
            "items_per_step": round(counted / (budget.repeats * per_slice), 2), "warmup_steps": n,
            "steps_timed": budget.repeats * per_slice, "slice_items_per_s": [round(r, 2) for r in rates]}


# --------------------------------------------------------------------------- profile of a step


def profile_torch(run: Callable, steps: int, device: torch.device, top: int = 8) -> dict:
    """``torch.profiler`` over ``steps`` steps: the ``top`` operations by self CPU time, per step and as a share of
    the profiled wall time; ``ops_share_pct``: the share of all torch operations together (the rest is Python)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            run()
        _sync(device)
        wall_us = (time.perf_counter() - t0) * 1e6
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    ops = [{"name": e.key, "self_ms": round(e.self_cpu_time_total / 1000 / steps, 3),
            "share_pct": round(100 * e.self_cpu_time_total / wall_us, 1), "calls": round(e.count / steps, 1)}
           for e in events[:top]]
    return {"tool": "torch.profiler, self CPU time", "steps": steps, "step_ms": round(wall_us / 1000 / steps, 3),
            "ops": ops, "ops_share_pct": round(100 * sum(e.self_cpu_time_total for e in events) / wall_us, 1)}


def _function_name(key: tuple) -> str:
    filename, line, name = key
    if filename == "~":                     # a built-in: "<method 'outer' of ...>", "<built-in method numpy...>"
        return name.strip("<>")
    return f"{Path(filename).name}:{line}({name})"


def profile_python(run: Callable, steps: int, top: int = 8) -> dict:
    """``cProfile`` over ``steps`` steps (for a step written in NumPy): the ``top`` functions by own time."""
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    for _ in range(steps):
        run()
    prof.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)
    ops = [{"name": _function_name(key), "self_ms": round(1000 * tt / steps, 3),
            "share_pct": round(100 * tt / wall, 1), "calls": round(nc / steps, 1)}
           for key, (cc, nc, tt, ct, callers) in rows[:top]]
    return {"tool": "cProfile, own time (its per-call overhead inflates small calls)", "steps": steps,
            "step_ms": round(1000 * wall / steps, 3), "ops": ops, "ops_share_pct": None}


# --------------------------------------------------------------------------- peak memory in a fresh process


def _status_kib() -> dict[str, int]:
    """The memory lines of ``/proc/self/status`` (VmRSS, VmHWM, RssAnon, RssFile, RssShmem) in KiB; {} elsewhere."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in lines if line.startswith(("Vm", "Rss")))}


def _private_kib(status: dict[str, int]) -> int:
    return status["RssAnon"] + status["RssShmem"]


def _reset_peak_rss() -> bool:
    """Set the high-water mark VmHWM to the current resident set (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Give freed heap memory back to the system (glibc), so the first reading holds no freed pages."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _build(made: Builder) -> Workload:
    seed_everything(0)
    return made()


def _memory_child(payload: bytes, phase: str, steps: int, threads: int, conn) -> None:
    try:
        torch.set_num_threads(threads)
        made = pickle.loads(payload)       # the input data now sit in this process's own memory
        del payload
        _trim_heap()
        before = _status_kib()
        exact = "RssAnon" in before and _reset_peak_rss()
        work = _build(made)
        built = _status_kib()
        run = work.train_step if phase == "train" else work.eval_step
        for _ in range(max(steps, work.cycle if phase == "train" else 1)):
            run()
        _sync(work.device)
        if work.device.type == "cuda":
            result = {"peak_mib": torch.cuda.max_memory_allocated(work.device) / MIB,
                      "build_mib": None, "method": "cuda"}
        elif exact:
            end = _status_kib()
            start = _private_kib(before)
            result = {"peak_mib": (end["VmHWM"] - end["RssFile"] - start) / 1024,
                      "build_mib": (_private_kib(built) - start) / 1024, "method": "rss"}
        else:       # no /proc: the peak since the process started (ru_maxrss: KiB on Linux, bytes on macOS)
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (MIB if sys.platform == "darwin" else 1024)
            result = {"peak_mib": peak, "build_mib": None, "method": "ru_maxrss"}
        conn.send(("ok", result))
    except BaseException:            # everything goes back to the parent, as text
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


MEMORY_METHODS = {
    "rss": "the private resident memory (RSS without file-backed pages) that building the model and running the "
           "steps added to a fresh process at their peak: weights, gradients, optimiser state, activations, "
           "workspaces, as the OS counts them",
    "cuda": "torch.cuda.max_memory_allocated of a fresh process (tensors; the CUDA context excluded)",
    "ru_maxrss": "peak resident set of a fresh process since it started (ru_maxrss; includes the interpreter)",
}

_context = None


def _fresh_processes(module: str):
    """A multiprocessing context whose processes fork from a forkserver that has imported torch and ``module``
    (cheap, and clean: nothing of this process's memory); spawn where there is no forkserver."""
    global _context
    if _context is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            _context = multiprocessing.get_context("forkserver")
            # torch._dynamo: imported by the first optimiser (seconds, and memory that is not training's)
            _context.set_forkserver_preload(["torch", "torch._dynamo", "common.perf", module])
        else:
            _context = multiprocessing.get_context("spawn")
    return _context


def peak_memory(made: Builder, phase: str = "train", steps: int = 3, timeout_s: float = 900) -> dict:
    """Peak memory of building ``made`` and running ``steps`` of its ``phase`` ("train" or "eval") in a fresh
    process; ``peak_mib``, ``build_mib`` (after building, before the first step; CPU only) and ``method``."""
    ctx = _fresh_processes(made.module)
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_memory_child, args=(pickle.dumps(made), phase, steps, torch.get_num_threads(), send))
    proc.start()
    send.close()
    try:
        if not receive.poll(timeout_s):
            proc.kill()
            raise RuntimeError(f"memory measurement of {made.name} ({phase}) took over {timeout_s:.0f} s")
        status, result = receive.recv()
    except EOFError:
        proc.join(timeout=30)
        status, result = "error", f"the measuring process died (exit code {proc.exitcode}; out of memory?)"
    finally:
        proc.join(timeout=30)
        receive.close()
    if status != "ok":
        raise RuntimeError(f"memory measurement of {made.name} ({phase}) failed:\n{result}")
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in result.items()}


# --------------------------------------------------------------------------- one paper's measurement


def _time(work: Workload, phase: str, budget: Budget) -> dict:
    if phase == "train":
        return time_steps(work.train_step, work.items, work.device, budget, work.cycle)
    if work.eval_step is None:
        raise ValueError("this workload has no eval_step")
    return time_steps(work.eval_step, work.eval_items or work.items, work.device, budget)


def measure(*, paper_dir: Path, out: Path, unit: str, workload: str, axis: str, points: list[tuple[str, Builder]],
            main: str | Builder, device: torch.device, precision: str, quick: bool = False,
            sweep_phase: str = "train", eval_unit: str | None = None, eval_desc: str | None = None,
            epoch: tuple[int, str] | tuple[int, str, str] | None = None, extra: Iterable[tuple[str, Builder]] = (),
            notes: Iterable[str] = (), run_metrics: str = "results/metrics.json", data_bytes: int | None = None
            ) -> dict:
    """Measure a paper's training (and evaluation) and write ``out/perf.json`` and ``out/scaling.png``.

    ``points``: (label, builder) along ``axis``, timed in ``sweep_phase`` ("train", or "eval" where the paper's
    size axis is its evaluation's, e.g. importance samples). ``main``: the label of the point that is the paper's
    own setting (or a separate builder): its training and evaluation are measured fully and profiled.
    ``workload``/``eval_desc`` describe its steps in words, ``unit`` names the items (``eval_unit`` those of an
    evaluation step, when they differ). ``epoch``: (items, what[, label]) of one epoch (label "One epoch", or
    e.g. "Training to the stopping rule"). ``extra``: (name, builder) of other training steps of the paper (e.g.
    pretraining), timed only. ``run_metrics``: the metrics file (relative to the paper folder) whose
    ``wall_time_s`` is the whole run's time. ``data_bytes``: the dataset a run holds. Returns what it writes."""
    if len(points) < 3 and not quick:
        raise ValueError("the scaling sweep needs three points or more")
    budget, sweep_budget = (QUICK, QUICK) if quick else (MAIN, SWEEP)
    labels = dict(points)
    main_label = main if isinstance(main, str) else None
    main_builder = labels[main] if isinstance(main, str) else main
    print(f"{paper_dir.name}: {describe_device(device)}; {precision}")

    work = _build(main_builder)
    train = _time(work, "train", budget)
    print(f"  training: {train['items_per_s']:,.1f} {unit}/s, {train['step_ms']:.2f} ms a step")
    evaluation = None
    if work.eval_step is not None:
        evaluation = _time(work, "eval", budget)
        print(f"  evaluation: {evaluation['items_per_s']:,.1f} {eval_unit or unit}/s")
    profile = (profile_python(work.train_step, budget.profile_steps) if work.profiler == "python"
               else profile_torch(work.train_step, budget.profile_steps, device))
    main_row = {"parameters": work.parameters, **work.info}
    del work
    gc.collect()
    memory = {"train": peak_memory(main_builder, "train", budget.memory_steps)}
    if evaluation is not None:
        memory["eval"] = peak_memory(main_builder, "eval", min(budget.memory_steps, 2))   # no state builds up
    print(f"  peak memory: training {memory['train']['peak_mib']:.0f} MiB"
          + (f", evaluation {memory['eval']['peak_mib']:.0f} MiB" if "eval" in memory else ""))

    extras = []
    for name, made in extra:
        w = _build(made)
        t = _time(w, "train", sweep_budget)
        extras.append({"name": name, **{k: t[k] for k in ("items_per_s", "step_ms", "items_per_step")}})
        print(f"  {name}: {t['items_per_s']:,.1f} {unit}/s")
        del w

    rows = []
    for label, made in points:
        if label == main_label:
            timed = train if sweep_phase == "train" else evaluation
            row = {"point": label, **main_row, "peak_mib": memory[sweep_phase]["peak_mib"]}
        else:
            w = _build(made)
            timed = _time(w, sweep_phase, sweep_budget)
            row = {"point": label, "parameters": w.parameters, **w.info}
            del w
            gc.collect()
            steps = sweep_budget.memory_steps if sweep_phase == "train" else min(sweep_budget.memory_steps, 2)
            row["peak_mib"] = peak_memory(made, sweep_phase, steps)["peak_mib"]
        row.update(step_ms=timed["step_ms"], items_per_s=timed["items_per_s"], items_per_step=timed["items_per_step"])
        rows.append(row)
        print(f"  {axis} {label}: {row['step_ms']:.2f} ms a step, {row['items_per_s']:,.1f} items/s, "
              f"{row['peak_mib']:.0f} MiB")

    perf = {
        "paper": paper_dir.relative_to(REPO_ROOT).as_posix() if paper_dir.is_relative_to(REPO_ROOT) else paper_dir.name,
        "machine": describe_device(device), "device": device.type, "threads": torch.get_num_threads(),
        "precision": precision, "torch": torch.__version__.split("+")[0], "commit": git_commit(),
        "date": _dt.date.today().isoformat(), "command": command_line(), "quick": quick,
        "unit": unit, "workload": workload,
        "train": train,
        "epoch": ({"items": epoch[0], "what": epoch[1], "label": epoch[2] if len(epoch) > 2 else "One epoch",
                   "seconds": float(f"{epoch[0] / train['items_per_s']:.4g}")} if epoch else None),
        "eval": {**evaluation, "what": eval_desc, "unit": eval_unit or unit} if evaluation else None,
        "memory": {"method": MEMORY_METHODS[memory["train"]["method"]], "steps": budget.memory_steps,
                   "eval_steps": min(budget.memory_steps, 2),
                   "train_peak_mib": memory["train"]["peak_mib"], "train_build_mib": memory["train"]["build_mib"],
                   "eval_peak_mib": memory.get("eval", {}).get("peak_mib"),
                   "eval_build_mib": memory.get("eval", {}).get("build_mib"),
                   "data_mib": round(data_bytes / MIB, 1) if data_bytes else None},
        "scaling": {"axis": axis, "phase": sweep_phase, "main": main_label, "rows": rows, "plot": "scaling.png",
                    "unit": (eval_unit or unit) if sweep_phase == "eval" else unit},
        "extra": extras,
        "profile": profile,
        "run_metrics": run_metrics,
        "notes": list(notes),
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(perf, out / "perf.json")
    plot_scaling(perf, out / "scaling.png")
    print(f"written to {out / 'perf.json'} and {out / 'scaling.png'}")
    return perf


def plot_scaling(perf: dict, path: Path) -> None:
    """Two small panels along the size axis: the time of one step, and the peak memory."""
    import matplotlib.pyplot as plt

    from common.plots import save_figure

    scaling = perf["scaling"]
    rows = scaling["rows"]
    labels = [r["point"] for r in rows]
    try:
        xs = [float(x) for x in labels]
        numeric = True
    except ValueError:
        xs, numeric = list(range(len(rows))), False
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key, name in ((axes[0], "step_ms", f"one {scaling['phase']} step (ms)"),
                          (axes[1], "peak_mib", "peak memory (MiB)")):
        ax.plot(xs, [r[key] for r in rows], marker="o", ls="-" if numeric else "none")
        if scaling.get("main") in labels:
            i = labels.index(scaling["main"])
            ax.plot([xs[i]], [rows[i][key]], marker="o", ms=10, mfc="none", color="C3", label="the paper's setting")
            ax.legend(fontsize=8)
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
            ax.set_yscale("log")
        if not numeric:
            ax.set_xticks(xs, labels, rotation=15, fontsize=8)
        ax.set(xlabel=scaling["axis"], ylabel=name)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{perf['paper']}: {perf['machine']}, {perf['precision'].split(' (')[0]}", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------- the card's block


def _num(x: float, digits: int = 3) -> str:
    """A number to ``digits`` significant figures, with thousands separators."""
    if x is None:
        return "-"
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:,.{decimals}f}"


def _mib(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}" if abs(x) >= 100 else f"{x:.1f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{_num(seconds)} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def render_markdown(perf: dict, paper_dir: Path) -> str:
    """The card's performance block, from ``perf.json`` and the run's metrics file (its whole time)."""
    unit, train, memory = perf["unit"], perf["train"], perf["memory"]
    lines = [f"Measured on **{perf['machine']}**, {perf['precision']}; torch {perf['torch']}, commit "
             f"`{perf['commit']}`, {perf['date']}, by `{perf['command']}` (figures from another machine are not "
             "comparable)."]
    if perf.get("quick"):
        lines.append("\n**A `--quick` smoke run: these figures are not a measurement.**")
    rows = [("Training throughput", f"**{_num(train['items_per_s'])} {unit}/s** ({perf['workload']}; median of "
                                    f"{len(train['slice_items_per_s'])} timed slices, {train['steps_timed']} steps)"),
            ("One training step", f"{_num(train['step_ms'])} ms ({train['items_per_step']:,g} {unit})")]
    if perf.get("epoch"):
        e = perf["epoch"]
        rows.append((f"{e.get('label', 'One epoch')} ({e['what']})",
                     f"{_duration(e['seconds'])} (implied by the throughput; training steps only)"))
    metrics_path = paper_dir / perf.get("run_metrics", "results/metrics.json")
    if metrics_path.is_file():
        record = json.loads(metrics_path.read_text())
        if "wall_time_s" in record:         # a run continued by --resume: its training time across the parts
            whole = max(record["wall_time_s"], record.get("training_time_s") or 0)
            rows.append(("The whole run", f"{_duration(whole)} on {record.get('device', '?')} "
                                          f"(`{perf.get('run_metrics', 'results/metrics.json')}`)"))
    ev = perf.get("eval")
    if ev:
        what = f" ({ev['what']})" if ev.get("what") else ""
        rows.append(("Evaluation throughput", f"{_num(ev['items_per_s'])} {ev['unit']}/s{what}"))
    rows.append(("Peak memory, training", f"{_mib(memory['train_peak_mib'])} MiB"
                 + (f" (of which building the model: {_mib(memory['train_build_mib'])} MiB)"
                    if memory.get("train_build_mib") is not None else "")))
    if memory.get("eval_peak_mib") is not None:
        rows.append(("Peak memory, evaluation", f"{_mib(memory['eval_peak_mib'])} MiB"))
    if memory.get("data_mib"):
        rows.append(("Dataset held in memory by a run", f"{_mib(memory['data_mib'])} MiB"))
    for e in perf.get("extra", []):
        rows.append((e["name"], f"{_num(e['items_per_s'])} {unit}/s ({_num(e['step_ms'])} ms a step)"))
    lines += ["", "| Quantity | Measured |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows]
    lines += ["", f"Peak memory: {memory['method']}; over {memory['steps']} training steps (at least one pass over "
                  f"batches of different shapes) or {memory.get('eval_steps', memory['steps'])} evaluation steps."]

    scaling = perf["scaling"]
    plot = (PERF_DIR / scaling["plot"]).as_posix()
    info_keys = [k for k in scaling["rows"][0] if k not in
                 ("point", "parameters", "step_ms", "items_per_s", "items_per_step", "peak_mib")]
    header = [scaling["axis"], "parameters", *info_keys, f"one {scaling['phase']} step (ms)",
              f"{scaling['unit']}/s", "peak memory (MiB)"]
    lines += ["", f"How the cost grows with {scaling['axis']} ({scaling['phase']} step; "
                  f"[plot]({plot})):", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in scaling["rows"]:
        point = f"**{r['point']}**" if r["point"] == scaling.get("main") else r["point"]
        cells = [point, f"{r['parameters']:,}", *(str(r.get(k, "")) for k in info_keys), _num(r["step_ms"]),
                 _num(r["items_per_s"]), _mib(r["peak_mib"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"![cost along {scaling['axis']}]({plot})"]

    prof = perf["profile"]
    covered = (f"; the operations listed and the others together take {prof['ops_share_pct']:g}% of it"
               if prof.get("ops_share_pct") is not None else "")
    steps = f"{prof['steps']} steps" if prof["steps"] > 1 else "one step"
    lines += ["", f"Where the time of one training step goes ({prof['tool']}; {steps} of {_num(prof['step_ms'])} ms "
                  f"under the profiler{covered}):", "",
              "| Operation | ms per step | share of the step | calls per step |", "|---|---|---|---|"]
    lines += [f"| `{op['name']}` | {_num(op['self_ms'])} | {op['share_pct']:g}% | {op['calls']:g} |"
              for op in prof["ops"]]
    if perf.get("notes"):
        lines += [""] + [f"- {note}" for note in perf["notes"]]
    return "\n".join(lines)


def fill_perf_blocks(root: Path, texts: dict[Path, str]) -> dict[Path, str]:
    """``texts`` (README path -> new text, as :func:`common.results.render` made them) with every card's perf
    block filled from its paper's ``results/experiments/perf/perf.json``. A card without that file, or without
    the markers, is left as it is."""
    out = dict(texts)
    for family in FAMILIES:
        for readme in sorted((root / family).glob("*/README.md")):
            perf_json = readme.parent / PERF_DIR / "perf.json"
            text = out.get(readme) or readme.read_text()
            if PERF_BEGIN in text and perf_json.is_file():
                block = render_markdown(json.loads(perf_json.read_text()), readme.parent)
                out[readme] = replace_block(text, block, PERF_BEGIN, PERF_END)
    return out


# --------------------------------------------------------------------------- the scripts' command line


def perf_parser(description: str, *, amp: bool = True) -> argparse.ArgumentParser:
    """The flags every ``experiments/perf.py`` shares."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="writable data root (as in train.py)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto = CUDA if available")
    if amp:
        p.add_argument("--amp", default="auto", choices=["auto", "on", "off"],
                       help="bf16 autocast as train.py decides it: auto = where the device computes bf16 natively")
    p.add_argument("--quick", action="store_true", help="seconds, tiny sizes: a smoke test, not a measurement")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: results/experiments/perf; runs/<paper>-perf-quick with --quick)")
    return p


@dataclass
class Setup:
    device: torch.device
    amp: bool
    precision: str
    out: Path


def setup(args: argparse.Namespace, paper_dir: Path, *, needs_native_bf16: bool = False,
          fp32_only: str | None = None, cpu_only: bool = False) -> Setup:
    """Device, precision (the paper's decision: ``--amp auto``, or fp32 where its training is fp32 only, with
    ``fp32_only`` saying why) and output folder of a perf script. ``cpu_only``: a paper that trains on the CPU
    whatever the device (a NumPy loop)."""
    device = torch.device("cpu") if cpu_only else resolve_device(args.device)
    if fp32_only is not None:
        amp, precision = False, f"fp32 ({fp32_only})"
    else:
        amp = choose_amp(args.amp, device, needs_native=needs_native_bf16)
        precision = describe_precision(amp, args.amp, device)
    out = args.out or (REPO_ROOT / "runs" / f"{paper_dir.name}-perf-quick" if args.quick else paper_dir / PERF_DIR)
    return Setup(device, amp, precision, Path(out))


def run_script(main: Callable[[], object]) -> int:
    """Run a perf script's ``main``: bad input (missing data, no GPU) ends in one ``error:`` line, status 2."""
    try:
        main()
        return 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def subset(tensor: torch.Tensor, n: int) -> torch.Tensor:
    """The first ``n`` rows, as a tensor of its own (not a view that would carry the whole dataset along)."""
    return tensor[:n].clone()


def nbytes(*tensors: torch.Tensor) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


__all__ = ["Builder", "Budget", "Workload", "builder", "endless", "eval_step", "fill_perf_blocks", "fit_step",
           "measure", "nbytes", "peak_memory", "perf_parser", "render_markdown", "run_script", "setup", "subset",
           "time_steps"]

"""The flags every ``train.py`` shares, and the wrapper every ``main()`` runs in (:func:`run`)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from common import distributed
from common.fileio import UserError
from common.results import git_commit, write_metrics
from common.training import (AMP_MODES, NonFiniteLossError, choose_amp, describe_device, describe_precision,
                             resolve_device, seed_everything)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def base_parser(description: str, *, epochs: int, batch_size: int, lr: float | None, paper_dir: Path,
                lr_help: str = "base learning rate", amp: bool = True) -> argparse.ArgumentParser:
    """An ArgumentParser with the shared flags; defaults are the paper's setup. ``amp=False`` for a script whose
    training never autocasts (it then has no ``--amp`` and records fp32)."""
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=None,
                   help="writable data root (default: $PAPER_DATA_DIR, else <repo>/data); "
                        "set $PAPER_DATA_MIRROR to a local read-only copy of the original files to run offline")
    p.add_argument("--epochs", type=positive_int, default=epochs, help="passes over the training set")
    p.add_argument("--batch-size", type=positive_int, default=batch_size, help="mini-batch size")
    p.add_argument("--lr", type=positive_float, default=lr, help=lr_help)
    p.add_argument("--seed", type=int, default=0, help="random seed (weights, shuffling)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto = CUDA if available, else CPU")
    if amp:
        p.add_argument("--amp", nargs="?", const="on", default="auto", choices=AMP_MODES,
                       help="bf16 autocast: auto = where the device computes bf16 natively (CUDA; a CPU with "
                            "AVX512-BF16 or AMX), fp32 elsewhere; on (also plain --amp); off = fp32")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --out: finished parts are kept, the interrupted one "
                        "continues from its checkpoint.pt (an error when there is none)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: tiny data subset, one or two epochs, seconds; "
                        "writes to runs/ unless --out is given")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output folder (default: {paper_dir.name}/results; "
                        f"runs/{paper_dir.name}-quick with --quick)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    return p


def output_dir(args: argparse.Namespace, paper_dir: Path) -> Path:
    if args.out is not None:
        return Path(args.out)
    if args.quick:
        return paper_dir.parents[1] / "runs" / f"{paper_dir.name}-quick"
    return paper_dir / "results"


# --------------------------------------------------------------------------- the run wrapper


def resumes(args: argparse.Namespace, folder: Path) -> bool:
    """--resume, and ``folder`` (one part of a run) holds a ``checkpoint.pt`` to continue from."""
    return bool(getattr(args, "resume", False)) and (Path(folder) / "checkpoint.pt").exists()


@dataclass
class Run:
    """What every ``main()`` sets up the same way: made by :func:`run`, handed to the paper's ``train``."""

    args: argparse.Namespace
    device: torch.device
    out: Path
    commit: str                     # the code that trains, taken before anything else can change
    precision: str = "fp32"         # what --amp chose (describe_precision); args.amp is then a bool
    started: float = field(default_factory=time.perf_counter)

    def resumes(self, folder: Path | None = None) -> bool:
        """--resume, and ``folder`` (default: the output folder) holds a checkpoint to continue from."""
        return resumes(self.args, folder or self.out)

    def write_metrics(self, *, paper: str, metrics: list[dict], model, model_kwargs: dict | None = None,
                      epochs: int, out: Path | None = None, **extra) -> dict:
        """``results/metrics.json`` with this run's seed, device, commit and wall time filled in."""
        extra.setdefault("seed", self.args.seed)
        extra.setdefault("wall_time_s", time.perf_counter() - self.started)
        extra.setdefault("precision", self.precision)
        processes = f" x {distributed.world_size()} processes" if distributed.world_size() > 1 else ""
        return write_metrics(out or self.out, paper=paper, metrics=metrics, model=model, model_kwargs=model_kwargs,
                             epochs=epochs, device=describe_device(self.device) + processes, commit=self.commit,
                             quick=bool(getattr(self.args, "quick", False)), **extra)


def resolve_amp(args: argparse.Namespace, device: torch.device, *, needs_native_bf16: bool = False) -> str:
    """Turn ``args.amp`` (``auto|on|off``, :func:`common.training.choose_amp`) into a bool in place, keep the mode
    in ``args.amp_mode``, print the choice and return it in words (for ``metrics.json``)."""
    if isinstance(args.amp, bool):          # resolved already (a script that calls its train() twice)
        return describe_precision(args.amp, getattr(args, "amp_mode", "on" if args.amp else "off"), device)
    args.amp_mode = args.amp
    args.amp = choose_amp(args.amp_mode, device, needs_native=needs_native_bf16)
    precision = describe_precision(args.amp, args.amp_mode, device)
    print(f"precision: {precision}; device {describe_device(device)}")
    return precision


def run(train: Callable[[Run], int | None], args: argparse.Namespace, paper_dir: Path, *,
        needs_native_bf16: bool = False) -> int:
    """Set up the :class:`Run` (commit, device, precision, seed, output folder: ``--out``, else ``results/``, else
    ``runs/<paper>-quick`` with --quick) and call ``train(run)``. ``--amp`` is resolved here once for every paper
    (:func:`resolve_amp`; ``needs_native_bf16`` for models whose kernels have no emulated bf16, the LSTM), and
    ``args.amp`` is a bool from then on. Bad input (missing data, a damaged
    checkpoint, no GPU for --device cuda) ends in one ``error:`` line and exit status 2; a NaN or
    infinite loss in exit status 1; Ctrl-C in 130. Nothing is deleted on the way out.

    --resume means one thing everywhere: continue the interrupted run in the output folder (parts
    already finished are read back, the interrupted one continues from its ``checkpoint.pt``).
    A missing or empty output folder is an error here; a part with nothing to read back and no
    checkpoint is one in ``fit`` (:func:`common.training.resume_checkpoint`).

    Under torchrun (several processes) each process joins the process group here (``common.distributed``);
    only process 0 prints to standard output (errors still show from every process)."""
    commit = git_commit()
    stdout = sys.stdout
    try:
        device = distributed.init(resolve_device(args.device))
        if not distributed.is_main():
            sys.stdout = open(os.devnull, "w")
        precision = resolve_amp(args, device, needs_native_bf16=needs_native_bf16) if hasattr(args, "amp") else "fp32"
        seed_everything(args.seed)
        out = output_dir(args, paper_dir)
        if getattr(args, "resume", False) and not (out.is_dir() and any(out.iterdir())):
            raise UserError(f"--resume: nothing to resume in {out} (no such folder, or empty); "
                            "start without --resume")
        return train(Run(args, device, out, commit, precision)) or 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except NonFiniteLossError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: each finished epoch is checkpointed; continue with --resume", file=sys.stderr)
        return 130
    except RuntimeError as e:
        if not distributed.peer_failure(e):
            raise
        print(f"error: process {distributed.rank()} of {distributed.world_size()}: another process stopped or hung "
              f"({str(e).strip().splitlines()[0][:200]}); the last good checkpoint is kept: fix the cause and "
              "continue with --resume", file=sys.stderr)
        return 1
    finally:
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout
        distributed.shutdown()

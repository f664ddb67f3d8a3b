"""The flags every ``train.py`` shares."""

from __future__ import annotations

import argparse
from pathlib import Path


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
                lr_help: str = "base learning rate") -> argparse.ArgumentParser:
    """An ArgumentParser with the shared flags; defaults are the paper's setup."""
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
    p.add_argument("--amp", action="store_true", help="bf16 autocast (CPU with AVX-512/AMX, or CUDA)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
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

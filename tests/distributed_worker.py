"""A tiny training run for the torchrun tests (tests/test_distributed.py): a linear classifier on synthetic
data through ``common.cli.run`` and ``common.training.fit``. ``--fail-rank R --fail-epoch E`` makes process R
raise (``--fail-how raise``) or hang (``--fail-how hang``) at the end of epoch E."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common import distributed
from common.cli import run
from common.data import TensorLoader
from common.training import classification_step, fit


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--fail-rank", type=int, default=None)
    p.add_argument("--fail-epoch", type=int, default=2)
    p.add_argument("--fail-how", choices=["raise", "hang"], default="raise")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 5, generator=g), torch.randint(0, 3, (64,), generator=g)
    model = torch.nn.Linear(5, 3)
    loader = TensorLoader(x, y, batch_size=args.batch_size, shuffle=True, seed=args.seed, transform=None)

    def on_epoch_end(history):
        if distributed.rank() == args.fail_rank and len(history) == args.fail_epoch:
            if args.fail_how == "raise":
                raise RuntimeError(f"rank {args.fail_rank} fails on purpose after epoch {args.fail_epoch}")
            time.sleep(3600)

    fit(model, torch.optim.SGD(model.parameters(), lr=0.1), classification_step(F.cross_entropy), loader,
        epochs=args.epochs, out=r.out, resume=r.resumes(), progress=False, on_epoch_end=on_epoch_end,
        curve_keys=())
    return 0


if __name__ == "__main__":
    sys.exit(run(train, parse_args(), Path(__file__).parent))

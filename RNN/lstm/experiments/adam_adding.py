"""Probe: the 1997 cell on the adding problem (T = 100) trained with Adam on mini-batches of 256 fresh sequences
instead of the paper's online gradient descent (a deviation; the same truncated gradient). With a constant rate
training ends by the paper's stopping rule; with --cosine the rate decays to 0 over the whole budget and the
test comes after all of it (where the stopping rule first held is recorded).

    python RNN/lstm/experiments/adam_adding.py --lr 0.01 --max-sequences 3000000
    python RNN/lstm/experiments/adam_adding.py --lr 0.003 --cosine --max-sequences 3000000

Metric: adding_T100_1997_adam[_cosine_to_cap]_mean_test_wrong.
Record: RNN/lstm/results/experiments/adam-adding/adam-adding.json.
"""

from __future__ import annotations

import math
import sys

import torch

from common.cli import positive_float, positive_int
from RNN.lstm.experiments import record
from RNN.lstm.trials import adding_trial

NAME = "adam-adding"


def cosine(lr: float, seen: int, total: int) -> float:
    """The rate after ``seen`` of ``total`` sequences: from ``lr`` down to 0 along a half cosine."""
    return 0.5 * lr * (1 + math.cos(math.pi * min(seen, total) / total))


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--lr", type=positive_float, default=0.01, help="Adam's (initial) learning rate")
    p.add_argument("--batch-size", type=positive_int, default=256, help="fresh sequences per update")
    p.add_argument("--cosine", action="store_true", help="decay the rate to 0 and train the whole budget")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    trials = []
    for seed in range(args.seed, args.seed + args.trials):
        _, trial = adding_trial(seed, args, r.out / "checkpoint.pt", lr=args.lr, batch_size=args.batch_size,
                                make_optimizer=lambda model, lr: torch.optim.Adam(model.parameters(), lr=lr),
                                schedule=cosine if args.cosine else None, train_to_cap=args.cosine)
        trials.append({"seed": seed, **trial})
    kind = "_cosine_to_cap" if args.cosine else ""
    metric = record.wrong_metric(f"adding_T{args.T}_1997_adam{kind}_mean_test_wrong", trials, args,
                                 f"Adam at lr {args.lr:g}{', decaying to 0' if kind else ''}, batches of "
                                 f"{args.batch_size} (a deviation)")
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"{'cosine' if kind else 'constant'}-"
                                                                           f"lr{args.lr:g}"), [metric],
                    {"optimizer": "Adam", "lr": args.lr, "batch_size": args.batch_size,
                     "lr_schedule": "cosine" if kind else "constant", "train_to_cap": args.cosine,
                     "max_sequences": args.max_sequences or 1_000_000}, trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

"""Probe: full backpropagation through time instead of the paper's truncated gradient (App. A.1), on the embedded
Reber grammar: plain gradient descent through autograd, one update per string (the paper's update is per step).

    python RNN/lstm/experiments/full_gradient.py --seed 100 --trials 2 --max-sequences 40000 --lr 0.1  # validation

Metric: reber_1997_full_gradient_trials_solved. Record: RNN/lstm/results/experiments/full-gradient/full-gradient.json.
"""

from __future__ import annotations

import functools
import sys

import torch

from common.cli import positive_float
from RNN.lstm.experiments import record
from RNN.lstm.model import LSTM1997, reber_config
from RNN.lstm.trials import optimizer_update

NAME = "full-gradient"


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--lr", type=positive_float, default=0.1, help="gradient descent's rate")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    trials = record.reber_trials(args, make_model=functools.partial(LSTM1997, reber_config(), truncated=False),
                                 make_update=functools.partial(optimizer_update, optimizer=torch.optim.SGD),
                                 lr=args.lr)
    metric = record.solved_metric("reber_1997_full_gradient_trials_solved", trials, args,
                                  f"full backpropagation through time, gradient descent at lr {args.lr:g}")
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"lr{args.lr:g}"), [metric],
                    {"lr": args.lr, "truncated_gradient": False, "max_sequences": args.max_sequences or 100_000},
                    trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

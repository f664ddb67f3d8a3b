"""Probe: one weight change per string on the embedded Reber grammar, the sum of all its steps' contributions
(App. A.1: "each weight's total update is the sum of the contributions of all time steps"), instead of the
paper's online change at every step (our reading, train.py's). ``OnlineLSTM1997.update_per_sequence``.

    python RNN/lstm/experiments/per_string.py --seed 100 --trials 6 --lr 0.1    # and 0.2, 0.5: validation

Metric: reber_1997_per_string_trials_solved. Record: RNN/lstm/results/experiments/per-string/per-string.json.
"""

from __future__ import annotations

import functools
import sys

from common.cli import positive_float
from RNN.lstm.experiments import record
from RNN.lstm.trials import online_update

NAME = "per-string"


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--lr", type=positive_float, default=0.1, help="gradient descent's rate (Table 1: 0.1, 0.2, 0.5)")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    trials = record.reber_trials(args, make_update=functools.partial(online_update, per_string=True), lr=args.lr)
    metric = record.solved_metric("reber_1997_per_string_trials_solved", trials, args,
                                  f"one update per string, gradient descent at lr {args.lr:g}")
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"lr{args.lr:g}"), [metric],
                    {"lr": args.lr, "update_every": "string", "max_sequences": args.max_sequences or 100_000}, trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

"""Probe: the embedded Reber grammar with bias weights on the output units (a deviation: the paper biases only
the gates, 276 weights; these add 7). Without them the outputs can lower their activations only through the cells,
which then become bias cells: Sec. 4's abuse problem.

    python RNN/lstm/experiments/output_bias.py --lr 0.5                                              # seeds 0-9
    python RNN/lstm/experiments/output_bias.py --lr 0.1 --seed 100 --trials 4 --max-sequences 40000  # validation

Metric: reber_1997_output_bias_trials_solved. Record: RNN/lstm/results/experiments/output-bias/output-bias.json.
"""

from __future__ import annotations

import dataclasses
import functools
import sys

from common.cli import positive_float
from RNN.lstm.experiments import record
from RNN.lstm.model import LSTM1997, reber_config

NAME = "output-bias"


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--lr", type=positive_float, default=0.5, help="gradient descent's rate (Table 1: 0.1, 0.2, 0.5)")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    model = functools.partial(LSTM1997, dataclasses.replace(reber_config(), output_bias=True))
    trials = record.reber_trials(args, make_model=model, lr=args.lr)
    metric = record.solved_metric("reber_1997_output_bias_trials_solved", trials, args,
                                  f"output units with biases, gradient descent at lr {args.lr:g} (a deviation)")
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"lr{args.lr:g}"), [metric],
                    {"lr": args.lr, "output_bias": True, "max_sequences": args.max_sequences or 100_000}, trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

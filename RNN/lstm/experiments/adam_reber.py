"""Probe: the 1997 cell on the embedded Reber grammar trained with Adam instead of plain gradient descent (a
deviation; one update per string through autograd, the paper's truncated gradient), with or without output
biases. train.py --deviation runs Adam at lr 0.01 (the rate chosen first, on four validation seeds); these are
the other rates and the combination with output biases.

    python RNN/lstm/experiments/adam_reber.py --lr 0.003                  # the rate chosen again on six seeds
    python RNN/lstm/experiments/adam_reber.py --lr 0.01 --output-bias     # both deviations together

Metric: reber_1997[_output_bias]_adam_trials_solved. Record: RNN/lstm/results/experiments/adam-reber/adam-reber.json.
"""

from __future__ import annotations

import dataclasses
import functools
import sys

from common.cli import positive_float
from RNN.lstm.experiments import record
from RNN.lstm.model import LSTM1997, reber_config
from RNN.lstm.trials import optimizer_update

NAME = "adam-reber"


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--lr", type=positive_float, default=0.003, help="Adam's learning rate")
    p.add_argument("--output-bias", action="store_true", help="bias weights on the output units too (+7 weights)")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    model = functools.partial(LSTM1997, dataclasses.replace(reber_config(), output_bias=args.output_bias))
    trials = record.reber_trials(args, make_model=model, make_update=optimizer_update, lr=args.lr)
    bias = "_output_bias" if args.output_bias else ""
    metric = record.solved_metric(f"reber_1997{bias}_adam_trials_solved", trials, args,
                                  f"Adam at lr {args.lr:g}{' with output biases' if bias else ''} (a deviation)")
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"{bias[1:] + '-' if bias else ''}"
                                                                           f"lr{args.lr:g}"), [metric],
                    {"optimizer": "Adam", "lr": args.lr, "output_bias": args.output_bias,
                     "max_sequences": args.max_sequences or 100_000}, trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

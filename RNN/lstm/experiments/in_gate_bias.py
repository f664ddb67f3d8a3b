"""Probe: negative initial input-gate biases on the embedded Reber grammar (Sec. 4's remedy for state drift; for
Exp. 1 the paper initialises them at random like the other weights).

    python RNN/lstm/experiments/in_gate_bias.py --in-gate-bias=-1,-2,-3 --seed 100 --trials 6 --max-sequences 40000

Metric: reber_1997_in_gate_bias_trials_solved. Record: RNN/lstm/results/experiments/in-gate-bias/in-gate-bias.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys

from common.cli import positive_float
from RNN.lstm.experiments import record
from RNN.lstm.model import LSTM1997, reber_config

NAME = "in-gate-bias"


def biases(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if len(values) != reber_config().blocks:
        raise argparse.ArgumentTypeError(f"one bias per memory block ({reber_config().blocks}), got {len(values)}")
    return values


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--in-gate-bias", type=biases, default=(-1.0, -2.0, -3.0), metavar="B1,B2,B3",
                   help="initial input-gate biases of blocks 1-3 (write it --in-gate-bias=-1,-2,-3)")
    p.add_argument("--lr", type=positive_float, default=0.1, help="gradient descent's rate")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    config = dataclasses.replace(reber_config(), in_gate_bias=args.in_gate_bias)
    trials = record.reber_trials(args, make_model=functools.partial(LSTM1997, config), lr=args.lr)
    text = ",".join(f"{b:g}" for b in args.in_gate_bias)
    metric = record.solved_metric("reber_1997_in_gate_bias_trials_solved", trials, args,
                                  f"input-gate biases {text}, gradient descent at lr {args.lr:g}")
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"{text}-lr{args.lr:g}"), [metric],
                    {"in_gate_bias": list(args.in_gate_bias), "lr": args.lr,
                     "max_sequences": args.max_sequences or 100_000}, trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

"""Probe: the paper's error function read literally. Eq. 16 defines E as the sum of (t - y)^2 without the 1/2 and
eq. 17 steps by -lr dE/dw, which doubles the step of eqs. 19-22 (which train.py follows): the same as lr 1.0 in
ours. The adding problem, T = 100, otherwise the paper's setup.

    python RNN/lstm/experiments/error_function.py --trials 1 --max-sequences 400000

Metric: adding_T100_1997_lr1_mean_test_wrong. Record: RNN/lstm/results/experiments/error-function/error-function.json.
"""

from __future__ import annotations

import sys

from common.cli import positive_float
from RNN.lstm.experiments import record
from RNN.lstm.trials import adding_trial

NAME = "error-function"


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--lr", type=positive_float, default=1.0, help="gradient descent's rate (ours 0.5 = eqs. 19-22)")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    trials = []
    for seed in range(args.seed, args.seed + args.trials):
        _, trial = adding_trial(seed, args, r.out / "checkpoint.pt", lr=args.lr)
        trials.append({"seed": seed, **trial})
    metric = record.wrong_metric(f"adding_T{args.T}_1997_lr{args.lr:g}_mean_test_wrong", trials, args,
                                 f"gradient descent at lr {args.lr:g} (eqs. 16-17 read literally)")
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"lr{args.lr:g}"), [metric],
                    {"lr": args.lr, "max_sequences": args.max_sequences or 1_000_000}, trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

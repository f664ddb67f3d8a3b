"""Table 1's other rows: the embedded Reber grammar with 4 blocks of 1 cell (264 weights) or 3 blocks of 2 (276)
at the paper's learning rates, otherwise the paper's setup (train.py runs 3 blocks of 2 at lr 0.1).

    python RNN/lstm/experiments/table1.py --blocks 4 --cells-per-block 1 --lr 0.1
    python RNN/lstm/experiments/table1.py --blocks 3 --cells-per-block 2 --lr 0.5

Metric: reber_1997_<blocks>x<cells>_lr<lr>_trials_solved, against Table 1's share of solved trials.
Record: RNN/lstm/results/experiments/table1/table1.json.
"""

from __future__ import annotations

import functools
import sys

from common.cli import positive_float, positive_int
from RNN.lstm.experiments import record
from RNN.lstm.model import LSTM1997, reber_config

NAME = "table1"
# Table 1: (blocks, cells per block, lr) -> (share of trials solved, mean training strings to solve)
TABLE1 = {(4, 1, 0.1): (1.0, 39_740), (3, 2, 0.1): (1.0, 21_730), (3, 2, 0.2): (0.97, 14_060),
          (4, 1, 0.5): (0.97, 9_500), (3, 2, 0.5): (1.0, 8_440)}


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--blocks", type=positive_int, default=4, help="memory blocks")
    p.add_argument("--cells-per-block", type=positive_int, default=1, help="cells per block")
    p.add_argument("--lr", type=positive_float, default=0.1, help="gradient descent's rate (Table 1: 0.1, 0.2, 0.5)")
    args = p.parse_args(argv)
    if (args.blocks, args.cells_per_block, args.lr) not in TABLE1:
        p.error(f"Table 1 has no row for {args.blocks} blocks of {args.cells_per_block} at lr {args.lr:g}; "
                f"its rows: {sorted(TABLE1)}")
    return args


def train(r) -> int:
    args = r.args
    shape = f"{args.blocks}x{args.cells_per_block}"
    rate, strings = TABLE1[(args.blocks, args.cells_per_block, args.lr)]
    model = functools.partial(LSTM1997, reber_config(args.blocks, args.cells_per_block))
    trials = record.reber_trials(args, make_model=model, lr=args.lr)
    metric = record.solved_metric(f"reber_1997_{shape}_lr{args.lr:g}_trials_solved", trials, args,
                                  f"{shape} blocks x cells, gradient descent at lr {args.lr:g} (Table 1: {rate:.0%}, "
                                  f"{strings:,} strings on average)", paper_rate=rate)
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"{shape}-lr{args.lr:g}"), [metric],
                    {"blocks": args.blocks, "cells_per_block": args.cells_per_block, "lr": args.lr,
                     "max_sequences": args.max_sequences or 100_000}, trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

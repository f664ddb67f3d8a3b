"""Probe: sequential network construction on the embedded Reber grammar, Sec. 4's remedy (1) for the abuse
problem (for Exp. 1 the paper uses remedy (2), the output-gate biases, which stay). The network starts with
block 1; the next block joins whenever the mean training error over the last 1,000 strings is not 2% below its
best since the last block joined. The success test waits for the whole network.

    python RNN/lstm/experiments/sequential_construction.py --seed 100 --trials 6 --max-sequences 40000 --lr 0.1

Metric: reber_1997_sequential_trials_solved.
Record: RNN/lstm/results/experiments/sequential-construction/sequential-construction.json.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from common.cli import positive_float
from RNN.lstm.experiments import record
from RNN.lstm.online import OnlineLSTM1997

NAME = "sequential-construction"


class GrowingNetwork:
    """The paper's online update on the blocks switched on so far (``OnlineLSTM1997.active``): a block that is off
    outputs zeros and its weights do not change. Called as ``reber_trial``'s update."""

    def __init__(self, model, lr: float):
        self.engine, self.lr = OnlineLSTM1997(model), lr
        self.engine.active[1:] = False                         # one block to start with
        self.errors, self.best, self.record = [], math.inf, {"blocks_added": []}

    def __call__(self, x, target, lengths) -> float:
        t = target[0].numpy()
        loss = self.engine.online_sequence(x[0].numpy(), t, np.ones_like(t), self.lr)[0]
        self.errors.append(loss)
        return loss

    def testing_paused(self, seen: int) -> bool:
        """At each test time: while blocks are missing, add one if the error has stalled, and skip the test."""
        active = self.engine.active
        if active.all():
            return False
        error = float(np.mean(self.errors))
        self.errors.clear()
        if error > 0.98 * self.best:
            block = int(np.argmin(active))
            active[block] = True
            self.record["blocks_added"].append({"block": block + 1, "sequences": seen})
            self.best = math.inf
        else:
            self.best = error
        return True


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--lr", type=positive_float, default=0.1, help="gradient descent's rate")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    trials = record.reber_trials(args, make_update=GrowingNetwork, lr=args.lr)
    metric = record.solved_metric("reber_1997_sequential_trials_solved", trials, args,
                                  f"sequential network construction, gradient descent at lr {args.lr:g}")
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"lr{args.lr:g}"), [metric],
                    {"lr": args.lr, "sequential_construction": True, "max_sequences": args.max_sequences or 100_000},
                    trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

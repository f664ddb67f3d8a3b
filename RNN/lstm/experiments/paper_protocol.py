"""The paper's protocol for Exp. 1 (Sec. 5.1): 10 trials on each of 3 randomly drawn pairs of training and test
sets (Table 1 gives the mean of the 30). train.py draws a new pair for every trial; here every trial of a run
uses the pair drawn from --data-seed, and differs only in its initial weights and the order of its strings.

    python RNN/lstm/experiments/paper_protocol.py --data-seed 1000     # and 1001, 1002

Metric: reber_1997_data<seed>_trials_solved. Record: RNN/lstm/results/experiments/paper-protocol/paper-protocol.json.
"""

from __future__ import annotations

import sys

from RNN.lstm.experiments import record

NAME = "paper-protocol"


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--data-seed", type=int, default=1000, help="the seed that draws the run's pair of sets")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    trials = record.reber_trials(args, data_seed=args.data_seed)
    metric = record.solved_metric(f"reber_1997_data{args.data_seed}_trials_solved", trials, args,
                                  f"the paper's setup, every trial on the pair of sets of data seed {args.data_seed}")
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"data{args.data_seed}"), [metric],
                    {"data_seed": args.data_seed, "lr": 0.1, "max_sequences": args.max_sequences or 100_000}, trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

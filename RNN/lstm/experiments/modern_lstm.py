"""Comparison: PyTorch's nn.LSTM (forget gate, tanh, its own initialisation) with as many cells as the 1997 net,
the same sigmoid output layer and squared error, on the same tasks and tests. Not one of the paper's targets.

    python RNN/lstm/experiments/modern_lstm.py --task reber --max-sequences 30000 --lr 0.5            # plain SGD
    python RNN/lstm/experiments/modern_lstm.py --task reber --optimizer adam --lr 0.03
    python RNN/lstm/experiments/modern_lstm.py --task adding --batch-size 16 --max-sequences 200000 --lr 0.5
    python RNN/lstm/experiments/modern_lstm.py --task adding --optimizer adam --lr 0.003 --forget-bias 3 \\
        --batch-size 16 --trials 1

Metrics: modern_<task>_<optimizer>_{trials_solved, mean_test_wrong}.
Record: RNN/lstm/results/experiments/modern-lstm/modern-lstm.json.
"""

from __future__ import annotations

import functools
import sys

import torch

from common.cli import positive_float, positive_int
from RNN.lstm.experiments import record
from RNN.lstm.model import ModernLSTM, adding_config, reber_config
from RNN.lstm.trials import adding_trial, optimizer_update

NAME = "modern-lstm"
OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--task", choices=("adding", "reber"), default="reber", help="which experiment")
    p.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="sgd", help="plain SGD or Adam")
    p.add_argument("--lr", type=positive_float, default=0.5, help="learning rate")
    p.add_argument("--forget-bias", type=float, default=None,
                   help="initial forget-gate bias (default: PyTorch's random initialisation)")
    p.add_argument("--batch-size", type=positive_int, default=16,
                   help="adding problem: sequences per update (through autograd one at a time is slow)")
    return p.parse_args(argv)


def train(r) -> int:
    args = r.args
    opt = OPTIMIZERS[args.optimizer]
    if args.task == "reber":
        model = functools.partial(ModernLSTM, reber_config(), forget_bias=args.forget_bias)
        trials = record.reber_trials(args, make_model=model, lr=args.lr,
                                     make_update=functools.partial(optimizer_update, optimizer=opt))
        metric = record.solved_metric(f"modern_reber_{args.optimizer}_trials_solved", trials, args,
                                      f"nn.LSTM, {args.optimizer} at lr {args.lr:g} (a comparison)")
    else:
        trials = []
        for seed in range(args.seed, args.seed + args.trials):
            _, trial = adding_trial(seed, args, r.out / "checkpoint.pt", lr=args.lr, batch_size=args.batch_size,
                                    make_model=functools.partial(ModernLSTM, adding_config(),
                                                                 forget_bias=args.forget_bias),
                                    make_optimizer=lambda model, lr: opt(model.parameters(), lr=lr))
            trials.append({"seed": seed, **trial})
        metric = record.wrong_metric(f"modern_adding_{args.optimizer}_mean_test_wrong", trials, args,
                                     f"nn.LSTM, {args.optimizer} at lr {args.lr:g} (a comparison)")
    fb = "" if args.forget_bias is None else f"-fb{args.forget_bias:g}"
    record.save_run(r, NAME, __doc__.split("\n")[0], record.variant(args, f"{args.task}-{args.optimizer}-"
                                                                           f"lr{args.lr:g}{fb}"), [metric],
                    {"task": args.task, "optimizer": args.optimizer, "lr": args.lr, "forget_bias": args.forget_bias,
                     "batch_size": args.batch_size if args.task == "adding" else 1,
                     "max_sequences": args.max_sequences or (1_000_000 if args.task == "adding" else 100_000)},
                    trials)
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

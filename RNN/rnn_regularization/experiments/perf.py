"""Performance analysis of the Penn Treebank LSTMs of Zaremba et al. (2014) (issue 39), measured by common.perf:
throughput, step and epoch time, peak memory of training and evaluation, the cost across Sec. 4.1's sizes
(small, medium, large), and a profile of one training step.

The step is train.py's: 20 columns of the training stream, unrolled for 20 (small) or 35 steps, the state carried
from window to window, plain SGD with the gradient clipped, dropout of the size, bf16 autocast where --amp auto
picks it (nn.LSTM needs native bf16). Evaluation is train.py's test protocol: the stream read by one sequence
(batch 1), windows of 200 words.

    python RNN/rnn_regularization/experiments/perf.py           # -> results/experiments/perf/ (about 3 minutes)
    python RNN/rnn_regularization/experiments/perf.py --quick   # seconds -> runs/rnn_regularization-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import perf
from common.text import batchify, load_ptb, n_windows
from common.training import clipped_update
from RNN.rnn_regularization.model import SIZES, RegularizedLSTM
from RNN.rnn_regularization.train import RECIPES, TEST_WINDOW, CarriedState, Windows, stream_perplexity
from RNN.rnn_regularization.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]


def workload(size: str, train: torch.Tensor, test: torch.Tensor, vocab_size: int, batch_size: int, steps: int,
             device, amp: bool) -> perf.Workload:
    """The ``size`` model trained as train.py trains it, on the token stream ``train``; evaluated on ``test``."""
    recipe = RECIPES[size]
    model = RegularizedLSTM(vocab_size, **SIZES[size]).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=train_defaults([]).lr)
    loader = Windows(batchify(train.to(device), batch_size), steps)

    def evaluate() -> int:
        stream_perplexity(model, test, device, amp)
        return len(test) - 1

    return perf.Workload(model, perf.fit_step(model, optimizer, CarriedState(), loader, device=device, amp=amp,
                                              update=clipped_update(recipe["clip"])), steps * batch_size,
                         eval_step=evaluate, eval_items=len(test) - 1, device=device,
                         info={"units": SIZES[size]["hidden"], "unrolled steps": steps})


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR, needs_native_bf16=True)
    d = train_defaults([])
    vocab, streams = load_ptb(args.data_dir)
    batch = 2 if args.quick else d.batch_size
    train, test = perf.subset(streams["train"], 8_000), perf.subset(streams["test"], 21 if args.quick else
                                                                     TEST_WINDOW + 1)
    points = [(size, perf.builder(workload, size=size, train=train, test=test, vocab_size=len(vocab),
                                  batch_size=batch, steps=3 if args.quick else RECIPES[size]["steps"],
                                  device=s.device, amp=s.amp)) for size in ("small", "medium", "large")]
    words = n_windows(batchify(streams["train"], d.batch_size), d.steps) * d.steps * d.batch_size
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="words", axis="size (Sec. 4.1)", points=points, main=d.size,
        workload=f"the {d.size} LSTM, {d.batch_size} columns x {d.steps} steps, SGD, clip {d.clip}",
        eval_desc=f"the test stream by one sequence (batch 1), windows of {len(test) - 1} words",
        device=s.device, precision=s.precision, quick=args.quick, run_metrics=f"results/{d.size}/metrics.json",
        epoch=(words, f"{words:,} training words, {d.size}"),
        data_bytes=sum(perf.nbytes(t) for t in streams.values()),
        notes=[f"A run: {RECIPES['small']['epochs']} epochs (small) or {RECIPES['medium']['epochs']} (medium); each "
               "epoch also reads the validation stream (20 columns).",
               "The softmax over 10,000 words costs as much as the LSTM layers in the small model; the large "
               "model's 1,500 units make the recurrent layers dominate."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

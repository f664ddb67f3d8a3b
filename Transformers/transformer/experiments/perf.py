"""Performance analysis of the Transformer of Vaswani et al. (2017) as train.py trains it (transformer_tiny on
Multi30k), measured by common.perf like every card's: throughput, update and epoch time, peak memory of training
and evaluation, the cost across the model width d_model (Table 3, rows C4 and C5 vary it; here 128, 256, 512 with
N = 4, h = 4 and d_ff = 2 d_model, transformer_tiny's proportions), and a profile of one update.

The step is train.py's: a batch of <= 8,192 tokens, the label-smoothed loss with its written-out gradient, Adam
with the inverse-square-root schedule and the gradient clipped at 25, bf16 autocast where --amp auto picks it.
Evaluation is train.py's test protocol: beam search (beam 5, the incremental decoder state) over a batch of 128
Test2016 sentences, in fp32. (experiments/benchmark.py races the decoder against recomputing the prefix, and the
training step against torch.nn.Transformer.)

    python Transformers/transformer/experiments/perf.py           # -> results/experiments/perf/ (about 5 minutes)
    python Transformers/transformer/experiments/perf.py --quick   # seconds -> runs/transformer-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import perf
from common.training import load_weights
from Transformers.transformer.data import Parallel, TokenBatches, load_multi30k
from Transformers.transformer.model import Transformer
from Transformers.transformer.train import ADAM_BETAS, ADAM_EPS, InverseSqrtSchedule, translation_step
from Transformers.transformer.train import parse_args as train_defaults
from Transformers.transformer.translate import MAX_LEN, translate

PAPER_DIR = Path(__file__).resolve().parents[1]
WIDTHS = (128, 256, 512)  # the first is transformer_tiny's, the shipped model's
TRAIN_PAIRS = 1_500         # the training sentences timed: a few batches of <= 8,192 tokens, in file order
TEST_SENTENCES = 128        # one batch of the test-set translation (translate.BATCH)


def workload(d_model: int, train: Parallel, test: list[torch.Tensor], vocab_size: int, max_tokens: int,
             max_len: int, device, amp: bool, weights: Path | None = None) -> perf.Workload:
    """transformer_tiny's proportions at width ``d_model``, trained as train.py trains it on ``train``; evaluated
    by beam search over the sentences ``test``, with the trained ``weights`` where given (a random model
    translates every sentence into max_len tokens, which says nothing about the real search)."""
    d = train_defaults([])
    model = Transformer.tiny(vocab_size, d_model=d_model, d_ff=2 * d_model, P_drop=d.dropout).to(device)
    if weights is not None:
        load_weights(model, weights, device, fix="run Transformers/transformer/train.py first")
    optimizer = torch.optim.Adam(model.parameters(), lr=d.lr, betas=ADAM_BETAS, eps=ADAM_EPS)
    schedule = InverseSqrtSchedule(optimizer, d.lr, d.warmup, clip_norm=d.clip_norm)
    loader = TokenBatches(train, max_tokens=max_tokens, seed=0, shuffle=True, device=device)

    def evaluate() -> int:
        translate(model, test, beam=d.beam, lenpen=d.lenpen, max_len=max_len, device=device)
        return len(test)

    return perf.Workload(model, perf.fit_step(model, optimizer, translation_step(d.label_smoothing), loader,
                                              device=device, amp=amp, update=schedule.update), None,
                         eval_step=evaluate, eval_items=len(test), device=device, cycle=len(loader.batches),
                         info={"d_model": d_model, "d_ff": 2 * d_model})


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR)
    d = train_defaults([])
    vocab, splits = load_multi30k(args.data_dir)
    pairs, max_tokens = (24, 256) if args.quick else (TRAIN_PAIRS, d.batch_size)
    test = splits["test2016"].src[: 4 if args.quick else TEST_SENTENCES]
    max_len = 8 if args.quick else MAX_LEN
    widths = (16, 32, 64) if args.quick else WIDTHS
    shipped = PAPER_DIR / "results" / "model.pt"
    weights = shipped if shipped.is_file() and not args.quick else None
    points = [(str(w), perf.builder(workload, d_model=w, train=splits["train"].subset(pairs), test=test,
                                            vocab_size=len(vocab), max_tokens=max_tokens, max_len=max_len,
                                            device=s.device, amp=s.amp, weights=weights if w == WIDTHS[0] else None))
              for w in widths]
    train_tokens = sum(len(t) for t in splits["train"].tgt)
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="target tokens", eval_unit="sentences", axis="width d_model",
        points=points, main=str(widths[0]),
        workload=f"transformer_tiny, batches of <= {d.batch_size:,} tokens, Adam, label smoothing "
                 f"{d.label_smoothing}, clip {d.clip_norm:g}",
        eval_desc=f"beam {d.beam} over {len(test)} Test2016 sentences (one batch), the incremental decoder state, "
                  f"{'the shipped model' if weights else 'random weights'}",
        device=s.device, precision=s.precision, quick=args.quick,
        epoch=(train_tokens, f"{train_tokens:,} target tokens of 29,000 training pairs"),
        data_bytes=sum(perf.nbytes(*split.src, *split.tgt) for split in splits.values()),
        notes=["Each epoch also computes the validation loss (1,014 pairs, not in the epoch time); the run ends "
               "with beam search over the 2,461 sentences of the three test sets (twice for Test2016).",
               "The pre-softmax projection over the 9,712 symbols and the loss on it are the largest single cost "
               "of an update at d_model 128; the stacks' share grows with the width."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

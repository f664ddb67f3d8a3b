"""Performance analysis of the TCN of Bai, Kolter & Koltun (2018) on JSB Chorales (issue 39), measured by
common.perf: throughput, step and epoch time, peak memory of training and evaluation, the cost along the number
of levels (the receptive field doubles with each), and a profile of one training step.

The step is train.py's for the paper's music setting (the default run): one piece per step, k = 3, 150 channels,
dropout 0.5, Adam at 0.002, the gradient clipped at 0.4, bf16 autocast where --amp auto picks it; the items are
the frames predicted.

    python CNN/tcn/experiments/perf.py           # -> CNN/tcn/results/experiments/perf/ (about 2 minutes)
    python CNN/tcn/experiments/perf.py --quick   # seconds: a smoke test -> runs/tcn-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

from common import perf
from common.data import Sequences, load_polyphonic
from common.training import clipped_update, sgd_update
from CNN.tcn.model import TCN
from CNN.tcn.train import OPTIMIZERS, loaders, step
from CNN.tcn.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
LEVELS = (1, 2, 4, 8)


def pieces(seqs: Sequences, n: int) -> Sequences:
    """The first ``n`` pieces, padded to their own longest (a copy)."""
    lengths = seqs.lengths[:n].clone()
    return Sequences(seqs.data[:n, : int(lengths.max())].clone(), lengths)


def workload(levels: int, train: Sequences, test: Sequences, device, amp: bool) -> perf.Workload:
    """The music TCN with ``levels`` residual blocks, trained as train.py's train_music trains it."""
    d = train_defaults([])
    model = TCN(88, 88, d.hidden, levels, d.k, d.dropout).to(device)
    optimizer = OPTIMIZERS[d.optimizer](model.parameters(), lr=d.lr)
    batches = loaders({"train": train, "test": test}, d.batch_size, 0, device)
    update = clipped_update(d.clip) if d.clip > 0 else sgd_update
    return perf.Workload(model, perf.fit_step(model, optimizer, step, batches["train"], device=device, amp=amp,
                                              update=update), int(train.lengths.float().mean()),
                         eval_step=perf.eval_step(model, step, batches["test"], device=device, amp=amp),
                         eval_items=int((test.lengths - 1).sum()), device=device,
                         info={"receptive field": model.receptive_field}, cycle=len(train))


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR)
    d = train_defaults([])
    data = load_polyphonic(d.dataset, args.data_dir)
    train, test = pieces(data["train"], 4 if args.quick else 32), pieces(data["test"], 8 if args.quick else 64)
    levels = LEVELS[:3] if args.quick else LEVELS
    points = [(str(n), perf.builder(workload, levels=n, train=train, test=test, device=s.device, amp=s.amp))
              for n in levels]
    frames = int((data["train"].lengths - 1).sum())
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="frames", axis="levels", points=points, main=str(d.levels),
        workload=f"TCN k={d.k}, {d.levels} levels of {d.hidden}, one piece a step, Adam, clip {d.clip}",
        eval_desc=f"the test pieces in batches of {len(test)}", device=s.device, precision=s.precision,
        quick=args.quick, run_metrics=f"results/{d.dataset}/metrics.json",
        epoch=(frames, f"the {len(data['train'])} JSB training pieces, {frames:,} frames predicted"),
        data_bytes=sum(perf.nbytes(v.data, v.lengths) for v in data.values()),
        notes=["A step is one piece (the authors' batch of 1): step times vary with the piece's length; the "
               "throughput counts the frames predicted.",
               "Each level adds two dilated convolutions: the cost grows linearly in the levels, the receptive field "
               "exponentially."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

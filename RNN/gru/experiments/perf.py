"""Performance analysis of the music RNNs of Chung et al. (2014) on JSB Chorales (issue 39), measured by
common.perf: throughput, step and epoch time, peak memory of training and evaluation, the cost of each unit
(tanh, LSTM, GRU at the paper's sizes: about 20,000 parameters each), and a profile of one training step.

The step is train.py's: one piece per step, RMSProp with momentum, Gaussian weight noise, the gradient clipped at
norm 1, fp32 (train.py runs fit without autocast); the items are the frames predicted.

    python RNN/gru/experiments/perf.py           # -> RNN/gru/results/experiments/perf/ (about 2 minutes)
    python RNN/gru/experiments/perf.py --quick   # seconds: a smoke test -> runs/gru-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import perf
from common.data import Sequences, TensorLoader, load_polyphonic
from RNN.gru.model import MusicRNN
from RNN.gru.train import DEFAULT_LR, UNITS, noisy_clipped_update, step
from RNN.gru.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
EVAL_BATCH = 256          # train.py's validation and test batches


def pieces(seqs: Sequences, n: int) -> Sequences:
    """The first ``n`` pieces, padded to their own longest (a copy)."""
    lengths = seqs.lengths[:n].clone()
    return Sequences(seqs.data[:n, : int(lengths.max())].clone(), lengths)


def workload(unit: str, train: Sequences, test: Sequences, device) -> perf.Workload:
    """One unit's network at the paper's size, trained as train.py's train_unit trains it."""
    d = train_defaults([])
    model = MusicRNN(unit, n_hidden=d.hidden).to(device)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=d.lr or DEFAULT_LR[unit], alpha=0.95, momentum=0.9)
    train_loader = TensorLoader(train.data, train.lengths, batch_size=d.batch_size, shuffle=True, seed=0,
                                device=device, transform=torch.Tensor.float)
    test_loader = TensorLoader(test.data, test.lengths, batch_size=EVAL_BATCH, device=device,
                               transform=torch.Tensor.float)
    update = noisy_clipped_update(d.weight_noise, d.clip)
    return perf.Workload(model, perf.fit_step(model, optimizer, step, train_loader, device=device, amp=False,
                                              update=update), int(train.lengths.float().mean()),
                         eval_step=perf.eval_step(model, step, test_loader, device=device, amp=False),
                         eval_items=int(test.lengths.sum()), device=device, info={"hidden units": model.n_hidden},
                         cycle=len(train))


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR, fp32_only="train.py trains the music RNNs without autocast")
    d = train_defaults([])
    data = load_polyphonic(d.dataset, args.data_dir)
    train, test = pieces(data["train"], 4 if args.quick else 32), pieces(data["test"], 8 if args.quick else 77)
    points = [(unit, perf.builder(workload, unit=unit, train=train, test=test, device=s.device)) for unit in UNITS]
    frames = int(data["train"].lengths.sum())
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="frames", axis="unit", points=points, main="gru",
        workload="GRU (46 units), one piece a step, RMSProp, weight noise 0.075, clip 1",
        eval_desc=f"the {len(test)} test pieces in one batch", device=s.device, precision=s.precision,
        quick=args.quick, epoch=(frames, f"the {len(data['train'])} JSB training pieces, {frames:,} frames"),
        data_bytes=sum(perf.nbytes(v.data, v.lengths) for v in data.values()),
        notes=["The three units are trained one after another, each until its validation NLL stops improving: "
               "the whole run's time is theirs together.",
               "The cells are written out step by step in Python (model.py), so the per-step overhead, not the "
               "arithmetic, sets the pace: see the profile."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__, amp=False).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

"""Training speed of the small PTB model: our loop against the one PyTorch's ``word_language_model`` example
teaches, side by side in one run.

Both train a 2-layer LSTM of 200 units with a 10,000-word softmax on the Penn Treebank training stream, 20
columns, windows of 20 steps, the state carried from window to window (the small model of Zaremba et al.):

* usual: the example's loop (pytorch/examples, ``word_language_model/main.py``): ``batchify`` and
  ``get_batch`` slices, ``repackage_hidden`` every batch, a stacked ``nn.LSTM``, the mean cross-entropy,
  ``model.zero_grad()``, ``clip_grad_norm_``, the manual update ``p.data.add_(p.grad, alpha=-lr)`` and
  ``total_loss += loss.item()``; fp32.
* ours: ``train.py``'s path: ``RegularizedLSTM`` (layers stacked by hand for Fig. 2's dropout), the
  ``Windows`` loader and ``CarriedState`` step (the loss summed over steps, averaged over the batch), SGD
  with the gradient clipped (``clipped_update``), bf16 autocast (``--amp``, AMX on this CPU); and the same in
  fp32, to show what the precision alone does.

The same work per window in every row (one forward and backward of 400 words). Each pipeline runs a warm-up
slice, then --repeats timed slices of --windows windows, the pipelines taking turns so that drifts in machine
load hit all alike; we report the median words/s and the ratio of ours to the usual loop. Not a test: timings
on a shared machine are noisy. What it prints also goes to
RNN/rnn_regularization/results/experiments/benchmark/<device>.txt.

    python RNN/rnn_regularization/experiments/benchmark.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.benchmark import Report, rates, time_interleaved
from common.cli import positive_int
from common.text import batchify, load_ptb
from common.training import (autocast, clipped_update, describe_device, native_bf16, resolve_device,
                             seed_everything)
from RNN.rnn_regularization.model import RegularizedLSTM
from RNN.rnn_regularization.train import CarriedState, Windows

OUT = Path(__file__).resolve().parents[1] / "results" / "experiments" / "benchmark"
BATCH, STEPS, HIDDEN = 20, 20, 200


class ExampleModel(nn.Module):
    """The example's ``RNNModel`` for an LSTM: encoder, dropout, stacked ``nn.LSTM``, dropout, decoder."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, nlayers: int, dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.nlayers, self.nhid = nlayers, nhid

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        return F.log_softmax(self.decoder(output).view(-1, self.decoder.out_features), dim=1), hidden

    def init_hidden(self, bsz: int):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)


class Usual:
    """The example's training loop, a slice at a time."""

    def __init__(self, train_data: torch.Tensor, ntokens: int, device):
        seed_everything(0)
        self.model = ExampleModel(ntokens, HIDDEN, HIDDEN, 2).to(device)
        self.data, self.i, self.lr, self.clip = train_data, 0, 20.0, 0.25
        self.hidden = self.model.init_hidden(BATCH)
        self.criterion = nn.NLLLoss()
        self.times: list[float] = []

    def get_batch(self, i: int):
        seq_len = min(STEPS, len(self.data) - 1 - i)
        return self.data[i : i + seq_len], self.data[i + 1 : i + 1 + seq_len].reshape(-1)

    def train(self, n: int) -> float:
        self.model.train()
        total_loss, t0 = 0.0, time.perf_counter()
        for _ in range(n):
            if self.i + STEPS + 1 > len(self.data):
                self.i, self.hidden = 0, self.model.init_hidden(BATCH)
            data, targets = self.get_batch(self.i)
            self.model.zero_grad()
            self.hidden = repackage_hidden(self.hidden)
            output, self.hidden = self.model(data, self.hidden)
            loss = self.criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            for p in self.model.parameters():
                p.data.add_(p.grad, alpha=-self.lr)
            total_loss += loss.item()
            self.i += STEPS
        return time.perf_counter() - t0


class Ours:
    """train.py's step, update and loader, a slice at a time."""

    def __init__(self, columns: torch.Tensor, ntokens: int, device, amp: bool):
        seed_everything(0)
        self.model = RegularizedLSTM(ntokens, hidden=HIDDEN).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1.0)
        self.step, self.update = CarriedState(), clipped_update(5.0)
        self.loader, self.batches, self.device, self.amp = Windows(columns, STEPS), iter(()), device, amp
        self.times: list[float] = []

    def train(self, n: int) -> float:
        self.model.train()
        t0 = time.perf_counter()
        for _ in range(n):
            batch = next(self.batches, None)
            if batch is None:
                self.batches = iter(self.loader)
                batch = next(self.batches)

            def forward(batch=batch):
                with autocast(self.device, self.amp):
                    loss, _ = self.step(self.model, batch)
                return loss

            self.update(forward, self.model, self.optimizer)
        return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="writable data root (as in train.py)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="where to train")
    p.add_argument("--windows", type=positive_int, default=60, help="windows (of 400 words) per timed slice")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed slices per pipeline (interleaved)")
    p.add_argument("--out", type=Path, default=OUT, help="folder for <device>.txt (what is printed)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    report = Report()

    vocab, streams = load_ptb(args.data_dir)
    columns = batchify(streams["train"].to(device), BATCH)
    pipelines = {
        "usual: word_language_model loop, fp32": Usual(columns, len(vocab), device),
        "train.py's loop, fp32": Ours(columns, len(vocab), device, amp=False),
    }
    if native_bf16(device):     # oneDNN has no bf16 LSTM kernel for a CPU without native bf16 (--amp auto: fp32)
        pipelines["ours: train.py's loop, bf16 autocast (--amp)"] = Ours(columns, len(vocab), device, amp=True)
    else:
        pipelines["ours: train.py's loop, fp32"] = pipelines.pop("train.py's loop, fp32")
    report.say(f"PTB small LSTM training speed (2 x {HIDDEN}, batch {BATCH}, {STEPS} steps), "
               f"{describe_device(device)}, torch {torch.__version__}; median of {args.repeats} interleaved slices "
               f"of {args.windows} windows")
    time_interleaved(pipelines, args.windows, args.repeats, warmup=max(2, args.windows // 5))
    rate = rates(pipelines, args.windows * BATCH * STEPS, "words", report, width=48)
    usual, ours = next(iter(rate)), next(n for n in rate if n.startswith("ours"))
    report.say(f"ratio ours / usual: {rate[ours] / rate[usual]:.2f}x; an epoch of {columns.numel():,} words: "
               f"ours {columns.numel() / rate[ours] / 60:.1f} min, usual {columns.numel() / rate[usual] / 60:.1f} min")
    report.write(args.out / f"{device.type}.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

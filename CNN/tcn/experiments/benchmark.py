"""Training speed of the TCN on a music set or on sequential MNIST: the authors' loop against ours, side by side in
one run.

Every pipeline trains the same TCN (the paper's setting for the set) with Adam on all the training pieces in
one fixed order, one slice = one pass over them; we count the real frames predicted (padding not counted):

* usual: the authors' ``poly_music/music_test.py`` loop (locuslab/TCN): a list of pieces, one piece per step,
  input ``x[:-1]``, target ``x[1:]``, their ``TemporalBlock`` (convolutions padded on both sides, the right
  end chopped off), the output in float64 through a sigmoid, the loss ``-trace(y log(p)^T + (1 - y)
  log(1 - p)^T)`` (a T x T matrix for a T-frame piece), ``loss.item()`` every step; fp32.
* ours, one piece per step: train.py's path (``TCN``, left padding only, ``common.data.frame_nll``: binary
  cross-entropy on the logits, summed, the pieces held in one padded tensor, the gradient clipped at 0.4)
  with --batch-size 1.
* ours, padded batches: the same with --batch-size 8 and 16 (fewer, larger steps: the optimisation changes,
  so EXPERIMENTS.md checks on validation that the numbers stay the same), and with bf16 autocast.

Each pipeline runs a warm-up pass, then --repeats timed passes, the pipelines taking turns so that drifts in
machine load hit all alike; we report the median frames/s and the ratio to the usual loop. Not a test:
timings on a shared machine are noisy. What it prints also goes to
CNN/tcn/results/experiments/benchmark/<dataset>-<device>.txt.

Sequential MNIST (``--dataset smnist``; the items are images, one slice = --batches batches of 64):

* usual: the authors' ``mnist_pixel/pmnist_test.py`` loop: ``torchvision.datasets.MNIST`` with ToTensor and
  Normalize, a shuffled ``DataLoader`` (num_workers 0, their default), ``data.view(-1, 1, 784)``, their TCN (the
  blocks above from one input channel, a linear layer on the last step, log-softmax), ``F.nll_loss``, Adam; fp32.
* ours: train.py's ``--task smnist`` path: the uint8 images in memory (``TensorLoader``), ``TaskModel``
  (normalised and flattened inside), the cross-entropy step, Adam; fp32, and bf16 autocast where native.

    python CNN/tcn/experiments/benchmark.py                    # JSB Chorales
    python CNN/tcn/experiments/benchmark.py --dataset nottingham
    python CNN/tcn/experiments/benchmark.py --dataset smnist   # about 5 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from common.benchmark import Report, TrainingPipeline, endless, rates, time_interleaved
from common.cli import positive_int
from common.data import Sequences, TensorLoader, data_root, load_mnist, load_polyphonic
from common.training import (autocast, clipped_update, describe_device, native_bf16, precision_name, resolve_device,
                             seed_everything)
from CNN.tcn.model import MNIST_MEAN, MNIST_STD, PAPER_SETTINGS, TCN, TaskModel
from CNN.tcn.train import OPTIMIZERS, STEPS, model_kwargs, parse_args, step, task_loader

OUT = Path(__file__).resolve().parents[1] / "results" / "experiments" / "benchmark"


class Chomp1d(nn.Module):
    def __init__(self, chomp_size: int):
        super().__init__()
        self.chomp_size = chomp_size

    def forward(self, x):
        return x[:, :, : -self.chomp_size].contiguous()


class AuthorsBlock(nn.Module):
    """``TCN/tcn.py``'s TemporalBlock: conv (padded both sides) -> chomp -> ReLU -> dropout, twice; residual."""

    def __init__(self, n_in, n_out, k, d, padding, dropout):
        super().__init__()
        self.net = nn.Sequential(
            weight_norm(nn.Conv1d(n_in, n_out, k, padding=padding, dilation=d)), Chomp1d(padding), nn.ReLU(),
            nn.Dropout(dropout),
            weight_norm(nn.Conv1d(n_out, n_out, k, padding=padding, dilation=d)), Chomp1d(padding), nn.ReLU(),
            nn.Dropout(dropout))
        self.downsample = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else None

    def forward(self, x):
        out = self.net(x)
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


def authors_blocks(n_in: int, hidden: int, levels: int, k: int, dropout: float) -> nn.Sequential:
    """``TCN/tcn.py``'s TemporalConvNet: ``levels`` blocks of ``hidden`` channels at dilations 1, 2, 4, ..."""
    widths = [n_in] + [hidden] * levels
    return nn.Sequential(*[AuthorsBlock(widths[i], widths[i + 1], k, 2**i, (k - 1) * 2**i, dropout)
                           for i in range(levels)])


class AuthorsTCN(nn.Module):
    """``poly_music/model.py``: the blocks, a linear layer, ``.double()`` and a sigmoid."""

    def __init__(self, hidden, levels, k, dropout):
        super().__init__()
        self.tcn = authors_blocks(88, hidden, levels, k, dropout)
        self.linear = nn.Linear(hidden, 88)

    def forward(self, x):                       # 1 x T x 88
        y = self.tcn(x.transpose(1, 2)).transpose(1, 2)
        return torch.sigmoid(self.linear(y).double())


class AuthorsMnistTCN(nn.Module):
    """``mnist_pixel/model.py``: the blocks from one input channel, a linear layer on the last step, log-softmax."""

    def __init__(self, hidden, levels, k, dropout):
        super().__init__()
        self.tcn = authors_blocks(1, hidden, levels, k, dropout)
        self.linear = nn.Linear(hidden, 10)

    def forward(self, x):                       # N x 1 x 784
        return F.log_softmax(self.linear(self.tcn(x)[:, :, -1]), dim=1)


def mnist_race(args, device, report: Report) -> dict:
    """The authors' pixel-MNIST loop against train.py's, on the same TCN setting (--batches batches a slice)."""
    from torchvision import datasets, transforms

    d = parse_args(["--task", "smnist"])
    mnist = load_mnist(args.data_dir)       # verifies the files in the data root (copied from the mirror if needed)
    # torchvision finds those .gz files in <root>/MNIST/raw and extracts them without a download
    usual_set = datasets.MNIST(data_root(args.data_dir), train=True, download=True, transform=transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]))
    seed_everything(0)
    authors = AuthorsMnistTCN(d.hidden, d.levels, d.k, d.dropout).to(device)
    pipelines = {"usual: the authors' pmnist_test.py loop, fp32": TrainingPipeline(
        endless(torch.utils.data.DataLoader(usual_set, batch_size=d.batch_size, shuffle=True)), authors,
        torch.optim.Adam(authors.parameters(), lr=d.lr), device, amp=False,
        step=lambda model, batch: (F.nll_loss(model(batch[0].to(device).view(-1, 1, 784)), batch[1].to(device)),
                                   {}))}
    for amp in [False] + ([True] if native_bf16(device) else []):
        seed_everything(0)
        ours = TaskModel(**model_kwargs(d)).to(device)
        loader = task_loader("smnist", mnist.train_x, mnist.train_y, d.batch_size, shuffle=True, device=device)
        pipelines[f"train.py --task smnist, {precision_name(amp)}"] = TrainingPipeline(
            endless(loader), ours, OPTIMIZERS[d.optimizer](ours.parameters(), lr=d.lr), device, amp=amp,
            step=STEPS["smnist"])
    report.say(f"TCN training speed on sequential MNIST (k={d.k}, {d.levels} levels of {d.hidden}, batches of "
               f"{d.batch_size}), {describe_device(device)}, torch {torch.__version__}; median of {args.repeats} "
               f"interleaved slices of {args.batches} batches")
    time_interleaved(pipelines, args.batches, args.repeats, warmup=2)
    return rates(pipelines, args.batches * d.batch_size, "images", report, width=52)


class Usual:
    """music_test.py's train(), one pass over the pieces per slice."""

    def __init__(self, pieces: list[torch.Tensor], setting: dict, device):
        seed_everything(0)
        self.model = AuthorsTCN(setting["hidden"], setting["levels"], setting["k"], setting["dropout"]).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=2e-3)
        self.pieces = [p.float().to(device) for p in pieces]
        self.times: list[float] = []

    def train(self, n: int) -> float:
        self.model.train()
        total_loss, t0 = 0.0, time.perf_counter()
        for data_line in self.pieces[:n]:
            x, y = data_line[:-1], data_line[1:]
            self.optimizer.zero_grad()
            output = self.model(x.unsqueeze(0)).squeeze(0)
            loss = -torch.trace(torch.matmul(y, torch.log(output).float().t())
                                + torch.matmul((1 - y), torch.log(1 - output).float().t()))
            total_loss += loss.item()
            loss.backward()
            self.optimizer.step()
        return time.perf_counter() - t0


class Ours:
    """train.py's step, update and loader, one pass over the pieces per slice."""

    def __init__(self, pieces: Sequences, setting: dict, device, batch_size: int, amp: bool):
        seed_everything(0)
        self.model = TCN(88, 88, setting["hidden"], setting["levels"], setting["k"], setting["dropout"]).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=2e-3)
        self.loader = TensorLoader(pieces.data, pieces.lengths, batch_size=batch_size, device=device,
                                   transform=torch.Tensor.float)
        self.device, self.amp, self.update = device, amp, clipped_update(setting["clip"])
        self.times: list[float] = []

    def train(self, n: int) -> float:
        self.model.train()
        t0 = time.perf_counter()
        for batch in self.loader:

            def forward(batch=batch):
                with autocast(self.device, self.amp):
                    loss, _ = step(self.model, batch)
                return loss

            self.update(forward, self.model, self.optimizer)
        return time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=sorted(PAPER_SETTINGS) + ["smnist"], default="jsb",
                   help="music set, or smnist (sequential MNIST)")
    p.add_argument("--data-dir", default=None, help="writable data root (as in train.py)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"], help="where to train")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed passes per pipeline (interleaved)")
    p.add_argument("--pieces", type=positive_int, default=None, help="pieces per pass (default: all)")
    p.add_argument("--batches", type=positive_int, default=20, help="smnist: batches per timed slice")
    p.add_argument("--out", type=Path, default=OUT, help="folder for <dataset>-<device>.txt (what is printed)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    report = Report()
    if args.dataset == "smnist":
        rate = mnist_race(args, device, report)
        return finish(rate, report, args.out / f"smnist-{device.type}.txt")
    setting = PAPER_SETTINGS[args.dataset]
    train = load_polyphonic(args.dataset, args.data_dir)["train"]
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: args.pieces]
    pieces = Sequences(train.data[order], train.lengths[order])
    frames = int((pieces.lengths - 1).sum())
    pipelines = {
        "usual: the authors' music_test.py loop, fp32": Usual([pieces[i] for i in range(len(pieces))], setting,
                                                              device),
        "train.py, one piece per step, fp32": Ours(pieces, setting, device, 1, amp=False),
        "train.py, batches of 8 pieces, fp32": Ours(pieces, setting, device, 8, amp=False),
        "train.py, batches of 16 pieces, fp32": Ours(pieces, setting, device, 16, amp=False),
    }
    if native_bf16(device):     # emulated bf16 is slower than fp32: timed only where the device computes it natively
        pipelines["train.py, batches of 16 pieces, bf16 autocast"] = Ours(pieces, setting, device, 16, amp=True)
    report.say(f"TCN training speed on {args.dataset} (k={setting['k']}, {setting['levels']} levels of "
               f"{setting['hidden']}), {len(pieces)} pieces = {frames:,} frames per pass, {describe_device(device)}, "
               f"torch {torch.__version__}; median of {args.repeats} interleaved passes")
    time_interleaved(pipelines, len(pieces), args.repeats, warmup=len(pieces))
    return finish(rates(pipelines, frames, "frames", report, width=52), report,
                  args.out / f"{args.dataset}-{device.type}.txt")


def finish(rate: dict[str, float], report: Report, path: Path) -> int:
    """Each pipeline's speed against the first (the usual loop), and the report written to ``path``."""
    usual = next(iter(rate))
    for name in list(rate)[1:]:
        report.say(f"ratio {name.split(', ', 1)[1]:<32} / usual: {rate[name] / rate[usual]:.2f}x")
    report.write(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

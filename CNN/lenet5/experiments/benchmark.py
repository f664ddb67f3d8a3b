"""Training throughput of LeNet-5: our in-memory tensor loader vs torchvision Dataset + DataLoader.

Both pipelines train the same model with the same recipe (train.py's defaults: Eq. 9 loss, SGD
with momentum, batch size and learning rate); only the way batches are produced differs:

* ours:       the uint8 training set sits in memory as one tensor; a batch is an index_select of
              a random permutation, converted to float in [0, 1] (common.data.TensorLoader);
* DataLoader: torchvision.datasets.MNIST with transforms.ToTensor(), torch.utils.data.DataLoader
              with shuffle=True, for each num_workers given (0 is PyTorch's default).

Each pipeline runs one warm-up slice, then --repeats timed slices of --batches batches, the
pipelines taking turns so that drifts in machine load hit all of them alike; we report the median
images/s, the ratio of ours to the best DataLoader setting, and the time each pipeline needs to
produce one epoch of batches without any model. Not a test: timings on
a shared machine are noisy, so read medians and ratios. What it prints also goes to
CNN/lenet5/results/experiments/benchmark/<variant>.txt; the story is in CNN/lenet5/EXPERIMENTS.md.

    python CNN/lenet5/experiments/benchmark.py                    # -> results/experiments/benchmark/paper.txt
    python CNN/lenet5/experiments/benchmark.py --variant modern --workers 0
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from common.cli import positive_int
from common.data import TensorLoader, data_root, load_mnist
from common.fileio import atomic_target
from common.training import describe_device, seed_everything
from CNN.lenet5.model import MODELS
from CNN.lenet5.train import make_step
from CNN.lenet5.train import parse_args as train_defaults

OUT = Path(__file__).resolve().parents[1] / "results" / "experiments" / "benchmark"


def write_text(text: str, path: Path) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text(text)


def time_training(batches, model, optimizer, step, n_batches: int) -> float:
    """Seconds to train on ``n_batches`` batches drawn from the endless iterator ``batches``."""
    t0 = time.perf_counter()
    for _ in range(n_batches):
        loss, _ = step(model, next(batches))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - t0


def time_epoch_of_batches(loader) -> float:
    """Seconds to produce one epoch of batches, no model: the loader's own cost."""
    t0 = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - t0


def endless(loader):
    while True:
        yield from loader


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="writable data root (as in train.py)")
    p.add_argument("--variant", choices=sorted(MODELS), default="paper", help="which network to train")
    p.add_argument("--batches", type=positive_int, default=400, help="batches per timed slice")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed slices per pipeline (interleaved)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to try")
    p.add_argument("--out", type=Path, default=OUT, help="folder for <variant>.txt (what is printed)")
    args = p.parse_args(argv)
    lines = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    defaults = train_defaults([])
    bs = defaults.batch_size
    from torchvision import datasets, transforms

    data = load_mnist(args.data_dir)       # verifies the files in the data root (copied from the mirror if needed)
    # torchvision finds the verified .gz files in <root>/MNIST/raw and extracts them without a download
    dataset = datasets.MNIST(data_root(args.data_dir), train=True, transform=transforms.ToTensor(), download=True)
    pipelines = {"ours (TensorLoader)": TensorLoader(data.train_x, data.train_y, batch_size=bs, shuffle=True)}
    for w in args.workers:
        pipelines[f"DataLoader (num_workers={w})"] = torch.utils.data.DataLoader(
            dataset, batch_size=bs, shuffle=True, num_workers=w, persistent_workers=w > 0)
    say(f"LeNet-5 ({args.variant}) training throughput, batch size {bs}, "
          f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}; median of {args.repeats} "
          f"interleaved slices of {args.batches} batches after a warm-up")

    step = make_step(args.variant, defaults.rbf_j)
    runs = {}
    for name, loader in pipelines.items():
        seed_everything(0)
        model = MODELS[args.variant]()
        optimizer = torch.optim.SGD(model.parameters(), lr=defaults.lr, momentum=defaults.momentum)
        runs[name] = (endless(loader), model, optimizer, [])
        time_training(runs[name][0], model, optimizer, step, args.batches)  # warm-up (and worker start)
    for _ in range(args.repeats):
        for name, (batches, model, optimizer, times) in runs.items():
            times.append(time_training(batches, model, optimizer, step, args.batches))
    rates = {}
    for name, (*_, times) in runs.items():
        rates[name] = args.batches * bs / statistics.median(times)
        spread = ", ".join(f"{args.batches * bs / t:,.0f}" for t in times)
        say(f"{name:<28}{rates[name]:>10,.0f} images/s   (slices: {spread})")
    ours_name = next(iter(rates))
    best = max((n for n in rates if n != ours_name), key=rates.get)
    say(f"ratio ours / best DataLoader ({best}): {rates[ours_name] / rates[best]:.2f}x")

    say("time to produce one epoch of batches, no model (median of 3):")
    for name, loader in pipelines.items():
        t = statistics.median(time_epoch_of_batches(loader) for _ in range(3))
        say(f"  {name:<28}{t:>8.2f} s")
    write_text("\n".join(lines) + "\n", args.out / f"{args.variant}.txt")
    print(f"written to {args.out / f'{args.variant}.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Training throughput of LeNet-5: our in-memory tensor loader vs torchvision Dataset + DataLoader.

Both pipelines train the same model with the same recipe (train.py's defaults: Eq. 9 loss, SGD
with momentum, batch size and learning rate); only the way batches are produced differs:

* ours:       the uint8 training set sits in memory as one tensor; a batch is an index_select of
              a random permutation, converted to float in [0, 1] (common.data.TensorLoader);
* DataLoader: torchvision.datasets.MNIST with transforms.ToTensor(), torch.utils.data.DataLoader
              with shuffle=True, for each num_workers given (0 is PyTorch's default).

Each pipeline runs one warm-up slice, then --repeats timed slices of --batches batches; we report
the median images/s and the ratio of ours to the best DataLoader setting. Not a test: timings on
a shared machine are noisy, so read medians and ratios.

    python CNN/lenet5/benchmark.py
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from common.cli import positive_int
from common.data import TensorLoader, data_root, ensure_dataset, load_mnist
from common.training import describe_device, seed_everything
from CNN.lenet5.model import LeNet5, map_loss
from CNN.lenet5.train import parse_args as train_defaults


def time_pipeline(batches_iter, model, optimizer, n_batches: int) -> float:
    """Seconds to train on ``n_batches`` batches drawn from ``batches_iter``."""
    t0 = time.perf_counter()
    for _ in range(n_batches):
        x, y = next(batches_iter)
        loss = map_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - t0


def endless(loader):
    while True:
        yield from loader


def measure(name: str, loader, args, defaults) -> float:
    seed_everything(0)
    model = LeNet5()
    optimizer = torch.optim.SGD(model.parameters(), lr=defaults.lr, momentum=defaults.momentum)
    batches = endless(loader)
    time_pipeline(batches, model, optimizer, args.batches)  # warm-up (and DataLoader worker start)
    times = [time_pipeline(batches, model, optimizer, args.batches) for _ in range(args.repeats)]
    rate = args.batches * defaults.batch_size / statistics.median(times)
    spread = ", ".join(f"{args.batches * defaults.batch_size / t:,.0f}" for t in times)
    print(f"{name:<28}{rate:>10,.0f} images/s   (runs: {spread})")
    return rate


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="writable data root (as in train.py)")
    p.add_argument("--batches", type=positive_int, default=400, help="batches per timed slice")
    p.add_argument("--repeats", type=positive_int, default=5, help="timed slices per pipeline")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader num_workers to try")
    args = p.parse_args(argv)
    defaults = train_defaults([])
    from torchvision import datasets, transforms

    root = ensure_dataset("mnist", args.data_dir)
    data = load_mnist(root)
    print(f"LeNet-5 training throughput, batch size {defaults.batch_size}, {describe_device(torch.device('cpu'))}, "
          f"torch {torch.__version__}; median of {args.repeats} x {args.batches} batches after a warm-up")
    ours = measure("ours (TensorLoader)", TensorLoader(data.train_x, data.train_y, batch_size=defaults.batch_size,
                                                       shuffle=True), args, defaults)
    # torchvision finds the verified .gz files in <root>/MNIST/raw and extracts them without a download
    dataset = datasets.MNIST(data_root(root), train=True, transform=transforms.ToTensor(), download=True)
    theirs = {}
    for workers in args.workers:
        loader = torch.utils.data.DataLoader(dataset, batch_size=defaults.batch_size, shuffle=True,
                                             num_workers=workers, persistent_workers=workers > 0)
        theirs[workers] = measure(f"DataLoader (num_workers={workers})", loader, args, defaults)
    best = max(theirs, key=theirs.get)
    print(f"ratio ours / best DataLoader (num_workers={best}): {ours / theirs[best]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

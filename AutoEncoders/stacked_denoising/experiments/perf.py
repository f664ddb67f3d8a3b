"""Performance analysis of the stacked denoising autoencoder of Vincent et al. (2010) (issue 39), measured by
common.perf: throughput, step and epoch time, peak memory of training and evaluation, the cost along the number
of hidden layers (SdA-1, -2, -3, of 1,000 units each), the pretraining steps, and a profile of one step.

The main step is train.py's supervised fine-tuning: the encoders plus a logistic regression, SGD on batches of
10, bf16 autocast where --amp auto picks it. Beside it: the greedy pretraining's step of the first two
denoising autoencoders (masking noise, reconstruction cross-entropy, SGD on batches of 10).

    python AutoEncoders/stacked_denoising/experiments/perf.py          # -> results/experiments/perf/ (~2 minutes)
    python AutoEncoders/stacked_denoising/experiments/perf.py --quick  # seconds: -> runs/stacked_denoising-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from common import perf
from common.data import TensorLoader, load_mnist
from common.training import classification_step
from AutoEncoders.stacked_denoising.model import StackedDenoisingAutoencoder
from AutoEncoders.stacked_denoising.train import flat
from AutoEncoders.stacked_denoising.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
EVAL_BATCH = 1000          # train.py's validation and test batches


def sizes(layers: int) -> tuple[int, ...]:
    d = train_defaults([])
    return (784, *[d.hidden[0]] * layers)


def finetune(layers: int, x, y, test_x, test_y, device, amp: bool) -> perf.Workload:
    """SdA-``layers`` fine-tuned as train.py fine-tunes it (the weights' values do not change the cost)."""
    d = train_defaults([])
    model = StackedDenoisingAutoencoder(sizes(layers), corruption=d.corruption, level=d.noise).to(device)
    step = classification_step(F.cross_entropy, predict=StackedDenoisingAutoencoder.predict)
    train = TensorLoader(x, y, batch_size=d.batch_size, shuffle=True, seed=0, device=device, transform=flat)
    test = TensorLoader(test_x, test_y, batch_size=min(EVAL_BATCH, len(test_y)), device=device, transform=flat)
    optimizer = torch.optim.SGD(model.parameters(), lr=d.lr)
    return perf.Workload(model, perf.fit_step(model, optimizer, step, train, device=device, amp=amp),
                         d.batch_size, eval_step=perf.eval_step(model, step, test, device=device, amp=amp),
                         eval_items=min(EVAL_BATCH, len(test_y)), device=device)


def pretrain(layer: int, x, device, amp: bool) -> perf.Workload:
    """The pretraining step of denoising autoencoder ``layer`` (1-based) on the clean codes of those below, as
    train.py's pretrain() runs it."""
    d = train_defaults([])
    model = StackedDenoisingAutoencoder(sizes(layer), corruption=d.corruption, level=d.noise).to(device)
    dae = model.layers[layer - 1]
    with torch.no_grad():
        codes = model.features(flat(x).to(device), depth=layer - 1)
    loader = TensorLoader(codes, batch_size=d.pretrain_batch_size, shuffle=True, seed=0, device=device,
                          transform=None)

    def step(dae, batch):
        (x,) = batch
        loss = dae.loss(x)
        return loss, {"n": len(x), "loss": loss.item() * len(x)}

    optimizer = torch.optim.SGD(dae.parameters(), lr=d.pretrain_lr)
    return perf.Workload(dae, perf.fit_step(dae, optimizer, step, loader, device=device, amp=amp),
                         d.pretrain_batch_size, device=device)


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR)
    d = train_defaults([])
    data = load_mnist(args.data_dir, n_val=d.n_val)
    n_test = 100 if args.quick else 2 * EVAL_BATCH
    x, y = perf.subset(data.train_x, 400), perf.subset(data.train_y, 400)
    test_x, test_y = perf.subset(data.test_x, n_test), perf.subset(data.test_y, n_test)
    points = [(str(n), perf.builder(finetune, layers=n, x=x, y=y, test_x=test_x, test_y=test_y, device=s.device,
                                    amp=s.amp)) for n in (1, 2, 3)]
    extra = [(f"Pretraining step, autoencoder {k} ({sizes(k)[-2]}-{sizes(k)[-1]}, batch {d.pretrain_batch_size})",
              perf.builder(pretrain, layer=k, x=x, device=s.device, amp=s.amp)) for k in (1, 2)]
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="images", axis="hidden layers of 1,000", points=points,
        main=str(len(d.hidden)), extra=extra,
        workload=f"SdA-{len(d.hidden)} fine-tuning, batch {d.batch_size}, SGD", eval_desc=f"batches of "
        f"{min(EVAL_BATCH, n_test)} test images", device=s.device, precision=s.precision, quick=args.quick,
        epoch=(len(data.train_y), f"{len(data.train_y):,} training images"),
        data_bytes=perf.nbytes(data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y),
        notes=[f"A run pretrains each autoencoder for {d.pretrain_epochs} epochs, then fine-tunes until "
               f"{d.patience} epochs pass without a better validation error (at most {d.epochs}).",
               "Batches of 10 keep the matrices small: per-operation overhead is a large part of a step."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

"""Performance analysis of the deep autoencoder of Hinton & Salakhutdinov (2006) (issue 39), measured by
common.perf: throughput, step and epoch time, peak memory of training and evaluation, the cost along the depth
of the encoder (code size 30), the RBM pretraining step, and a profile of one fine-tuning step.

The main step is train.py's fine-tuning of the 784-1000-500-250-30 autoencoder (unrolled: 8 layers): Adam on
batches of 100, the cross-entropy of the logistic outputs, bf16 autocast where --amp auto picks it. Beside it:
one CD-1 step of the first RBM (784-1000) with the SOM's momentum and weight cost (fp32, as pretrain() runs it).

    python AutoEncoders/deep_autoencoder/experiments/perf.py          # -> results/experiments/perf/ (~2 minutes)
    python AutoEncoders/deep_autoencoder/experiments/perf.py --quick  # seconds -> runs/deep_autoencoder-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import perf
from common.data import TensorLoader, load_mnist
from AutoEncoders.deep_autoencoder.model import MNIST_LAYERS, DeepAutoencoder, rbm_stack
from AutoEncoders.deep_autoencoder.train import MOMENTUM, RBM_LR, WEIGHT_COST, flat_pixels, reconstruction_step
from AutoEncoders.deep_autoencoder.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
EVAL_BATCH = 1000          # train.py's validation and test batches
ENCODERS = {"-".join(map(str, layers)): layers for layers in
            ((784, 30), (784, 1000, 30), (784, 1000, 500, 30), MNIST_LAYERS)}


def finetune(layers: tuple[int, ...], x, test_x, device, amp: bool) -> perf.Workload:
    """The autoencoder of ``layers`` fine-tuned as train.py fine-tunes it (random start: the same cost)."""
    d = train_defaults([])
    model = DeepAutoencoder(layers).to(device)
    train = TensorLoader(x, batch_size=d.batch_size, shuffle=True, seed=0, device=device, transform=flat_pixels)
    test = TensorLoader(test_x, batch_size=min(EVAL_BATCH, len(test_x)), device=device, transform=flat_pixels)
    optimizer = torch.optim.Adam(model.parameters(), lr=d.lr)
    return perf.Workload(model, perf.fit_step(model, optimizer, reconstruction_step, train, device=device, amp=amp),
                         d.batch_size, eval_step=perf.eval_step(model, reconstruction_step, test, device=device,
                                                                amp=amp),
                         eval_items=min(EVAL_BATCH, len(test_x)), device=device)


def rbm_step(x, device) -> perf.Workload:
    """One CD-1 update of the first RBM as train.py's pretrain() makes it (momentum 0.9, weight cost)."""
    d = train_defaults([])
    rbm = rbm_stack(MNIST_LAYERS)[0].to(device)
    params = {"w": rbm.w, "b_vis": rbm.b_vis, "b_hid": rbm.b_hid}
    incs = {name: torch.zeros_like(p) for name, p in params.items()}
    lr = RBM_LR[rbm.hidden]
    batches = perf.endless(TensorLoader(flat_pixels(x).to(device), batch_size=d.rbm_batch_size, shuffle=True,
                                        seed=0, device=device, transform=None))

    def step() -> int:
        (vb,) = next(batches)
        grads, _ = rbm.cd1(vb)
        with torch.no_grad():
            for key, p in params.items():
                g = grads[key] - WEIGHT_COST * p if key == "w" else grads[key]
                incs[key].mul_(MOMENTUM[1]).add_(g, alpha=lr)
                p.add_(incs[key])
        return len(vb)

    return perf.Workload(rbm, step, d.rbm_batch_size, device=device)


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR)
    d = train_defaults([])
    data = load_mnist(args.data_dir, n_val=d.n_val)
    n_test = 100 if args.quick else 2 * EVAL_BATCH
    x, test_x = perf.subset(data.train_x, 4 * d.batch_size), perf.subset(data.test_x, n_test)
    encoders = dict(list(ENCODERS.items())[-3:]) if args.quick else ENCODERS
    points = [(name, perf.builder(finetune, layers=layers, x=x, test_x=test_x, device=s.device, amp=s.amp))
              for name, layers in encoders.items()]
    net = "-".join(map(str, MNIST_LAYERS))
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="images", axis="encoder layers", points=points, main=net,
        extra=[(f"RBM pretraining step (784-1000, CD-1, batch {d.rbm_batch_size}, fp32)",
                perf.builder(rbm_step, x=x, device=s.device))],
        workload=f"the {net} autoencoder, fine-tuning with Adam, batch {d.batch_size}",
        eval_desc=f"batches of {min(EVAL_BATCH, n_test)} test images", device=s.device, precision=s.precision,
        quick=args.quick, epoch=(len(data.train_x), f"{len(data.train_x):,} training images"),
        data_bytes=perf.nbytes(data.train_x, data.train_y, data.val_x, data.val_y, data.test_x, data.test_y),
        notes=[f"A run pretrains four RBMs for {d.pretrain_epochs} passes each, then fine-tunes for {d.epochs} epochs.",
               "The decoder mirrors the encoder: the unrolled net has twice the encoder's layers."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

"""Performance analysis of the VAE of Kingma & Welling (2013) in Burda et al.'s setting (issue 39), measured by
common.perf: throughput, step and epoch time, peak memory of training and of the importance-sampled evaluation,
how that evaluation's cost grows with k (its number of samples per image: 1 ... 5,000), and a profile of one
training step.

Training is train.py's: 784-200-200-50 with tanh units, fused Adam, batches of 20 dynamically binarised images,
bf16 autocast where --amp auto picks it. Evaluation is train.py's test_log_likelihood: log p(x) of batches of 100
test images, importance-sampled with k samples each (fp32, as train.py measures it).

    python AutoEncoders/vae/experiments/perf.py           # -> AutoEncoders/vae/results/experiments/perf/ (~3 min)
    python AutoEncoders/vae/experiments/perf.py --quick   # seconds: a smoke test -> runs/vae-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import perf
from common.data import TensorLoader, load_mnist, to_unit_float
from AutoEncoders.vae.model import VAE
from AutoEncoders.vae.train import EVAL_BATCH, SETTINGS, binarize, elbo_step, test_log_likelihood
from AutoEncoders.vae.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
KS = (1, 10, 100, 1000, 5000)


def workload(k: int, x, test_bin, pixel_means, device, amp: bool) -> perf.Workload:
    """The VAE trained as train.py trains it; its evaluation: log p(x) of ``test_bin`` with ``k`` samples."""
    d = train_defaults([])
    setting = SETTINGS[d.setting]
    model = VAE(hidden=d.hidden, latent=d.latent, init=setting["init"]).to(device)
    model.init_output_bias(pixel_means.to(device))
    loader = TensorLoader(x, batch_size=d.batch_size, shuffle=True, seed=0, device=device, transform=binarize)
    optimizer = torch.optim.Adam(model.parameters(), lr=d.lr, betas=(0.9, 0.999), eps=1e-4, fused=True)

    def evaluate() -> int:
        test_log_likelihood(model, test_bin, k, device, progress=False)
        model.train()
        return len(test_bin)

    return perf.Workload(model, perf.fit_step(model, optimizer, elbo_step, loader, device=device, amp=amp),
                         d.batch_size, eval_step=evaluate, eval_items=len(test_bin), device=device)


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR)
    d = train_defaults([])
    data = load_mnist(args.data_dir, n_val=0)
    x = perf.subset(data.train_x, 20 * d.batch_size)
    test_bin = binarize(perf.subset(data.test_x, 10 if args.quick else EVAL_BATCH), torch.Generator().manual_seed(0))
    pixel_means = to_unit_float(data.train_x).flatten(1).mean(0)
    ks = (1, 10, 50) if args.quick else KS
    points = [(str(k), perf.builder(workload, k=k, x=x, test_bin=test_bin, pixel_means=pixel_means,
                                    device=s.device, amp=s.amp)) for k in ks]
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="images", axis="k (importance samples)", points=points,
        main=str(ks[-1]), sweep_phase="eval",
        workload=f"VAE {'-'.join(map(str, (784, *d.hidden, d.latent)))}, batch {d.batch_size}, fused Adam",
        eval_desc=f"log p(x) with k = {ks[-1]:,} samples, batches of {len(test_bin)} test images, fp32",
        device=s.device, precision=s.precision, quick=args.quick,
        epoch=(len(data.train_x), f"{len(data.train_x):,} training images"),
        data_bytes=perf.nbytes(data.train_x, data.train_y, data.test_x, data.test_y),
        notes=[f"A run is {d.epochs:,} epochs (Burda et al.'s 8 stages), then one evaluation of the 10,000 test "
               f"images with k = {d.k:,}; the test bound after every epoch is one more pass over them (k = 1).",
               "The evaluation's cost is linear in k: every image is encoded once and decoded k times."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

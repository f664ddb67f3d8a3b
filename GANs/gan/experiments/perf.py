"""Performance analysis of the MNIST GAN of Goodfellow et al. (2014) (issue 39), measured by common.perf:
throughput, step and epoch time, peak memory of training and of the Parzen-window evaluation, how that
evaluation's cost grows with the number of generator samples (Table 1 uses 10,000), and a profile of one
training step.

Training is train.py's: one batch of 100 real images and 100 samples, both players' gradients from the same
forward pass, one SGD step with momentum (AdversarialStep), bf16 autocast where --amp auto picks it.
Evaluation is Table 1's estimate (parzen.py, float64): the log-likelihood of a batch of 100 test images under the
Parzen window on the samples, at one width sigma of the grid.

    python GANs/gan/experiments/perf.py           # -> GANs/gan/results/experiments/perf/ (about 2 minutes)
    python GANs/gan/experiments/perf.py --quick   # seconds: a smoke test -> runs/gan-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import perf
from common.data import TensorLoader, load_mnist
from GANs.gan.parzen import SIGMA_GRID, parzen_log_likelihood
from GANs.gan.train import MOMENTUM, N_SAMPLES, N_VALID_SIGMA, AdversarialStep, Pair, generate, mnist_splits
from GANs.gan.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
SAMPLES = (1000, 3000, 10_000, 30_000)
PARZEN_BATCH = 100         # parzen_log_likelihood's rows at a time


def workload(n_samples: int, x, test_x, device, amp: bool) -> perf.Workload:
    """The pair trained as train.py trains it; its evaluation: the Parzen log-likelihood of ``test_x`` under
    ``n_samples`` samples of the generator (made once, as an evaluation makes them)."""
    d = train_defaults([])
    pair = Pair().to(device)
    pair.G.init_output_bias(x.mean(0).to(device))
    loader = TensorLoader(x, batch_size=d.batch_size, shuffle=True, seed=0, device=device, transform=None)
    optimizer = torch.optim.SGD(pair.parameters(), lr=d.lr, momentum=MOMENTUM[0])
    adversarial = AdversarialStep()
    samples = generate(pair.G, n_samples, seed=0)
    sigma = SIGMA_GRID[3]

    def evaluate() -> int:
        parzen_log_likelihood(test_x, samples, sigma, batch=PARZEN_BATCH)
        return len(test_x)

    return perf.Workload(pair, perf.fit_step(pair, optimizer, adversarial.step, loader, device=device, amp=amp,
                                             update=adversarial.update), d.batch_size,
                         eval_step=evaluate, eval_items=len(test_x), device=device)


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR)
    d = train_defaults([])
    data = load_mnist(args.data_dir, n_val=10_000)
    splits = mnist_splits(data, quick=False)
    x, test_x = perf.subset(splits["train"], 8 * d.batch_size), perf.subset(splits["test"], PARZEN_BATCH)
    counts = (100, 300, 1000) if args.quick else SAMPLES
    main = 1000 if args.quick else N_SAMPLES
    points = [(str(n), perf.builder(workload, n_samples=n, x=x, test_x=test_x, device=s.device, amp=s.amp))
              for n in counts]
    per_estimate = 10 * N_VALID_SIGMA + len(data.test_x)
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="images", axis="generator samples", points=points, main=str(main),
        sweep_phase="eval", workload=f"G and D, batch {d.batch_size} real + {d.batch_size} generated, one SGD step",
        eval_desc=f"Parzen log-likelihood under {main:,} samples, batches of {PARZEN_BATCH} test images, float64",
        device=s.device, precision=s.precision, quick=args.quick,
        epoch=(len(splits["train"]), f"{len(splits['train']):,} training images"),
        data_bytes=perf.nbytes(data.train_x, data.val_x, data.test_x, *splits.values()),   # uint8 and float
        notes=[f"Table 1's estimate scores {per_estimate:,} images (10 widths on {N_VALID_SIGMA:,} validation "
               f"images, then the {len(data.test_x):,} test images) under {N_SAMPLES:,} samples; a run does it "
               f"on the validation images every {d.eval_every} epochs to keep the best generator.",
               "The estimate's cost is linear in the samples: every image is compared with every sample."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

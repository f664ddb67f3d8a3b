"""Train the MNIST GAN of Goodfellow et al. (2014) as the authors' code does, and measure Table 1's Parzen estimate.

    python GANs/gan/train.py                  # 300 epochs on training images 0-49,999 -> results/
    python GANs/gan/train.py --resume         # continue the interrupted run
    python GANs/gan/train.py --quick          # seconds: a tiny subset, two epochs
    python GANs/gan/train.py --evaluate GANs/gan/results/generator.pt

The authors' ``mnist.yaml`` (goodfeli/adversarial): batches of 100 real images and 100 samples; both players'
gradients taken on the same batch (the discriminator's objective and the generator's non-saturating one, with
the same dropout masks) and applied in one SGD step (k = 1, Algorithm 1); learning rate 0.1 divided by 1.000004
after every update (not below 1e-6); momentum rising linearly from 0.5 after the first epoch to 0.7 at the
250th. The yaml has no stopping rule: we train --epochs and keep the generator of the epoch whose samples give
the best Parzen log-likelihood of the validation images (50,000-59,999), measured every --eval-every epochs.

Table 1: the Parzen-window log-likelihood of the MNIST test images under 10,000 generator samples, sigma chosen
on validation: 225 +/- 2 (band 215-245).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch

from common.cli import Run, base_parser, positive_int, run
from common.data import ImageSplits, TensorLoader, load_mnist, to_unit_float
from common.plots import image_grid
from common.results import metric, print_metrics
from common.summary import count_parameters
from common.training import atomic_save, describe_device, fit, load_weights
from GANs.gan.model import Discriminator, Generator, discriminator_loss, generator_loss
from GANs.gan.parzen import choose_sigma, parzen_log_likelihood

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "Goodfellow et al. 2014, Generative Adversarial Nets"
CLAIM = "Table 1: MNIST test Parzen-window log-likelihood, nats"
PAPER_LL, BAND = 225.0, (215.0, 245.0)
LR_DECAY, MIN_LR = 1.000004, 1e-6
MOMENTUM = (0.5, 0.7, 250)          # initial, final, the epoch where it saturates
N_SAMPLES, N_VALID_SIGMA = 10_000, 1_000
QUICK = {"train": 1000, "valid": 300, "test": 300, "samples": 500}


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=300, batch_size=100, lr=0.1, paper_dir=PAPER_DIR)
    p.add_argument("--eval-every", type=positive_int, default=5,
                   help="epochs between validation Parzen estimates (the generator kept is the best of them)")
    p.add_argument("--evaluate", type=Path, default=None, metavar="GENERATOR_PT",
                   help="only measure the Parzen log-likelihood of a saved generator's samples")
    return p.parse_args(argv)


class Pair(torch.nn.Module):
    """The two players in one module, so that one optimiser, one checkpoint and one ``fit`` hold both."""

    def __init__(self):
        super().__init__()
        self.G, self.D = Generator(), Discriminator()


class AdversarialStep:
    """fit's step and update for one batch of Algorithm 1 as the authors' code runs it.

    The step draws 100 noise vectors, computes D on the real batch and on G's samples once (one dropout mask
    each) and keeps both objectives; the update gives D the gradient of its objective and G the gradient of
    its non-saturating objective, both through that same forward pass, and takes one SGD step for all the
    parameters; then the learning rate is divided by 1.000004."""

    def __init__(self):
        self.d_obj = self.g_obj = None

    def step(self, pair: Pair, batch):
        (x,) = batch
        fake = pair.G.images(pair.G.noise(len(x)))
        real_logits, fake_logits = pair.D(x), pair.D(fake)
        self.d_obj, self.g_obj = discriminator_loss(real_logits, fake_logits), generator_loss(fake_logits)
        with torch.no_grad():
            fooled = (fake_logits > 0).sum().item()      # samples D takes for data
            missed = (real_logits < 0).sum().item()      # data D takes for samples
        return self.d_obj + self.g_obj, {"n": len(x), "d_loss": self.d_obj.item() * len(x),
                                         "g_loss": self.g_obj.item() * len(x), "d_fooled": fooled,
                                         "d_missed": missed}

    def update(self, forward, pair: Pair, optimizer) -> None:
        forward()
        d_params, g_params = list(pair.D.parameters()), list(pair.G.parameters())
        d_grads = torch.autograd.grad(self.d_obj, d_params, retain_graph=True)
        g_grads = torch.autograd.grad(self.g_obj, g_params)
        for p, g in zip(d_params + g_params, d_grads + g_grads):
            p.grad = g
        optimizer.step()
        self.after_update(optimizer)

    @staticmethod
    def after_update(optimizer) -> None:
        """pylearn2's ExponentialDecay: the learning rate divided by 1.000004 after every update."""
        for group in optimizer.param_groups:
            group["lr"] = max(group["lr"] / LR_DECAY, MIN_LR)


class Monitor:
    """fit's on_epoch_end hook: the momentum schedule (pylearn2's MomentumAdjustor), and every ``every`` epochs
    the validation Parzen log-likelihood of N samples (sigma chosen on the first 1,000 validation images),
    recorded as ``val_parzen_nll`` (fit keeps the generator of the lowest). Nothing here sees the test set."""

    def __init__(self, pair: Pair, optimizer, valid: torch.Tensor, every: int, n_samples: int, seed: int,
                 momentum: bool = True):
        self.pair, self.optimizer, self.valid, self.every = pair, optimizer, valid, every
        self.n_samples, self.seed, self.momentum = n_samples, seed, momentum

    def __call__(self, history: list[dict]) -> None:
        epoch = history[-1]["epoch"]
        start, final, saturate = MOMENTUM
        alpha = min(1.0, max(0.0, (epoch - 1) / (saturate - 1)))
        for group in self.optimizer.param_groups if self.momentum else ():
            group["momentum"] = start * (1 - alpha) + final * alpha
        if epoch % self.every == 0 or epoch == 1:
            samples = generate(self.pair.G, self.n_samples, self.seed)
            sigma, _ = choose_sigma(self.valid[:N_VALID_SIGMA], samples)
            history[-1]["val_parzen_ll"] = parzen_log_likelihood(self.valid, samples, sigma).mean().item()
            history[-1]["val_parzen_sigma"] = sigma
            history[-1]["val_parzen_nll"] = -history[-1]["val_parzen_ll"]   # what fit's select minimises


def generate(G: Generator, n: int, seed: int) -> torch.Tensor:
    """n samples, flattened, from a fixed noise generator (the same noise at every evaluation)."""
    was_training = G.training
    G.eval()
    try:
        return G.sample(n, torch.Generator().manual_seed(seed)).flatten(1).cpu()
    finally:
        G.train(was_training)


def parzen_report(G: Generator, splits: dict[str, torch.Tensor], n_samples: int, seed: int) -> dict:
    """Table 1's procedure: n samples; sigma from the grid on the first 1,000 validation images; the mean
    log-likelihood of the test images and its standard error."""
    samples = generate(G, n_samples, seed)
    sigma, scores = choose_sigma(splits["valid"][:N_VALID_SIGMA], samples)
    ll = parzen_log_likelihood(splits["test"], samples, sigma)
    return {"parzen_ll": ll.mean().item(), "parzen_se": (ll.std() / math.sqrt(len(ll))).item(), "parzen_sigma": sigma,
            "sigma_scores": [[round(s, 5), round(v, 3)] for s, v in scores], "samples": n_samples}


def mnist_splits(data: ImageSplits, quick: bool) -> dict[str, torch.Tensor]:
    """The authors' MNIST: training images 0-49,999, validation 50,000-59,999, test the 10,000 test images;
    real values in [0, 1], flattened."""
    splits = {"train": data.train_x, "valid": data.val_x, "test": data.test_x}
    if quick:
        splits = {k: v[: QUICK[k]] for k, v in splits.items()}
    return {k: to_unit_float(v).flatten(1) for k, v in splits.items()}


def train(r: Run) -> int:
    args, device = r.args, r.device
    data = load_mnist(args.data_dir, n_val=10_000)
    splits = mnist_splits(data, args.quick)
    n_samples = QUICK["samples"] if args.quick else N_SAMPLES
    if args.quick:
        args.epochs, args.eval_every = min(args.epochs, 2), 1
    pair = Pair().to(device)
    if args.evaluate is not None:
        load_weights(pair.G, args.evaluate, device, fix="pass a generator state_dict saved by train.py "
                                                        "(e.g. GANs/gan/results/generator.pt)")
        report = parzen_report(pair.G, splits, n_samples, args.seed)
        print(f"test Parzen log-likelihood {report['parzen_ll']:.1f} +/- {report['parzen_se']:.1f} "
              f"(sigma {report['parzen_sigma']:.4f}, {n_samples} samples; {args.evaluate})")
        return 0

    pair.G.init_output_bias(splits["train"].mean(0))
    loader = TensorLoader(splits["train"], batch_size=args.batch_size, shuffle=True, seed=args.seed, device=device,
                          transform=None)
    optimizer = torch.optim.SGD(pair.parameters(), lr=args.lr, momentum=MOMENTUM[0])
    adversarial = AdversarialStep()
    print(f"G {count_parameters(pair.G):,} and D {count_parameters(pair.D):,} parameters; {len(splits['train']):,} "
          f"training images, batches of {args.batch_size}; device {describe_device(device)}")
    history = fit(pair, optimizer, adversarial.step, loader, epochs=args.epochs, device=device, amp=args.amp,
                  out=r.out, resume=r.resumes(), curve_keys=("d_loss", "g_loss"), select="val_parzen_nll",
                  update=adversarial.update, progress=not args.no_progress, desc="GAN",
                  on_epoch_end=Monitor(pair, optimizer, splits["valid"], args.eval_every, n_samples, args.seed))
    best = min((h for h in history if "val_parzen_nll" in h), key=lambda h: h["val_parzen_nll"])

    t_test = time.perf_counter()
    report = parzen_report(pair.G, splits, n_samples, args.seed)
    atomic_save(pair.G.state_dict(), r.out / "generator.pt")
    image_grid(generate(pair.G, 100, args.seed + 1).view(-1, 28, 28), ncols=10, path=r.out / "samples.png")
    record = r.write_metrics(
        paper=PAPER, model=pair.G, epochs=len(history), weights="generator.pt",
        metrics=[metric("parzen_ll", report["parzen_ll"], paper=PAPER_LL, band=BAND, split="test", claim=CLAIM)],
        training_time_s=sum(h["epoch_time_s"] for h in history) + time.perf_counter() - t_test,
        **report, kept_epoch=best["epoch"], val_parzen_ll=round(best["val_parzen_ll"], 3),
        hyperparameters={"batch_size": args.batch_size, "lr": args.lr, "lr_decay_per_update": LR_DECAY,
                         "momentum": list(MOMENTUM), "epochs": args.epochs, "eval_every": args.eval_every},
    )
    print_metrics(record["metrics"], r.out)
    print(f"test Parzen log-likelihood {report['parzen_ll']:.1f} +/- {report['parzen_se']:.1f} (sigma "
          f"{report['parzen_sigma']:.4f}; generator of epoch {best['epoch']}); the paper: 225 +/- 2")
    return 0


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: Table 1's procedure on the shipped generator: the same 10,000 samples (the
    run's seed), sigma re-chosen on the first 1,000 validation images, the test images' mean log-likelihood. All
    10,000 test images: exact up to float rounding; --fast: a fixed random 1,000, within 3 standard errors."""
    from common.verify import Check, claimed, rebuild

    G = rebuild(record, results)
    splits = mnist_splits(load_mnist(n_val=10_000), quick=False)
    if fast:
        splits["test"] = splits["test"][torch.randperm(len(splits["test"]),
                                                       generator=torch.Generator().manual_seed(1))[:1000]]
    report = parzen_report(G, splits, record["samples"], record["seed"])
    n = len(splits["test"])
    tolerance = 3 * report["parzen_se"] * math.sqrt(1 - n / 10_000) if fast else 0.01
    return [Check("parzen_ll", claimed(record, "parzen_ll"), report["parzen_ll"], tolerance,
                  f"{n:,} test images, {record['samples']:,} samples, sigma {report['parzen_sigma']:.4f} chosen on "
                  "validation" + ("; tolerance 3 standard errors of the subset mean" if fast else ""))]


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())

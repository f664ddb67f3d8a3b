"""Train the MNIST GAN of Goodfellow et al. (2014) as the authors' code does, and measure Table 1's Parzen estimate.

    python GANs/gan/train.py                  # 300 epochs on training images 0-49,999 -> results/
    python GANs/gan/train.py --resume         # continue the interrupted run
    python GANs/gan/train.py --epochs 600 --resume   # continue a finished run to more epochs (exact)
    python GANs/gan/train.py --quick          # seconds: a tiny subset, two epochs
    python GANs/gan/train.py --evaluate GANs/gan/results/generator.pt
    python GANs/gan/train.py --noise gaussian --out GANs/gan/results/experiments/gaussian   # z ~ N(0, I)
    python GANs/gan/train.py --evaluate GANs/gan/results/generator.pt --sigma-grid 0.13 0.28 31

The authors' ``mnist.yaml`` (goodfeli/adversarial): batches of 100 real images and 100 samples; both players'
gradients taken on the same batch (the discriminator's objective and the generator's non-saturating one, with
the same dropout masks) and applied in one SGD step (k = 1, Algorithm 1); learning rate 0.1 divided by 1.000004
after every update (not below 1e-6); momentum rising linearly from 0.5 after the first epoch to 0.7 at the
250th; the noise uniform on [-sqrt 3, sqrt 3] (--noise gaussian: N(0, I), the authors' Generator's default; see
EXPERIMENTS.md, "Issue 42"). The yaml has no stopping rule: we train --epochs and keep the generator of the epoch
whose samples give the best Parzen log-likelihood of the validation images (50,000-59,999), measured every
--eval-every epochs. Nothing depends on --epochs but the end of the loop, so `--epochs N --resume` continues a
finished run to N epochs exactly as an uninterrupted N-epoch run (the learning rate keeps its per-update decay
from the checkpoint's optimiser state). The noise is saved in the checkpoint and in metrics.json, and read back
by --resume, --evaluate and verify().

Table 1: the Parzen-window log-likelihood of the MNIST test images under 10,000 generator samples, sigma chosen
on validation: 225 +/- 2 (band 215-245). sigma's grid is the authors' (parzen_ll.py: 10 values log-spaced from 0.1
to 1, chosen on the first 1,000 validation images); --sigma-grid MIN MAX NUM searches a finer one, still on
validation only.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common.cli import Run, base_parser, positive_int, run
from common.data import ImageSplits, TensorLoader, load_mnist, to_unit_float
from common.fileio import UserError
from common.plots import image_grid
from common.results import metric, print_metrics
from common.summary import count_parameters
from common.training import CheckpointError, atomic_save, describe_device, fit, load_checkpoint, load_weights
from GANs.gan.model import NOISES, Discriminator, Generator, discriminator_loss, generator_loss
from GANs.gan.parzen import SIGMA_GRID, choose_sigma, parzen_log_likelihood

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "Goodfellow et al. 2014, Generative Adversarial Nets"
CLAIM = "Table 1: MNIST test Parzen-window log-likelihood, nats"
PAPER_LL, BAND = 225.0, (215.0, 245.0)
LR_DECAY, MIN_LR = 1.000004, 1e-6
MOMENTUM = (0.5, 0.7, 250)          # initial, final, the epoch where it saturates
N_SAMPLES, N_VALID_SIGMA = 10_000, 1_000
AUTHORS_SIGMA_GRID = (0.1, 1.0, 10)   # parzen_ll.py: numpy.logspace(sigma_start=-1, sigma_end=0, num=cross_val=10)
QUICK = {"train": 1000, "valid": 300, "test": 300, "samples": 500, "epochs": 2}


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=300, batch_size=100, lr=0.1, paper_dir=PAPER_DIR)
    p.add_argument("--eval-every", type=positive_int, default=5,
                   help="epochs between validation Parzen estimates (the generator kept is the best of them)")
    p.add_argument("--evaluate", type=Path, default=None, metavar="GENERATOR_PT",
                   help="only measure the Parzen log-likelihood of a saved generator's samples")
    p.add_argument("--noise", choices=NOISES, default=None,
                   help="the generator's noise p_z: uniform on [-sqrt 3, sqrt 3] (the published mnist.yaml) or "
                        "gaussian N(0, I). Default: uniform for a new run; the checkpoint's with --resume; the one "
                        "recorded in the metrics.json beside the weights with --evaluate (a different one is an error)")
    p.add_argument("--sigma-grid", type=float, nargs=3, default=list(AUTHORS_SIGMA_GRID), metavar=("MIN", "MAX", "NUM"),
                   help="the Parzen window widths tried on the first 1,000 validation images: NUM values log-spaced "
                        "from MIN to MAX (the authors' parzen_ll.py: 0.1 1 10; a finer grid, e.g. 0.13 0.28 31)")
    args = p.parse_args(argv)
    lo, hi, num = args.sigma_grid
    if not (0 < lo <= hi and num >= 1 and num == int(num)):
        p.error(f"--sigma-grid: want 0 < MIN <= MAX and a whole NUM >= 1, got {lo:g} {hi:g} {num:g}")
    args.sigma_grid = [lo, hi, int(num)]
    return args


def sigma_grid(lo: float, hi: float, num: int) -> tuple[float, ...]:
    """num widths log-spaced from lo to hi, as parzen_ll.py's ``numpy.logspace(sigma_start, sigma_end, num)``
    (its exponents are log10 of ours); (0.1, 1, 10) gives the authors' grid, SIGMA_GRID."""
    return tuple(np.logspace(np.log10(lo), np.log10(hi), int(num)).tolist())


class Pair(torch.nn.Module):
    """The two players in one module, so that one optimiser, one checkpoint and one ``fit`` hold both."""

    def __init__(self, noise: str = "uniform"):
        super().__init__()
        self.G, self.D = Generator(noise=noise), Discriminator()


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
    the validation Parzen log-likelihood of N samples (sigma chosen from ``grid`` on the first 1,000 validation
    images), recorded as ``val_parzen_nll`` (fit keeps the generator of the lowest). Nothing here sees the test
    set. Its state in the checkpoint is the generator's noise, which a resumed run must share."""

    def __init__(self, pair: Pair, optimizer, valid: torch.Tensor, every: int, n_samples: int, seed: int,
                 momentum: bool = True, grid: tuple[float, ...] = SIGMA_GRID):
        self.pair, self.optimizer, self.valid, self.every = pair, optimizer, valid, every
        self.n_samples, self.seed, self.momentum, self.grid = n_samples, seed, momentum, grid

    def state_dict(self) -> dict:
        return {"noise": self.pair.G.noise_kind}

    def load_state_dict(self, state: dict) -> None:
        if state.get("noise", "uniform") != self.pair.G.noise_kind:
            raise CheckpointError(f"the checkpoint was trained with {state.get('noise')} noise, this generator draws "
                                  f"{self.pair.G.noise_kind}; resume with --noise {state.get('noise')}")

    def __call__(self, history: list[dict]) -> None:
        epoch = history[-1]["epoch"]
        start, final, saturate = MOMENTUM
        alpha = min(1.0, max(0.0, (epoch - 1) / (saturate - 1)))
        for group in self.optimizer.param_groups if self.momentum else ():
            group["momentum"] = start * (1 - alpha) + final * alpha
        if epoch % self.every == 0 or epoch == 1:
            samples = generate(self.pair.G, self.n_samples, self.seed)
            sigma, _ = choose_sigma(self.valid[:N_VALID_SIGMA], samples, self.grid)
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


def parzen_report(G: Generator, splits: dict[str, torch.Tensor], n_samples: int, seed: int,
                  grid: tuple[float, ...] = SIGMA_GRID) -> dict:
    """Table 1's procedure: n samples (from G's own noise); sigma from ``grid`` on the first 1,000 validation
    images; the mean log-likelihood of the test images and its standard error."""
    samples = generate(G, n_samples, seed)
    sigma, scores = choose_sigma(splits["valid"][:N_VALID_SIGMA], samples, grid)
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


def recorded_noise(weights: Path) -> str | None:
    """The noise a saved generator was trained with: ``model.kwargs.noise`` of the metrics.json beside it (runs
    from before the option: the Generator's default, uniform); None when no metrics file names these weights."""
    metrics = Path(weights).parent / "metrics.json"
    if not metrics.is_file():
        return None
    spec = json.loads(metrics.read_text()).get("model", {})
    if spec.get("class") != "Generator" or spec.get("weights", "model.pt") != Path(weights).name:
        return None
    return spec.get("kwargs", {}).get("noise", "uniform")


def checkpoint_noise(path: Path) -> str:
    """The noise of the run a checkpoint continues (its Monitor state; runs from before the option: uniform)."""
    hook = load_checkpoint(path, fix="start again without --resume").get("hook") or {}
    return hook.get("noise", "uniform")


def resolve_noise(asked: str | None, recorded: str | None, where: str) -> str:
    """--noise against what a checkpoint or metrics file recorded: the recorded one unless asked otherwise, an
    error when they differ, uniform when neither says."""
    if asked is not None and recorded is not None and asked != recorded:
        raise UserError(f"--noise {asked}, but {where} was trained with {recorded} noise; drop --noise or pass "
                        f"--noise {recorded}")
    return asked or recorded or "uniform"


def load_generator(weights: Path, device: torch.device | str = "cpu", noise: str | None = None) -> Generator:
    """A generator saved by train.py, rebuilt with the noise it was trained with (:func:`recorded_noise`)."""
    G = Generator(noise=resolve_noise(noise, recorded_noise(weights), str(weights))).to(device)
    load_weights(G, weights, device, fix="pass a generator state_dict saved by train.py "
                                         "(e.g. GANs/gan/results/generator.pt)")
    return G


def train(r: Run) -> int:
    args, device = r.args, r.device
    grid = sigma_grid(*args.sigma_grid)
    if args.evaluate is None:   # the noise first: a --noise that contradicts the checkpoint fails before any work
        noise = resolve_noise(args.noise, checkpoint_noise(r.out / "checkpoint.pt") if r.resumes() else None,
                              str(r.out / "checkpoint.pt"))
    data = load_mnist(args.data_dir, n_val=10_000)
    splits = mnist_splits(data, args.quick)
    n_samples = QUICK["samples"] if args.quick else N_SAMPLES
    if args.quick:
        args.epochs, args.eval_every = min(args.epochs, QUICK["epochs"]), 1
    if args.evaluate is not None:
        G = load_generator(args.evaluate, device, args.noise)
        report = parzen_report(G, splits, n_samples, args.seed, grid)
        print(f"test Parzen log-likelihood {report['parzen_ll']:.1f} +/- {report['parzen_se']:.1f} "
              f"(sigma {report['parzen_sigma']:.4f} of {len(grid)} from {grid[0]:.4g} to {grid[-1]:.4g}; "
              f"{n_samples} samples, {G.noise_kind} noise; {args.evaluate})")
        return 0
    pair = Pair(noise).to(device)

    pair.G.init_output_bias(splits["train"].mean(0))
    loader = TensorLoader(splits["train"], batch_size=args.batch_size, shuffle=True, seed=args.seed, device=device,
                          transform=None)
    optimizer = torch.optim.SGD(pair.parameters(), lr=args.lr, momentum=MOMENTUM[0])
    adversarial = AdversarialStep()
    print(f"G {count_parameters(pair.G):,} and D {count_parameters(pair.D):,} parameters; {len(splits['train']):,} "
          f"training images, batches of {args.batch_size}; {noise} noise; device {describe_device(device)}")
    history = fit(pair, optimizer, adversarial.step, loader, epochs=args.epochs, device=device, amp=args.amp,
                  out=r.out, resume=r.resumes(), curve_keys=("d_loss", "g_loss"), select="val_parzen_nll",
                  update=adversarial.update, progress=not args.no_progress, desc="GAN",
                  on_epoch_end=Monitor(pair, optimizer, splits["valid"], args.eval_every, n_samples, args.seed,
                                       grid=grid))
    best = min((h for h in history if "val_parzen_nll" in h), key=lambda h: h["val_parzen_nll"])

    t_test = time.perf_counter()
    report = parzen_report(pair.G, splits, n_samples, args.seed, grid)
    atomic_save(pair.G.state_dict(), r.out / "generator.pt")
    image_grid(generate(pair.G, 100, args.seed + 1).view(-1, 28, 28), ncols=10, path=r.out / "samples.png")
    record = r.write_metrics(
        paper=PAPER, model=pair.G, model_kwargs={"noise": noise}, epochs=len(history), weights="generator.pt",
        metrics=[metric("parzen_ll", report["parzen_ll"], paper=PAPER_LL, band=BAND, split="test", claim=CLAIM)],
        training_time_s=sum(h["epoch_time_s"] for h in history) + time.perf_counter() - t_test,
        **report, kept_epoch=best["epoch"], val_parzen_ll=round(best["val_parzen_ll"], 3), sigma_grid=args.sigma_grid,
        hyperparameters={"batch_size": args.batch_size, "lr": args.lr, "lr_decay_per_update": LR_DECAY,
                         "momentum": list(MOMENTUM), "epochs": args.epochs, "eval_every": args.eval_every,
                         "noise": noise},
    )
    print_metrics(record["metrics"], r.out)
    print(f"test Parzen log-likelihood {report['parzen_ll']:.1f} +/- {report['parzen_se']:.1f} (sigma "
          f"{report['parzen_sigma']:.4f}; generator of epoch {best['epoch']}); the paper: 225 +/- 2")
    return 0


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: Table 1's procedure on the shipped generator: the same 10,000 samples (the
    run's seed, the run's noise: ``rebuild`` passes ``model.kwargs``), sigma re-chosen on the first 1,000
    validation images from the run's grid, the test images' mean log-likelihood. All
    10,000 test images: exact up to float rounding; --fast: a fixed random 1,000, within 3 standard errors."""
    from common.verify import Check, claimed, rebuild

    G = rebuild(record, results)
    splits = mnist_splits(load_mnist(n_val=10_000), quick=False)
    if fast:
        splits["test"] = splits["test"][torch.randperm(len(splits["test"]),
                                                       generator=torch.Generator().manual_seed(1))[:1000]]
    report = parzen_report(G, splits, record["samples"], record["seed"],
                           sigma_grid(*record.get("sigma_grid", AUTHORS_SIGMA_GRID)))
    n = len(splits["test"])
    tolerance = 3 * report["parzen_se"] * math.sqrt(1 - n / 10_000) if fast else 0.01
    return [Check("parzen_ll", claimed(record, "parzen_ll"), report["parzen_ll"], tolerance,
                  f"{n:,} test images, {record['samples']:,} samples, sigma {report['parzen_sigma']:.4f} chosen on "
                  "validation" + ("; tolerance 3 standard errors of the subset mean" if fast else ""))]


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())

"""Short probes of where the paper's setup loses Parzen log-likelihood, compared on validation (EXPERIMENTS.md).

    python GANs/gan/experiments/probes.py                       # every probe not run yet, 30 epochs each
    python GANs/gan/experiments/probes.py --only adam --epochs 100

Every probe trains the same two networks as train.py from the same start and measures, every 5 epochs, the
validation Parzen log-likelihood exactly as train.py's Monitor does (10,000 samples, sigma chosen on the first
1,000 validation images, the mean over the 10,000 validation images). Nothing here sees the test set. The
curves are compared with train.py's own run at the same epochs (results/history.json).

* alternating: Algorithm 1 as the paper prints it, k = 1: first a step of D on a real batch and a batch of
  samples, then a step of G on fresh noise through the updated D (the authors' code moves both at once,
  from one forward pass).
* adam: the authors' simultaneous update, with Adam (lr 2e-4, betas 0.5 / 0.999: the setting of Radford et al.
  2016, the recipe most GANs since use) instead of SGD with momentum and its schedules.
* adam_alternating: both changes.

Also measured once: the same procedure with 10,000 real training images in place of samples (real_data.json),
the estimator's ceiling for a generator that reproduced the training set.

Each probe writes results/experiments/probes/<name>/history.json and curves.png (weights stay untracked) and
the summary table results/experiments/probes/summary.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from common.data import TensorLoader, load_mnist
from common.training import fit, resolve_device, seed_everything, write_json
from GANs.gan.model import generator_loss
from GANs.gan.parzen import choose_sigma, parzen_log_likelihood
from GANs.gan.train import N_SAMPLES, N_VALID_SIGMA, PAPER_DIR, AdversarialStep, Monitor, Pair, mnist_splits

OUT = PAPER_DIR / "results" / "experiments" / "probes"
PROBES = ("alternating", "adam", "adam_alternating")
ADAM = {"lr": 2e-4, "betas": (0.5, 0.999)}


class AlternatingStep(AdversarialStep):
    """Algorithm 1 with k = 1: D's step on (x, G(z)), then G's step on G(z') through the updated D."""

    def update(self, forward, pair: Pair, optimizer) -> None:
        forward()                                            # D's objective on this batch (and the NaN check)
        d_params = list(pair.D.parameters())
        for p, g in zip(d_params, torch.autograd.grad(self.d_obj, d_params)):
            p.grad = g
        for p in pair.G.parameters():
            p.grad = None                                    # the optimiser skips G in this step
        optimizer.step()
        g_obj = generator_loss(pair.D(pair.G.images(pair.G.noise(len(self.x)))))
        g_params = list(pair.G.parameters())
        for p, g in zip(g_params, torch.autograd.grad(g_obj, g_params)):
            p.grad = g
        for p in d_params:
            p.grad = None
        optimizer.step()
        self.after_update(optimizer)

    def step(self, pair: Pair, batch):
        self.x = batch[0]
        return super().step(pair, batch)


def run_probe(name: str, epochs: int, splits: dict, out: Path, device) -> list[dict]:
    seed_everything(0)
    pair = Pair().to(device)
    pair.G.init_output_bias(splits["train"].mean(0))
    loader = TensorLoader(splits["train"], batch_size=100, shuffle=True, seed=0, device=device, transform=None)
    adam = name.startswith("adam")
    optimizer = (torch.optim.Adam(pair.parameters(), **ADAM) if adam
                 else torch.optim.SGD(pair.parameters(), lr=0.1, momentum=0.5))
    step = AlternatingStep() if name.endswith("alternating") else AdversarialStep()
    if adam:
        step.after_update = lambda optimizer: None           # Adam: no learning-rate decay
    monitor = Monitor(pair, optimizer, splits["valid"], 5, N_SAMPLES, 0, momentum=not adam)
    return fit(pair, optimizer, step.step, loader, epochs=epochs, device=device, out=out,
               curve_keys=("d_loss", "g_loss"), update=step.update, on_epoch_end=monitor, progress=False,
               desc=f"probe {name}")


def real_data_ceiling(splits: dict, out: Path) -> dict:
    """Table 1's procedure with 10,000 real training images in place of the samples: what a generator that
    reproduced the training set would score (measured on the test images, as Table 1)."""
    path = out / "real_data.json"
    if not path.exists():
        samples = splits["train"][:N_SAMPLES]
        sigma, scores = choose_sigma(splits["valid"][:N_VALID_SIGMA], samples)
        ll = parzen_log_likelihood(splits["test"], samples, sigma)
        write_json({"samples": "training images 0-9,999", "parzen_ll": round(ll.mean().item(), 3),
                    "parzen_se": round((ll.std() / len(ll) ** 0.5).item(), 3), "parzen_sigma": sigma,
                    "sigma_scores": [[round(a, 5), round(b, 3)] for a, b in scores]}, path)
    return json.loads(path.read_text())


def summary(out: Path = OUT) -> str:
    runs = {"train.py (results/)": PAPER_DIR / "results" / "history.json"}
    runs |= {name: out / name / "history.json" for name in PROBES}
    curves = {name: {h["epoch"]: h["val_parzen_ll"] for h in json.loads(path.read_text()) if "val_parzen_ll" in h}
              for name, path in runs.items() if path.exists()}
    probed = [c for name, c in curves.items() if name in PROBES] or list(curves.values())
    epochs = sorted({e for c in probed for e in c if e % 10 == 0})       # the probes' epochs, side by side
    lines = ["| Run | " + " | ".join(f"epoch {e}" for e in epochs) + " | best of the run (epoch) |",
             "|---|" + "---|" * (len(epochs) + 1)]
    for name, c in curves.items():
        best = max(c, key=c.get)
        lines.append(f"| {name} | " + " | ".join(f"{c[e]:.1f}" if e in c else "" for e in epochs)
                     + f" | {c[best]:.1f} ({best}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=PROBES, nargs="+", default=None, help="run these probes only")
    p.add_argument("--epochs", type=int, default=30, help="epochs per probe")
    p.add_argument("--data-dir", default=None, help="writable data root (as in train.py)")
    p.add_argument("--out", type=Path, default=OUT, help="folder of the probes' runs")
    args = p.parse_args(argv)
    device = resolve_device("auto")
    splits = mnist_splits(load_mnist(args.data_dir, n_val=10_000), quick=False)
    ceiling = real_data_ceiling(splits, args.out)
    print(f"real training images as samples: test Parzen {ceiling['parzen_ll']:.1f} +/- {ceiling['parzen_se']:.1f} "
          f"(sigma {ceiling['parzen_sigma']:.4f})")
    for name in args.only or PROBES:
        if not (args.out / name / "history.json").exists():
            run_probe(name, args.epochs, splits, args.out / name, device)
    table = summary(args.out)
    (args.out / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())

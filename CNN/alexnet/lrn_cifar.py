"""Sec. 3.3 of Krizhevsky, Sutskever & Hinton (2012) on CIFAR-10: response normalisation lowers the test error
of a four-layer CNN from 13% to 11%.

    python CNN/alexnet/lrn_cifar.py                        # both nets, the full schedule (a GPU job: hours on a CPU)
    python CNN/alexnet/lrn_cifar.py --net lrn              # one of the two nets (run two processes side by side)
    python CNN/alexnet/lrn_cifar.py --schedule 150,10,10   # a shorter first phase
    python CNN/alexnet/lrn_cifar.py --resume               # finished nets read back, an interrupted one continues
    python CNN/alexnet/lrn_cifar.py --quick                # seconds: a tiny subset, writes runs/

The paper gives the net only by reference to cuda-convnet's code and parameter files:
layers-conv-local-11pct.cfg with two response-normalisation layers, layers-conv-local-13pct.cfg
without them, and one parameter file for both. We build both as ``ConvLocalNet(lrn=True/False)`` and train them
with those parameters: SGD with momentum 0.9, batch 128, learning rate 0.001 for weights and 0.002 for biases,
weight decay 0.004 on the two locally connected layers and the output layer; random 24x24 patches of the 32x32
images and their mirror images; the schedule of cuda-convnet's methodology notes: a long phase at that rate, then
10 epochs at a tenth of it and 10 at a hundredth (``--schedule``). The test error is that of cuda-convnet's
multi-view test (``--multiview-test``: nine patches on a 3x3 grid of offsets, softmax outputs averaged); the
centre patch alone is reported beside it.

Nothing is chosen on the test set: all hyper-parameters are the published ones; the length of the first phase is
set by the compute at hand and is the same for both nets. Training uses all 50,000 training images (the
methodology's last phases fold the validation batch back in).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from common.cli import Run, base_parser, resumes, run
from common.data import image_loaders, load_cifar10, random_crop_flip
from common.plots import save_figure
from common.results import command_line, metric, print_metrics, write_metrics
from common.training import (atomic_save, classification_step, describe_device, evaluate, fit, seed_everything,
                             write_json)
from CNN.alexnet.model import CIFAR_CROP, CIFAR_LRN_PAPER_ERROR, ConvLocalNet, conv_local_table, mean_patch

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "Krizhevsky, Sutskever & Hinton 2012, Sec. 3.3: response normalisation on CIFAR-10 (13% -> 11%)"
NETS = {"plain": False, "lrn": True}
# layer-params-conv-local-11pct.cfg (the same for the 13pct net): epsW, epsB, momentum, weight cost per layer.
LR_W, LR_B, MOMENTUM = 0.001, 0.002, 0.9
WEIGHT_COST = {"conv1": 0.0, "conv2": 0.0, "local3": 0.004, "local4": 0.004, "fc": 0.004}
SCHEDULE = (450, 10, 10)   # epochs at lr, lr/10, lr/100: about 300 + 150 epochs, then 10 + 10 (methodology)
# Our bands, set before the run: each net within 1.5 points of the paper's error, and LRN at least 1 point better
# (the paper: 2 points).
ERROR_BAND = 1.5
GAIN_PAPER, GAIN_BAND = 2.0, (1.0, None)
QUICK_SUBSET = (512, 0, 256)   # --quick: training, validation and test images


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=sum(SCHEDULE), batch_size=128, lr=LR_W, paper_dir=PAPER_DIR,
                    lr_help="learning rate of the weights in the first phase (biases: twice that)")
    p.add_argument("--net", choices=["both", *NETS], default="both",
                   help="which net to train (both: one after the other, then the summary)")
    p.add_argument("--schedule", default=",".join(map(str, SCHEDULE)),
                   help="epochs at lr, lr/10 and lr/100, comma-separated (overrides --epochs)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA graphs on a GPU)")
    p.epilog = "Results go to <out>/lrn-cifar10/{plain,lrn}/ and <out>/lrn-cifar10/metrics.json."
    args = p.parse_args(argv)
    try:
        args.phases = tuple(int(e) for e in args.schedule.split(","))
    except ValueError:
        p.error(f"--schedule: three comma-separated epoch counts, got {args.schedule!r}")
    if len(args.phases) != 3 or min(args.phases) < 0 or args.phases[0] < 1:
        p.error(f"--schedule: three epoch counts (the first >= 1), got {args.schedule!r}")
    return args


def lr_factor(phases: tuple[int, int, int]):
    """Epoch -> learning-rate factor: 1 for the first phase, 1/10 for the second, 1/100 after."""
    return lambda epoch: 1.0 if epoch < phases[0] else 0.1 if epoch < phases[0] + phases[1] else 0.01


def optimizer_for(model: ConvLocalNet, lr: float) -> torch.optim.SGD:
    """cuda-convnet's per-layer parameters as SGD parameter groups: weights at lr with the layer's weight cost,
    biases at twice lr and no weight cost."""
    groups = []
    for name, cost in WEIGHT_COST.items():
        layer = getattr(model, name)
        groups.append({"params": [layer.weight], "lr": lr, "weight_decay": cost})
        groups.append({"params": [layer.bias], "lr": lr * LR_B / LR_W, "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=lr, momentum=MOMENTUM)


def views(x: torch.Tensor, size: int = CIFAR_CROP) -> list[torch.Tensor]:
    """cuda-convnet's multi-view test: nine patches, at offsets {0, b, 2b} x {0, b, 2b} for a border b of
    (32 - 24) / 2 = 4 pixels, not mirrored. The fifth is the centre patch."""
    b = (x.shape[-1] - size) // 2
    return [x[..., i:i + size, j:j + size] for i in (0, b, 2 * b) for j in (0, b, 2 * b)]


def nine_view_step(model: torch.nn.Module, batch) -> tuple[None, dict]:
    """An :func:`evaluate` step: errors of the nine views' averaged softmax outputs, and of the centre patch."""
    x, y = batch
    probs = [F.softmax(model(v.contiguous()).float(), 1) for v in views(x)]
    return None, {"n": len(y), "errors": int((torch.stack(probs).mean(0).argmax(1) != y).sum()),
                  "centre_errors": int((probs[4].argmax(1) != y).sum())}


def test_errors(model: torch.nn.Module, loader, device, amp: bool) -> dict:
    """Test error (%) of the centre patch alone and of the nine views (softmax outputs averaged)."""
    r = evaluate(model, loader, nine_view_step, device, amp)
    return {"test_error_centre_pct": 100.0 * r["centre_errors"], "test_error_pct": r["error_pct"],
            "n": len(loader.tensors[0])}


def train_net(name: str, data, args, out: Path, device, commit: str = "unknown") -> dict:
    """Train one of the two nets and write ``out/run.json``. With --resume a finished net is read back from
    it, an interrupted one continues from ``out/checkpoint.pt``."""
    done = out / "run.json"
    if args.resume and done.exists():
        print(f"{name}: finished earlier, read from {done}")
        return json.loads(done.read_text())
    seed_everything(args.seed)
    model = ConvLocalNet(NETS[name], mean_image=mean_patch(data.train_x)).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = optimizer_for(model, args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(args.phases))
    base = classification_step(F.cross_entropy)
    net = torch.compile(model, mode="reduce-overhead" if device.type == "cuda" else None) if args.compile else model

    def step(m, batch):                                 # random 24x24 patches and their mirror images
        x, y = batch
        x = random_crop_flip(x, pad=0, size=CIFAR_CROP)
        return base(net, (x.contiguous(memory_format=torch.channels_last) if channels_last else x, y))

    loaders = image_loaders(data, batch_size=args.batch_size, seed=args.seed, device=device, drop_last=True)
    t0 = time.perf_counter()
    history = fit(model, optimizer, step, loaders.train, epochs=sum(args.phases), scheduler=scheduler, device=device,
                  amp=args.amp, out=out, resume=resumes(args, out),
                  curve_keys=(), progress=not args.no_progress, desc=name)
    result = {"net": name, "lrn": NETS[name], "seed": args.seed, "epochs": len(history), "phases": list(args.phases),
              "device": describe_device(device), "torch": torch.__version__.split("+")[0], "compile": args.compile,
              "amp": args.amp, "commit": commit, "command": command_line(),
              **test_errors(model, loaders.test, device, args.amp),
              "final_train_error_pct": history[-1]["train_error_pct"],
              "train_time_s": sum(h["epoch_time_s"] for h in history), "wall_time_s": time.perf_counter() - t0,
              "curve": [(h["epoch"], round(h["train_error_pct"], 3), round(h["train_loss"], 5)) for h in history]}
    atomic_save(model.state_dict(), out / "model.pt")
    write_json(result, done)
    print(f"{name}: test error {result['test_error_pct']:.2f}% (nine views), "
          f"{result['test_error_centre_pct']:.2f}% (centre patch) after {len(history)} epochs")
    return result


def plot(runs: dict[str, dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in runs.items():
        epochs, err, _ = zip(*r["curve"])
        ax.plot(epochs, err, label=f"{'with' if r['lrn'] else 'without'} LRN: test {r['test_error_pct']:.2f}%")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training error on augmented patches (%)")
    ax.set_yscale("log")
    ax.set_title("Sec. 3.3 on CIFAR-10: the four-layer net with and without LRN")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=120)


def train(r: Run) -> int:
    args = r.args
    data = load_cifar10(args.data_dir, n_val=0)
    if args.quick:
        data = data.subset(*QUICK_SUBSET)
        args.phases = (1, 1, 0)
    out = r.out / "lrn-cifar10"
    print(conv_local_table(ConvLocalNet(True)))
    print(f"{len(data.train_y)} training images, {len(data.test_y)} test; device {describe_device(r.device)}; "
          f"schedule {args.phases} epochs at lr {args.lr:g}, /10, /100")
    names = list(NETS) if args.net == "both" else [args.net]
    runs = {name: train_net(name, data, args, out / name, r.device, r.commit) for name in names}
    if args.net != "both":
        return 0
    gain = runs["plain"]["test_error_pct"] - runs["lrn"]["test_error_pct"]
    metrics = [metric(f"test_error_{name}_pct", runs[name]["test_error_pct"], paper=CIFAR_LRN_PAPER_ERROR[name],
                      band=(CIFAR_LRN_PAPER_ERROR[name] - ERROR_BAND, CIFAR_LRN_PAPER_ERROR[name] + ERROR_BAND),
                      claim=f"Sec. 3.3: CIFAR-10 test error {'with' if name == 'lrn' else 'without'} LRN, %",
                      centre_patch=round(runs[name]["test_error_centre_pct"], 2)) for name in NETS]
    metrics.append(metric("lrn_gain_points", gain, paper=GAIN_PAPER, band=GAIN_BAND,
                          claim="Sec. 3.3: CIFAR-10 test error without minus with LRN, points"))
    plot(runs, out / "curves.png")
    # The nets may have trained in other processes or on other machines (--net, then --resume): device, commit
    # and torch are theirs, so this writes with common.results.write_metrics rather than Run.write_metrics.
    write_metrics(out, paper=PAPER, metrics=metrics, model=ConvLocalNet(True), model_kwargs={"lrn": True},
                  weights="lrn/model.pt", seed=args.seed, epochs=sum(args.phases),
                  wall_time_s=time.perf_counter() - r.started,
                  training_time_s=max(x["train_time_s"] for x in runs.values()),   # the nets trained side by side
                  device=" / ".join(sorted({x["device"] for x in runs.values()})),
                  commit=" / ".join(sorted({x["commit"] for x in runs.values()})), quick=args.quick,
                  torch=" / ".join(sorted({x["torch"] for x in runs.values()})),
                  runs=[{k: v for k, v in x.items() if k != "curve"} for x in runs.values()],
                  hyperparameters={"optimizer": f"SGD(momentum={MOMENTUM})", "batch_size": args.batch_size,
                                   "lr_weights": args.lr, "lr_biases": args.lr * LR_B / LR_W,
                                   "weight_decay": WEIGHT_COST, "schedule_epochs": list(args.phases),
                                   "augmentation": f"random {CIFAR_CROP}x{CIFAR_CROP} patches, mirrored with p=1/2",
                                   "test": "nine views (3x3 grid of patch offsets), softmax averaged",
                                   "preprocessing": "0-255 scale, centre patch of the mean image subtracted",
                                   "n_train": len(data.train_y), "amp": any(x["amp"] for x in runs.values()),
                                   "compile": any(x["compile"] for x in runs.values())})
    print_metrics(metrics, out)
    return 0


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())

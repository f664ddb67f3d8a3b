"""Does another memory layout speed up the TCN's causal convolutions on this CPU? A probe for issue 41's speed item.

For each of Table 1's stress-test TCNs (the width, kernel size and batch of ``train.py --task TASK``), one causal
dilated convolution, forward and backward, at the dilations of its first, middle and last level, computed three ways
on the same tensors:

* conv1d: what ``model.CausalConv1d`` does (N x C x T, ``F.pad`` on the left, ``F.conv1d``);
* conv2d: the same as a 1 x T image (``F.conv2d`` with dilation (1, d));
* conv2d channels-last: the same image in the channels-last layout (what speeds up 2-D convolutions on CPUs
  with AVX-512; the input's conversion is timed too).

The median of --repeats timed passes after two untimed ones; milliseconds per forward + backward, and the ratio
to conv1d. Not a test: timings on a shared machine are noisy. What it prints also goes to
CNN/tcn/results/experiments/conv_layout/cpu.txt.

    python CNN/tcn/experiments/conv_layout.py      # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common.benchmark import Report
from common.cli import positive_int
from common.training import describe_device
from CNN.tcn.train import TASK_NAMES, parse_args, sequence_length

OUT = Path(__file__).resolve().parents[1] / "results" / "experiments" / "conv_layout"


def conv1d(x, w, d):
    return F.conv1d(F.pad(x, ((w.shape[-1] - 1) * d, 0)), w, dilation=d)


def conv2d(x, w, d):
    return F.conv2d(F.pad(x, ((w.shape[-1] - 1) * d, 0)).unsqueeze(2), w.unsqueeze(2), dilation=(1, d)).squeeze(2)


def conv2d_channels_last(x, w, d):
    image = F.pad(x, ((w.shape[-1] - 1) * d, 0)).unsqueeze(2).contiguous(memory_format=torch.channels_last)
    return F.conv2d(image, w.unsqueeze(2), dilation=(1, d)).squeeze(2)


LAYOUTS = {"conv1d": conv1d, "conv2d": conv2d, "conv2d channels-last": conv2d_channels_last}


def time_ms(fn, x, w, d, repeats: int) -> float:
    def once():
        fn(x, w, d).sum().backward()

    for _ in range(2):
        once()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", nargs="+", choices=["smnist", "adding", "copy"], default=["smnist", "adding", "copy"])
    p.add_argument("--repeats", type=positive_int, default=7, help="timed passes per layout and layer")
    p.add_argument("--out", type=Path, default=OUT, help="folder of cpu.txt")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    report = Report()
    report.say(f"one causal convolution, forward + backward, ms (median of {args.repeats}); "
               f"{describe_device(torch.device('cpu'))}, torch {torch.__version__}")
    ratios = {name: [] for name in LAYOUTS}
    for task in args.task:
        a = parse_args(["--task", task])
        T = sequence_length(task, a.seq_len)
        for level in (0, a.levels // 2, a.levels - 1):
            d = 2**level
            x = torch.randn(a.batch_size, a.hidden, T, requires_grad=True)
            w = torch.randn(a.hidden, a.hidden, a.k, requires_grad=True)
            ms = {name: time_ms(fn, x, w, d, args.repeats) for name, fn in LAYOUTS.items()}
            for name in LAYOUTS:
                ratios[name].append(ms["conv1d"] / ms[name])
            cells = "  ".join(f"{name} {t:6.1f} ({ms['conv1d'] / t:.2f}x)" for name, t in ms.items())
            report.say(f"{TASK_NAMES[task]:<20} N={a.batch_size} C={a.hidden} T={T} k={a.k} d={d:<4} {cells}")
    report.say("median speed-up over conv1d: " + ", ".join(f"{name} {statistics.median(r):.2f}x"
                                                         for name, r in ratios.items() if name != "conv1d"))
    report.write(args.out / "cpu.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

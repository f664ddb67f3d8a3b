"""ResNet-20 training throughput with 1, 2, ... processes under torchrun (``common.distributed``) on this machine.

For each process count N it runs ``torchrun --standalone --nproc_per_node=N CNN/resnet/train.py --epochs E``
into a temporary folder (the paper's global batch of 128, each process taking 128 / N; on the CPU torchrun
gives each process one thread unless OMP_NUM_THREADS is set) and reads the training images/s that train.py
recorded in its metrics.json (training passes only: the test passes and the start are left out). Runs one
after the other, never side by side. What it prints also goes to
CNN/resnet/results/experiments/processes/<device>.txt.

    python CNN/resnet/experiments/processes.py                    # 1 and 2 processes, one epoch each
    python CNN/resnet/experiments/processes.py --processes 1 2 4 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from common.benchmark import Report
from common.cli import positive_int

PAPER_DIR = Path(__file__).resolve().parents[1]
OUT = PAPER_DIR / "results" / "experiments" / "processes"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="writable data root (as in train.py)")
    p.add_argument("--processes", type=positive_int, nargs="+", default=[1, 2], help="process counts to time")
    p.add_argument("--epochs", type=positive_int, default=1, help="epochs per run")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the processes train")
    p.add_argument("--out", type=Path, default=OUT, help="folder for <device>.txt (what is printed)")
    args = p.parse_args(argv)
    report = Report()

    threads = os.environ.get("OMP_NUM_THREADS")
    report.say(f"ResNet-20 training, global batch 128, {args.epochs} epoch(s) of 50,000 images per run, device "
               f"{args.device}, torch {torch.__version__}, {os.cpu_count()} CPU cores, OMP_NUM_THREADS "
               f"{threads or 'unset (torchrun: 1 per process when N > 1)'}")
    rates = {}
    for n in args.processes:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                   str(PAPER_DIR / "train.py"), "--epochs", str(args.epochs), "--device", args.device,
                   "--out", tmp, "--no-progress"] + (["--data-dir", args.data_dir] if args.data_dir else [])
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                return done.returncode
            record = json.loads((Path(tmp) / "metrics.json").read_text())
        rates[n] = record["train_images_per_s"]
        report.say(f"{n} process(es): {rates[n]:,.0f} training images/s  ({record['device']})")
    first = args.processes[0]
    for n in args.processes[1:]:
        report.say(f"ratio {n} / {first} processes: {rates[n] / rates[first]:.2f}x")
    report.write(args.out / f"{args.device}.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

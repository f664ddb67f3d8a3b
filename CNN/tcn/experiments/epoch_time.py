"""How long an epoch and a run of each of Table 1's stress tests take on this machine: a timing probe, not a run.

For each task, the network that ``train.py --task TASK [--model ARCH]`` builds, trained at the task's batch size
with its optimiser, clipping and step (``train.py``'s own ``STEPS``, ``TRAINING``, ``model_kwargs``) on batches of
the task's shape (random pixels for MNIST: the time does not depend on the values), in fp32 and with bf16 autocast
(where the device computes bf16 natively). ``--steps`` timed updates after ``--warmup`` untimed ones, in slices
that take turns between the two precisions (so that a drift in machine load hits both alike); the median
seconds per update times the updates of an epoch, plus the validation pass (forward only, timed on one
evaluation batch of 500) gives the epoch; the run is the task's epochs of that, plus the test pass in fp32. On a
busy machine the wall clock also counts the other jobs' turns: the process's own CPU seconds per update, divided
by its threads, are printed beside it as the estimate for a quiet machine (a lower bound: it assumes the threads
never wait for each other).

    python CNN/tcn/experiments/epoch_time.py                          # the four TCNs, fp32 and bf16
    python CNN/tcn/experiments/epoch_time.py --task smnist --model lstm --steps 5

What it prints also goes to CNN/tcn/results/experiments/epoch_time/<task>-<model>-<device>.txt. Timings on a
shared machine are noisy and pessimistic: read them as estimates.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from common.benchmark import Report
from common.cli import positive_int
from common.training import (autocast, clipped_update, describe_device, native_bf16, precision_name,
                             resolve_device, seed_everything, sgd_update)
from CNN.tcn import tasks
from CNN.tcn.model import TaskModel
from CNN.tcn.train import N_VAL_MNIST, OPTIMIZERS, STEPS, TASK_NAMES, model_kwargs, parse_args

OUT = Path(__file__).resolve().parents[1] / "results" / "experiments" / "epoch_time"
EVAL_BATCH = 500
TRAIN_SIZE = {"smnist": 60_000 - N_VAL_MNIST, "pmnist": 60_000 - N_VAL_MNIST,
              "adding": tasks.SIZES["adding"]["train"], "copy": tasks.SIZES["copy"]["train"]}
VALID_SIZE = {"smnist": N_VAL_MNIST, "pmnist": N_VAL_MNIST, "adding": tasks.SIZES["adding"]["valid"],
              "copy": tasks.SIZES["copy"]["valid"]}
TEST_SIZE = {"smnist": 10_000, "pmnist": 10_000, "adding": tasks.SIZES["adding"]["test"],
             "copy": tasks.SIZES["copy"]["test"]}


def batch_of(task: str, n: int, T: int | None, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of the task's shape: MNIST-like floats in [0, 1] with labels, or a draw of tasks.py."""
    g = torch.Generator().manual_seed(seed)
    if task in ("smnist", "pmnist"):
        return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    return tasks.make(task, n, T, seed)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=sorted(TASK_NAMES), nargs="+", default=["smnist", "pmnist", "adding", "copy"])
    p.add_argument("--model", choices=["tcn", "lstm", "gru", "rnn"], default="tcn")
    p.add_argument("--steps", type=positive_int, default=20, help="timed updates per precision")
    p.add_argument("--warmup", type=positive_int, default=2, help="untimed updates first, per precision")
    p.add_argument("--slice", type=positive_int, default=5, help="updates per slice (precisions take turns)")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--amp", choices=["both", "off"], default="both",
                   help="both: fp32 and bf16 autocast (bf16 only where the device computes it natively)")
    p.add_argument("--out", type=Path, default=OUT, help="folder of the reports")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    precisions = [False] + ([True] if args.amp == "both" and native_bf16(device) else [])
    for task in args.task:
        report = Report()
        targs = parse_args(["--task", task, "--model", args.model])
        seed_everything(0)
        model = TaskModel(**model_kwargs(targs)).to(device)
        n_params = sum(p.numel() for p in model.parameters())
        optimizers = {amp: OPTIMIZERS[targs.optimizer](model.parameters(), lr=targs.lr) for amp in precisions}
        update = clipped_update(targs.clip) if targs.clip > 0 else sgd_update
        step = STEPS[task]
        x, y = batch_of(task, targs.batch_size, targs.seq_len)
        batch = (x.to(device), y.to(device))
        times: dict[bool, list[float]] = {amp: [] for amp in precisions}
        cpu: dict[bool, list[float]] = {amp: [] for amp in precisions}

        def train(amp: bool, n: int) -> float:
            model.train()
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                def forward(amp=amp):
                    with autocast(device, amp):
                        loss, _ = step(model, batch)
                    return loss

                update(forward, model, optimizers[amp])
            if device.type == "cuda":
                torch.cuda.synchronize()
            cpu[amp].append((time.process_time() - c0) / n)
            return time.perf_counter() - t0

        for amp in precisions:
            train(amp, args.warmup)
            cpu[amp].clear()
        done = 0
        while done < args.steps:
            n = min(args.slice, args.steps - done)
            for amp in precisions:
                times[amp].append(train(amp, n) / n)
            done += n
        # forward only on one evaluation batch (the validation and test passes)
        ex, ey = batch_of(task, EVAL_BATCH, targs.seq_len, seed=1)
        eval_batch = (ex.to(device), ey.to(device))
        eval_s = {}
        model.eval()
        with torch.no_grad():
            for amp in precisions:
                with autocast(device, amp):
                    step(model, eval_batch)                          # warm-up
                    t0 = time.perf_counter()
                    step(model, eval_batch)
                    eval_s[amp] = (time.perf_counter() - t0) / EVAL_BATCH
        updates = -(-TRAIN_SIZE[task] // targs.batch_size)
        length = {"smnist": 784, "pmnist": 784, "adding": targs.seq_len, "copy": (targs.seq_len or 0) + 20}[task]
        report.say(f"{targs.model} on {TASK_NAMES[task]} ({n_params:,} parameters, sequences of {length} steps, "
                   f"batches of {targs.batch_size}, {targs.optimizer} {targs.lr:g}, clip {targs.clip or 'none'}); "
                   f"{describe_device(device)}, torch {torch.__version__}; {args.steps} timed updates per "
                   f"precision after {args.warmup} untimed, slices of {args.slice} taking turns")
        for amp in precisions:
            per_step = statistics.median(times[amp])
            epoch = updates * per_step + VALID_SIZE[task] * eval_s[amp]
            run = targs.epochs * epoch + TEST_SIZE[task] * eval_s[False]
            name = precision_name(amp)
            spread = ", ".join(f"{t:.3f}" for t in times[amp])
            report.say(f"{name:<14} {per_step:.3f} s/update (slices: {spread}); {updates:,} updates + "
                       f"{VALID_SIZE[task]:,} validation sequences ({eval_s[amp] * 1e3:.2f} ms each) = "
                       f"{epoch / 60:.1f} min/epoch; {targs.epochs} epochs = {run / 3600:.2f} h")
            # on a busy machine the wall clock counts the other jobs' turns; the process's own CPU seconds spread
            # over its threads give the time on a quiet machine, if the threads kept each other busy (a lower bound)
            quiet = statistics.median(cpu[amp]) / torch.get_num_threads()
            report.say(f"{'':<14} {statistics.median(cpu[amp]):.3f} CPU-s/update over {torch.get_num_threads()} "
                       f"threads: on a quiet machine about {quiet:.3f} s/update, "
                       f"{(updates * quiet + VALID_SIZE[task] * eval_s[amp]) / 60:.1f} min/epoch, "
                       f"{targs.epochs * (updates * quiet + VALID_SIZE[task] * eval_s[amp]) / 3600:.2f} h")
        if len(precisions) == 2:
            a, b = (statistics.median(times[amp]) for amp in precisions)
            report.say(f"bf16 autocast / fp32 speed: {a / b:.2f}x")
        report.write(args.out / f"{task}-{args.model}-{device.type}.txt")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

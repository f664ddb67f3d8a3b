"""Performance analysis of Elman's simple recurrent network (1990) (issue 39), measured by common.perf:
throughput, the time of one pass over the training stream, peak memory of training and evaluation, how the cost
grows with the length of the stream, and a profile of one pass.

Training is train.py's run_pass: one weight update per time step (online backpropagation, the context units as
inputs), written in NumPy on the CPU (float32) because a net of 6-20-6 is too small for PyTorch's per-operation
overhead. The main stream is Sec. 3's letter sequence (1,000 consonants, about 3,000 letters); Sec. 2's temporal
XOR is timed beside it. Evaluation: the network run over train.py's test stream (torch, fp32).

    python RNN/elman/experiments/perf.py           # -> RNN/elman/results/experiments/perf/ (about 1 minute)
    python RNN/elman/experiments/perf.py --quick   # seconds: a smoke test -> runs/elman-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import perf
from RNN.elman.model import PAPER_SIZES, SRN
from RNN.elman.train import PAPER_SETUP, TEST_UNITS, make_stream, run_pass, step_errors
from RNN.elman.train import parse_args as train_defaults

PAPER_DIR = Path(__file__).resolve().parents[1]
LENGTHS = (250, 1000, 4000)       # consonants of the letter stream (the paper: 1,000)


def workload(task: str, units: int, test_units: int) -> perf.Workload:
    """One pass over a ``units``-long training stream of ``task``, as train.py's train_task makes it."""
    lr = train_defaults([]).lr
    torch.manual_seed(0)
    model = SRN(*PAPER_SIZES[task])
    stream, _ = make_stream(task, units, torch.Generator().manual_seed(0))
    test_stream, _ = make_stream(task, test_units, torch.Generator().manual_seed(10_000))

    def train_pass() -> int:
        run_pass(model, stream, lr)
        return len(stream) - 1

    def evaluate() -> int:
        step_errors(model, test_stream)
        return len(test_stream) - 1

    return perf.Workload(model, train_pass, len(stream) - 1, eval_step=evaluate, eval_items=len(test_stream) - 1,
                         profiler="python", info={"time steps": len(stream)})


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR, cpu_only=True,
                   fp32_only="train.py's online loop runs in NumPy on the model's float32 weights")
    units = PAPER_SETUP["letters"]["units"]
    lengths, main, test_units = ((25, 50, 100), 100, 100) if args.quick else (LENGTHS, units, TEST_UNITS["letters"])
    points = [(str(n), perf.builder(workload, task="letters", units=n, test_units=test_units)) for n in lengths]
    xor_units = 100 if args.quick else PAPER_SETUP["xor"]["units"]
    stream, _ = make_stream("letters", main, torch.Generator().manual_seed(0))
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="time steps", axis="stream length (consonants, Sec. 3)", points=points,
        main=str(main), extra=[(f"Temporal XOR pass (1-2-1 net, {xor_units:,} triples)",
                                perf.builder(workload, task="xor", units=xor_units, test_units=100))],
        workload=f"one pass over the letter stream ({len(stream):,} letters), 6-20-6 SRN, one update per step",
        eval_desc=f"the test stream ({test_units:,} consonants), torch, fp32", device=s.device,
        precision=s.precision, quick=args.quick,
        epoch=(len(stream) - 1, f"one pass over the {main:,}-consonant letter stream"),
        notes=[f"A run makes {PAPER_SETUP['letters']['passes']} passes over the letter stream and "
               f"{PAPER_SETUP['xor']['passes']} over the XOR stream (3,000 bits).",
               "The loop is Python and NumPy: cProfile's own times show where a pass goes; the per-call overhead "
               "of small NumPy operations, not arithmetic, sets the pace."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__, amp=False).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

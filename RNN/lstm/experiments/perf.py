"""Performance analysis of the LSTM of Hochreiter & Schmidhuber (1997) on the adding problem (issue 39), measured
by common.perf: throughput, the time to the paper's stopping rule, peak memory of training and evaluation, how
the cost grows with the sequence length T (Table 7's 100, 500, 1,000), and a profile of one training step.

Training is the paper's, as trials.py's adding_trial runs it: one fresh sequence per update, plain gradient
descent (lr 0.5) by the closed form of online.py (the truncated gradient, NumPy, float32) on the 2 blocks of 2
cells (93 weights). The embedded Reber grammar's online step (a weight change at every time step) is timed
beside it. Evaluation: the network on batches of 512 test sequences (torch, fp32).

    python RNN/lstm/experiments/perf.py           # -> RNN/lstm/results/experiments/perf/ (about 1 minute)
    python RNN/lstm/experiments/perf.py --quick   # seconds: a smoke test -> runs/lstm-perf-quick/
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from common import perf
from RNN.lstm.model import LSTM1997, adding_config, reber_config
from RNN.lstm.online import OnlineLSTM1997
from RNN.lstm.tasks import adding_problem, encode_reber
from RNN.lstm.train import PAPER_ADDING
from RNN.lstm.trials import LR, adding_errors, online_update, reber_data

PAPER_DIR = Path(__file__).resolve().parents[1]
LENGTHS = (100, 500, 1000)           # Table 7's T
TEST_BATCH = 512                     # trials.py's adding_errors batch


def adding(T: int, test_size: int) -> perf.Workload:
    """One training sequence of minimal length ``T`` per step, the paper's update (adding_trial's loop body)."""
    torch.manual_seed(0)
    model = LSTM1997(adding_config())
    online = OnlineLSTM1997(model)
    data = torch.Generator().manual_seed(0)
    test = adding_problem(test_size, T, torch.Generator().manual_seed(10_000))

    def train_step() -> int:
        x, y, lengths = adding_problem(1, T, data)
        n = int(lengths[0])
        online.update_from_last_step(x[0, :n].numpy(), y[:1].numpy(), LR["adding"])
        return 1

    def evaluate() -> int:
        adding_errors(model, *test, batch=TEST_BATCH)
        return test_size

    return perf.Workload(model, train_step, 1, eval_step=evaluate, eval_items=test_size, profiler="python",
                         info={"time steps": f"{T}-{T + T // 10}"})


def reber(strings: int) -> perf.Workload:
    """One embedded Reber string per step, a weight change at every time step (reber_trial's loop body)."""
    torch.manual_seed(0)
    model = LSTM1997(reber_config())
    update = online_update(model, LR["reber"])
    train_strings, _, rng = reber_data(0, strings)
    train = encode_reber(train_strings)

    def train_step() -> int:
        pick = torch.randint(0, len(train_strings), (1,), generator=rng)
        n = int(train[2][pick].max())
        update(train[0][pick, :n], train[1][pick, :n], train[2][pick])
        return 1

    return perf.Workload(model, train_step, 1, profiler="python")


def measure(args) -> dict:
    s = perf.setup(args, PAPER_DIR, cpu_only=True,
                   fp32_only="the paper's online updates run in NumPy on the model's float32 weights")
    lengths, test_size = ((10, 20, 40), 64) if args.quick else (LENGTHS, TEST_BATCH)
    points = [(str(T), perf.builder(adding, T=T, test_size=test_size)) for T in lengths]
    main = lengths[0]
    mean_sequences = PAPER_ADDING[100][1]
    return perf.measure(
        paper_dir=PAPER_DIR, out=s.out, unit="sequences", axis="T (minimal sequence length)", points=points,
        main=str(main), extra=[("Embedded Reber string (3 blocks of 2 cells, an update at every step)",
                                perf.builder(reber, strings=32 if args.quick else 256))],
        workload=f"one adding-problem sequence of T = {main} per update, gradient descent in closed form",
        eval_desc=f"batches of {test_size} test sequences, torch, fp32", device=s.device, precision=s.precision,
        quick=args.quick,
        epoch=(mean_sequences, f"Table 7's {mean_sequences:,} sequences at T = 100", "Training to the stopping rule"),
        notes=["There are no epochs: every update sees a fresh sequence until the stopping rule holds (10 trials "
               "per run, each with its own 2,560 test sequences).",
               "The cost of a sequence is linear in T; the gradient is truncated, so memory does not grow with T "
               "beyond the sequence's own activations."])


def main(argv=None) -> int:
    args = perf.perf_parser(__doc__, amp=False).parse_args(argv)
    return perf.run_script(lambda: measure(args))


if __name__ == "__main__":
    sys.exit(main())

"""LSTM (Hochreiter & Schmidhuber 1997) on its own experiments: the adding problem and the embedded Reber grammar.

    python RNN/lstm/train.py                          # both tasks with the 1997 cell; writes RNN/lstm/results/
    python RNN/lstm/train.py --task adding            # Experiment 4, T = 100, until the paper's stopping rule
    python RNN/lstm/train.py --task reber             # Experiment 1, 10 trials (seeds 0..9)
    python RNN/lstm/train.py --cell modern            # nn.LSTM on the same tasks, for comparison
    python RNN/lstm/train.py --task adding --resume   # continue an interrupted adding run from its checkpoint
    python RNN/lstm/train.py --quick                  # seconds; writes runs/lstm-quick

Targets. Adding problem (Sec. 5.4, Table 7), T = 100: at most 3 of 2,560 test sequences wrong (absolute error
at the end > 0.04); the paper has 1 wrong after about 74,000 training sequences. Training stops, as in the paper,
once the average training error is below 0.01 and the 2,000 most recent sequences were processed correctly.
Embedded Reber grammar (Sec. 5.1, Table 1): solved in at least 8 of 10 trials (the paper: 100%), where solved
means every symbol of all 256 training and 256 test strings is predicted correctly.

Training is the paper's: squared error of sigmoid outputs, plain gradient descent (SGD, no momentum), one
sequence per update by default (``--batch-size`` > 1 averages the gradient over several sequences instead).
``--optimizer adam`` (with ``--lr``) is for the modern comparison; it is not the paper's algorithm.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from common.cli import base_parser, output_dir, positive_int
from common.results import git_commit, metric, print_metrics, write_metrics
from common.tasks import (ADDING_TOLERANCE, adding_problem, encode_reber, reber_correct, reber_sets)
from common.training import (NonFiniteLossError, atomic_save, describe_device, resolve_device, resume_checkpoint,
                             rng_state, seed_everything, set_rng_state, write_json)
from RNN.lstm.model import LSTM1997, adding_config, build, config_dict, count_parameters, reber_config
from RNN.lstm.online import OnlineLSTM1997

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "Hochreiter & Schmidhuber 1997, Long Short-Term Memory"
TASKS = ("adding", "reber")
CELLS = ("1997", "modern")
PAPER_ADDING = {100: (1, 74_000), 500: (0, 209_000), 1000: (1, 853_000)}   # Table 7: wrong of 2,560; sequences
# Adding: the paper's 0.5. Reber: the paper tried 0.1, 0.2 and 0.5; 0.1 did best on our validation trials
# (results/reber_lr_selection.json: 1 of 4 solved, against 0 of 4 at 0.2 and 0.5).
DEFAULT_LR = {"adding": 0.5, "reber": 0.1}
MAX_SEQUENCES = {"adding": 1_000_000, "reber": 100_000}   # a run gives up after this many (--max-sequences)


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=1, batch_size=1, lr=None, paper_dir=PAPER_DIR,
                    lr_help=f"learning rate; None = {DEFAULT_LR} (adding: the paper's; Reber: the best of the "
                            "paper's three on validation trials)")
    p.add_argument("--task", choices=TASKS + ("all",), default="all", help="adding problem, embedded Reber, or both")
    p.add_argument("--cell", choices=CELLS + ("both",), default="1997",
                   help="1997 = the paper's memory blocks (no forget gate); modern = nn.LSTM")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                   help="sgd = the paper's plain gradient descent; adam = for the modern comparison (needs --lr; "
                        "the 1997 cell then trains through autograd)")
    p.add_argument("--forget-bias", type=float, default=None,
                   help="modern cell: initial forget-gate bias (default: PyTorch's random initialisation)")
    p.add_argument("--full-gradient", action="store_true",
                   help="full backpropagation through time instead of the paper's truncated gradient")
    p.add_argument("--autograd", action="store_true",
                   help="compute the 1997 cell's truncated gradient with autograd, not the NumPy closed form "
                        "(same numbers, about 15x slower one sequence at a time; updates once per sequence)")
    p.add_argument("--update-every", choices=("step", "string"), default="step",
                   help="embedded Reber, 1997 cell, plain gradient descent: change the weights at every time step "
                        "(the paper's online algorithm as we read it, the default) or once per string, the sum of "
                        "all its steps' contributions (App. A.1's other reading)")
    p.add_argument("--T", type=positive_int, default=100, help="adding problem: minimal sequence length")
    p.add_argument("--max-sequences", type=positive_int, default=None,
                   help="give up after this many training sequences (default: "
                        f"{MAX_SEQUENCES['adding']:,} adding; {MAX_SEQUENCES['reber']:,} Reber)")
    p.add_argument("--test-size", type=positive_int, default=2560, help="adding problem: test sequences")
    p.add_argument("--trials", type=positive_int, default=10, help="embedded Reber: trials (seeds seed..seed+n-1)")
    p.add_argument("--blocks", type=positive_int, default=None, help="memory blocks (default: the paper's)")
    p.add_argument("--cells-per-block", type=positive_int, default=None, help="cells per block (default: the paper's)")
    p.add_argument("--output-bias", action="store_true",
                   help="embedded Reber: give the output units bias weights (a deviation: the paper biases only the "
                        "gates, 276/264 weights); the adding problem's output unit is biased anyway")
    p.add_argument("--in-gate-bias", type=_floats, default=None, metavar="B1,B2,...",
                   help="initial input-gate biases, one per block (Sec. 4's remedy for state drift; default: the "
                        "paper's for the task: random for Reber, -3,-6 for adding). Write it --in-gate-bias=-1,-2,-3")
    p.add_argument("--sequential-construction", action="store_true",
                   help="embedded Reber: Sec. 4's remedy (1) for the abuse problem. Start with one block and add "
                        "the next whenever the training error stops decreasing (a deviation: for Exp. 1 the paper "
                        "uses remedy (2), the output-gate biases)")
    p.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                   help="adding problem: constant = the paper's; cosine = decay from --lr to 0 over the "
                        "--max-sequences training sequences (a deviation)")
    p.add_argument("--train-to-cap", action="store_true",
                   help="adding problem: train all --max-sequences, then test; the paper's stopping rule is "
                        "recorded (where it first held) but does not end training (a deviation)")
    p.add_argument("--checkpoint-every", type=positive_int, default=20_000,
                   help="adding problem: save a checkpoint every this many training sequences")
    p.add_argument("--data-seed", type=int, default=None,
                   help="embedded Reber: draw every trial's 256 training and 256 test strings from this one seed, "
                        "so that the trials differ only in their initial weights and the order of training strings "
                        "(the paper ran 10 trials on each of 3 such pairs of sets, Sec. 5.1); default: each trial "
                        "draws its own strings from its seed")
    p.add_argument("--workers", type=positive_int, default=2,
                   help="embedded Reber on the CPU: trials run side by side in this many processes")
    p.add_argument("--eval-every", type=positive_int, default=1000,
                   help="embedded Reber: test the success criterion every this many training sequences")
    args = p.parse_args(argv)
    if args.T < 10:
        p.error(f"--T must be at least 10 (the first marker is one of the first ten pairs), got {args.T}")
    if args.in_gate_bias is not None:
        for task in TASKS if args.task == "all" else (args.task,):
            blocks = args.blocks or (adding_config if task == "adding" else reber_config)().blocks
            if len(args.in_gate_bias) != blocks:
                p.error(f"--in-gate-bias has {len(args.in_gate_bias)} values; the {task} network has {blocks} blocks")
    if args.data_seed is not None and args.task != "reber":
        p.error("--data-seed is for --task reber (the adding problem draws fresh sequences all the time)")
    if args.forget_bias is not None and args.cell != "modern":
        p.error("--forget-bias is for --cell modern (the 1997 cell has no forget gate)")
    if args.optimizer != "sgd" and args.lr is None:
        p.error(f"--optimizer {args.optimizer} needs --lr (the default rates are the paper's, for SGD)")
    # The Reber options below change the paper's online algorithm, so they need the engine that runs it.
    reber_online = args.task == "reber" and online_engine_applies(args, torch.device("cpu"))   # the 1997 cell only
    if args.update_every == "string" and (not reber_online or args.sequential_construction):
        p.error("--update-every string is for --task reber with the 1997 cell and plain gradient descent (the "
                "other options already update once per string or batch)")
    if (args.lr_schedule != "constant" or args.train_to_cap) and args.task != "adding":
        p.error("--lr-schedule and --train-to-cap are for --task adding")
    if args.sequential_construction and not reber_online:
        p.error("--sequential-construction works with --task reber, the 1997 cell and the paper's online "
                "algorithm (no --full-gradient, --autograd, --batch-size or --optimizer)")
    return args


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def make_model(task: str, cell: str, args) -> torch.nn.Module:
    make = adding_config if task == "adding" else reber_config
    defaults = make()
    config = make(args.blocks or defaults.blocks, args.cells_per_block or defaults.cells_per_block)
    if args.output_bias:
        config = dataclasses.replace(config, output_bias=True)
    if args.in_gate_bias is not None:
        config = dataclasses.replace(config, in_gate_bias=args.in_gate_bias)
    return build(config, cell, truncated=not args.full_gradient, forget_bias=args.forget_bias)


def make_optimizer(model: torch.nn.Module, args, lr: float) -> torch.optim.Optimizer:
    """The paper's plain gradient descent, or Adam for the modern comparison (``--optimizer``)."""
    if args.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    return torch.optim.SGD(model.parameters(), lr=lr)


def online_engine_applies(args, device) -> bool:
    """Whether the 1997 cell trains by the NumPy closed form of the paper's algorithm (RNN/lstm/online.py):
    truncated gradient, plain gradient descent, one sequence per update, on the CPU."""
    return args.cell != "modern" and not args.full_gradient and not args.autograd and args.optimizer == "sgd" \
        and args.batch_size == 1 and device.type == "cpu"


def online_engine(model, args, device) -> OnlineLSTM1997 | None:
    """The NumPy engine for ``model`` where it applies (:func:`online_engine_applies`), else None."""
    if isinstance(model, LSTM1997) and online_engine_applies(args, device):
        return OnlineLSTM1997(model)
    return None


def scheduled_lr(lr: float, seen: int, total: int, schedule: str) -> float:
    """The learning rate for the update after ``seen`` of ``total`` training sequences: ``lr`` throughout
    (the paper's), or cosine decay from ``lr`` towards 0 over the ``total`` sequences (``--lr-schedule cosine``)."""
    if schedule == "constant":
        return lr
    return 0.5 * lr * (1 + math.cos(math.pi * min(seen, total) / total))


def check_finite(loss: torch.Tensor, where: str) -> None:
    if not math.isfinite(loss.item()):
        raise NonFiniteLossError(f"loss became {loss.item()} at {where}; try a lower --lr")


# --------------------------------------------------------------------------- Experiment 4: adding problem


def adding_outputs(model, x, lengths) -> torch.Tensor:
    """The output at each sequence's last step (the only one with a target)."""
    x = x[:, : int(lengths.max())]
    return model(x)[torch.arange(len(x)), lengths - 1, 0]


@torch.no_grad()
def adding_errors(model, x, target, lengths, batch: int = 512) -> torch.Tensor:
    """Output minus target at each sequence's end, in batches."""
    return torch.cat([adding_outputs(model, x[i:i + batch], lengths[i:i + batch]) - target[i:i + batch]
                      for i in range(0, len(x), batch)])


def adding_update(model, opt, x, target, lengths, where: str) -> torch.Tensor:
    """One gradient step through autograd on E = 1/2 (target - output)^2 at the sequences' ends, averaged over the
    batch; a non-finite loss stops before the step (``where`` names it). Returns output - target."""
    err = adding_outputs(model, x, lengths) - target
    loss = 0.5 * (err ** 2).sum() / len(err)
    check_finite(loss, where)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return err


def adding_test(model, x, target, lengths, batch: int = 512) -> dict:
    errors = adding_errors(model, x, target, lengths, batch).abs()
    return {"wrong": int((errors > ADDING_TOLERANCE).sum()), "mse": float((errors ** 2).mean()),
            "max_abs_error": float(errors.max())}


def adding_test_set(size: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The test sequences of the adding run with ``--seed seed``: their own stream, none of the training ones."""
    return adding_problem(size, T, torch.Generator().manual_seed(10_000 + seed))


def adding_wrong_metric(variant: str, wrong: int, T: int, of: int, **extra) -> dict:
    """The checked adding-problem number ``adding_T<T>_<variant>_test_wrong``: wrong test sequences against
    Table 7's figure for this T and our band of at most 3."""
    return metric(f"adding_T{T}_{variant}_test_wrong", wrong, paper=PAPER_ADDING.get(T, (None, None))[0],
                  band=(0, 3), of=of, **extra)


def train_adding(cell: str, args, out: Path, device) -> dict:
    """Online training on fresh random sequences until the paper's stopping rule holds (or, with
    ``--train-to-cap``, for all ``--max-sequences``, noting where the rule first held)."""
    seed_everything(args.seed)
    model = make_model("adding", cell, args).to(device)
    lr = args.lr or DEFAULT_LR["adding"]
    opt = make_optimizer(model, args, lr)
    data_rng = torch.Generator().manual_seed(args.seed)
    test_x, test_y, test_len = adding_test_set(args.test_size, args.T, args.seed)
    max_seq = args.max_sequences or MAX_SEQUENCES["adding"]
    recent = collections.deque(maxlen=2000)   # (squared error, correct) of the most recent sequences
    seen, history, t_train, first_met = 0, [], 0.0, None
    ckpt_path = out / "checkpoint.pt"
    if args.resume:
        ck = resume_checkpoint(ckpt_path, map_location=device)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        set_rng_state(ck["rng"])
        data_rng.set_state(ck["data_rng"])
        recent.extend(zip(ck["recent_sq"].tolist(), ck["recent_ok"].tolist()))
        seen, history, t_train = int(ck["seen"]), [dict(zip(ck["history_keys"], r)) for r in ck["history"].tolist()], \
            float(ck["train_time_s"])
        first_met = ck.get("stopping_rule_first_met")
        print(f"resumed from {ckpt_path} after {seen:,} sequences")
    schedule = "" if args.lr_schedule == "constant" else f" ({args.lr_schedule} decay over {max_seq:,} sequences)"
    print(f"adding T={args.T}, {cell}: {count_parameters(model)} weights, lr {lr}{schedule}, batch {args.batch_size}")
    from tqdm.auto import tqdm
    bar = tqdm(total=max_seq, initial=seen, disable=args.no_progress, desc=f"adding-{cell}", unit="seq")
    t0 = time.perf_counter()
    online = online_engine(model, args, device)
    # a resumed run that had already stopped stays stopped
    stopped = stopping_rule_met(recent) and not args.train_to_cap
    while seen < max_seq and not stopped:
        x, y, lengths = adding_problem(args.batch_size, args.T, data_rng)
        lr_now = scheduled_lr(lr, seen, max_seq, args.lr_schedule)
        for group in opt.param_groups:
            group["lr"] = lr_now
        if online is not None:                              # the same update, by the closed form
            n = int(lengths[0])
            loss, y_last = online.update_from_last_step(x[0, :n].numpy(), y[:1].numpy(), lr_now)
            err = torch.tensor([y_last[0] - float(y[0])])
            check_finite(torch.tensor(loss), f"sequence {seen + 1}")
        else:
            err = adding_update(model, opt, x.to(device), y.to(device), lengths.to(device), f"sequence {seen + 1}")
        for e in err.detach().cpu().tolist():
            recent.append((e * e, abs(e) < ADDING_TOLERANCE))
        seen += len(err)
        bar.update(len(err))
        if seen % 1000 < args.batch_size:
            mse = sum(r[0] for r in recent) / len(recent)
            ok = sum(r[1] for r in recent)
            history.append({"sequences": seen, "train_mse": mse, "recent_correct": ok / len(recent)})
            bar.set_postfix(mse=f"{mse:.4f}", recent_ok=ok)
        if stopping_rule_met(recent):
            first_met = first_met or seen
            if not args.train_to_cap:
                stopped = True
                break
        if seen % args.checkpoint_every < args.batch_size:
            save_adding_checkpoint(ckpt_path, model, opt, data_rng, recent, seen, history,
                                   t_train + time.perf_counter() - t0, first_met)
    bar.close()
    t_train += time.perf_counter() - t0
    save_adding_checkpoint(ckpt_path, model, opt, data_rng, recent, seen, history, t_train, first_met)
    test = adding_test(model, test_x.to(device), test_y.to(device), test_len.to(device))
    atomic_save(model.state_dict(), out / "model.pt")
    write_json(history, out / "history.json")
    plot_curve(history, "sequences", {"train MSE (last 2,000)": "train_mse"}, out / "curves.png",
               title=f"adding problem, T = {args.T}, {cell} cell")
    result = {"task": "adding", "cell": cell, "T": args.T, "weights": count_parameters(model), "lr": lr,
              "batch_size": args.batch_size, "sequences": seen, "stopping_rule_met": stopped,
              "lr_schedule": args.lr_schedule, "trained_to_cap": args.train_to_cap,
              "stopping_rule_first_met_after": first_met,
              "test_wrong": test["wrong"], "test_size": args.test_size, "test_mse": test["mse"],
              "test_max_abs_error": test["max_abs_error"], "train_time_s": t_train}
    if args.train_to_cap:
        ending = "trained to the cap; the stopping rule " + \
            ("never held" if first_met is None else f"first held after {first_met:,}")
    else:
        ending = "stopping rule met" if stopped else "gave up"
    print(f"adding-{cell}: {seen:,} sequences ({ending}), {test['wrong']} of {args.test_size} test sequences wrong")
    return result


def stopping_rule_met(recent: collections.deque) -> bool:
    """Sec. 5.4: the average training error is below 0.01 and the 2,000 most recent sequences were processed
    correctly. ``recent`` holds (squared error, correct) of the most recent sequences (maxlen 2,000)."""
    return len(recent) == recent.maxlen and all(ok for _, ok in recent) and \
        sum(sq for sq, _ in recent) / len(recent) < 0.01


def save_adding_checkpoint(path, model, opt, data_rng, recent, seen, history, train_time, first_met):
    keys = ["sequences", "train_mse", "recent_correct"]
    atomic_save({
        "model": model.state_dict(), "optimizer": opt.state_dict(), "rng": rng_state(),
        "data_rng": data_rng.get_state(), "seen": seen, "train_time_s": train_time,
        "stopping_rule_first_met": first_met,
        "recent_sq": torch.tensor([r[0] for r in recent], dtype=torch.float64),
        "recent_ok": torch.tensor([r[1] for r in recent], dtype=torch.bool),
        "history": torch.tensor([[h[k] for k in keys] for h in history], dtype=torch.float64).reshape(-1, 3),
        "history_keys": keys,
    }, path)


# --------------------------------------------------------------------------- Experiment 1: embedded Reber grammar


def reber_loss(model, inputs, targets, lengths) -> torch.Tensor:
    """1/2 the squared error, summed over output units and steps, averaged over the strings."""
    mask = (torch.arange(inputs.shape[1], device=inputs.device)[None, :] < lengths[:, None]).unsqueeze(-1)
    return 0.5 * (((model(inputs) - targets) ** 2) * mask).sum() / len(inputs)


@torch.no_grad()
def reber_solved(model, sets) -> tuple[bool, int]:
    wrong = 0
    for inputs, targets, lengths in sets:
        wrong += int((~reber_correct(model(inputs), targets, lengths)).sum())
    return wrong == 0, wrong


def reber_data(seed: int, args) -> tuple[list[str], list[str], torch.Generator]:
    """A trial's training and test strings (Sec. 5.1: 256 each, no test string a training string), and the
    generator that then picks its training strings. With ``--data-seed`` every trial gets the same strings."""
    rng = torch.Generator().manual_seed(seed)
    data = rng if args.data_seed is None else torch.Generator().manual_seed(args.data_seed)
    n = 256 if not args.quick else 32
    train_strings = reber_sets(n, data)
    return train_strings, reber_sets(n, data, exclude=set(train_strings)), rng


def reber_trial(cell: str, seed: int, args, device) -> dict:
    """One trial of Sec. 5.1: training and test sets, train until all 512 strings are predicted correctly."""
    seed_everything(seed)
    model = make_model("reber", cell, args).to(device)
    lr = args.lr or DEFAULT_LR["reber"]
    opt = make_optimizer(model, args, lr)
    train_strings, test_strings, rng = reber_data(seed, args)
    train = [t.to(device) for t in encode_reber(train_strings)]
    test = [t.to(device) for t in encode_reber(test_strings)]
    max_seq = args.max_sequences or MAX_SEQUENCES["reber"]
    seen, solved, curve, t0 = 0, False, [], time.perf_counter()
    online = online_engine(model, args, device)
    if online is not None:
        np_inputs, np_targets = train[0].cpu().numpy(), train[1].cpu().numpy()
    growth = {"best": math.inf, "errors": [], "added": []} if args.sequential_construction else None
    if growth is not None:
        online.active[1:] = False                           # one block to start with
    while seen < max_seq:
        pick = torch.randint(0, len(train_strings), (args.batch_size,), generator=rng)
        n = int(train[2][pick].max())
        if online is not None:                              # the same update, by the closed form
            i = int(pick[0])
            target = np_targets[i, :n]
            update = online.update_per_sequence if args.update_every == "string" else online.online_sequence
            loss = torch.tensor(update(np_inputs[i, :n], target, np.ones_like(target), lr)[0])
            check_finite(loss, f"trial {seed}, sequence {seen + 1}")
            if growth is not None:
                growth["errors"].append(float(loss))
        else:
            loss = reber_loss(model, train[0][pick, :n], train[1][pick, :n], train[2][pick])
            check_finite(loss, f"trial {seed}, sequence {seen + 1}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        seen += args.batch_size
        if seen % args.eval_every < args.batch_size:
            if growth is not None and not online.active.all():
                grow_if_stalled(online, growth, seen)
                continue                                    # the success test needs the whole network
            solved, wrong = reber_solved(model, (train, test))
            with torch.no_grad():
                curve.append({"sequences": seen, "wrong_strings": wrong,
                              "train_loss": float(reber_loss(model, *train))})
            if solved:
                break
    return {"seed": seed, "solved": solved, "sequences": seen, "train_time_s": time.perf_counter() - t0,
            "curve": curve, "model": model, **({"blocks_added": growth["added"]} if growth is not None else {})}


def grow_if_stalled(online: OnlineLSTM1997, growth: dict, seen: int) -> None:
    """Sec. 4, remedy (1) of the abuse problem: add the next memory block once the training error has stopped
    decreasing, here once the mean error of the last ``--eval-every`` strings is not at least 2% below the best
    such mean since the last block was added."""
    error = float(np.mean(growth["errors"]))
    growth["errors"].clear()
    if error > 0.98 * growth["best"]:
        block = int(np.argmin(online.active))
        online.active[block] = True
        growth["added"].append({"block": block + 1, "sequences": seen})
        growth["best"] = math.inf
    else:
        growth["best"] = error


def _reber_trial_cpu(cell: str, seed: int, args) -> dict:
    """A trial in a worker process: one thread each (the net is tiny; the cost is per-step overhead)."""
    torch.set_num_threads(1)
    r = reber_trial(cell, seed, args, torch.device("cpu"))
    r["model"] = r["model"].state_dict()
    return r


def train_reber(cell: str, args, out: Path, device) -> dict:
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from tqdm.auto import tqdm
    seeds = range(args.seed, args.seed + args.trials)
    bar = tqdm(total=len(seeds), desc=f"reber-{cell}", disable=args.no_progress)
    if device.type == "cpu" and args.workers > 1:
        # Trials are independent and seeded one by one, so running them side by side changes nothing
        # but the wall time.
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_reber_trial_cpu, cell, seed, args) for seed in seeds]
            trials = []
            for fut in futures:
                r = fut.result()
                model = make_model("reber", cell, args)
                model.load_state_dict(r["model"])
                trials.append({**r, "model": model})
                bar.update()
    else:
        trials = []
        for seed in seeds:
            trials.append(reber_trial(cell, seed, args, device))
            bar.update()
    bar.close()
    for r in trials:
        print(f"reber-{cell} trial {r['seed']}: {'solved' if r['solved'] else 'NOT solved'} after "
              f"{r['sequences']:,} sequences ({r['train_time_s']:.0f} s)")
    best = next((r for r in trials if r["solved"]), trials[0])
    atomic_save(best["model"].state_dict(), out / "model.pt")
    write_json([{k: v for k, v in r.items() if k != "model"} for r in trials], out / "history.json")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r in trials:
        ax.plot([c["sequences"] for c in r["curve"]], [c["wrong_strings"] for c in r["curve"]], marker=".",
                label=f"seed {r['seed']}")
    ax.set(xlabel="training sequences", ylabel="strings with a wrong prediction (of 512)",
           title=f"embedded Reber grammar, {cell} cell")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    solved = [r["sequences"] for r in trials if r["solved"]]
    median = float(torch.tensor(solved, dtype=torch.float64).median()) if solved else None
    model = trials[0]["model"]
    return {"task": "reber", "cell": cell, "weights": count_parameters(model), "lr": args.lr or DEFAULT_LR["reber"],
            "batch_size": args.batch_size, "trials": len(trials), "solved": len(solved),
            "median_sequences": median, "sequences": [r["sequences"] for r in trials],
            "train_time_s": sum(r["train_time_s"] for r in trials)}


# --------------------------------------------------------------------------- plots, main


def plot_curve(history: list[dict], x: str, series: dict[str, str], path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, key in series.items():
        ax.plot([h[x] for h in history], [h[key] for h in history], label=label)
    ax.set(xlabel=f"training {x}", yscale="log", title=title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    commit = git_commit()
    device = resolve_device(args.device)
    if args.quick:
        args.T = min(args.T, 20)
        args.test_size = min(args.test_size, 64)
        args.max_sequences = args.max_sequences or 200
        args.trials = min(args.trials, 2)
        args.eval_every = min(args.eval_every, 50)
        args.checkpoint_every = min(args.checkpoint_every, 100)
    out = output_dir(args, PAPER_DIR)
    tasks = TASKS if args.task == "all" else (args.task,)
    cells = CELLS if args.cell == "both" else (args.cell,)
    if args.out is None and not args.quick and cells == ("modern",):
        out = PAPER_DIR.parents[1] / "runs" / "lstm-modern"            # results/ is the 1997 cell's
    t0 = time.perf_counter()
    results, metrics = {}, []
    try:
        for task in tasks:
            for cell in cells:
                folder = out / f"{task}-{cell}"
                folder.mkdir(parents=True, exist_ok=True)
                r = (train_adding if task == "adding" else train_reber)(cell, args, folder, device)
                results[f"{task}-{cell}"] = r
                if cell == "modern":
                    continue                      # a comparison, reported in the details table, not a target
                optimiser = "_adam" if args.optimizer == "adam" else ""    # a deviation gets its own metric name
                if task == "adding":
                    variant = optimiser + ("" if args.lr_schedule == "constant" else f"_{args.lr_schedule}") + \
                        ("_to_cap" if args.train_to_cap else "")
                    metrics.append(adding_wrong_metric(f"{cell}{variant}", r["test_wrong"], args.T, args.test_size,
                                                       sequences=r["sequences"]))
                else:
                    variant = ("_output_bias" if args.output_bias else "") + \
                        ("_sequential" if args.sequential_construction else "") + optimiser + \
                        ("_per_string" if args.update_every == "string" else "")
                    name = f"reber_{cell}{variant}_trials_solved"
                    metrics.append(metric(name, r["solved"], paper=10,
                                          band=(8, 10), of=r["trials"], median_sequences=r["median_sequences"]))
    except (NonFiniteLossError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    rows = []
    for key, r in results.items():
        lr = r["lr"] if args.optimizer == "sgd" else f"{r['lr']} ({args.optimizer})"
        if r["task"] == "adding":
            rows.append([key, r["weights"], lr, r["batch_size"], f"{r['sequences']:,}",
                         f"{r['test_wrong']} of {r['test_size']}", round(r["train_time_s"] / 60, 1)])
        else:
            rows.append([key, r["weights"], lr, r["batch_size"], f"median {r['median_sequences'] or 0:,.0f}",
                         f"{r['solved']} of {r['trials']} trials solved", round(r["train_time_s"] / 60, 1)])
    first = next(iter(results.values()))
    cfg = make_model(first["task"], first["cell"], args)
    write_metrics(
        out, paper=PAPER, metrics=metrics,
        model={"module": "RNN/lstm/model.py", "class": type(cfg).__name__,
               "kwargs": {"config": config_dict(cfg.config)}, "weights": f"{first['task']}-{first['cell']}/model.pt"},
        seed=args.seed, epochs=1, wall_time_s=time.perf_counter() - t0, device=describe_device(device),
        commit=commit, quick=args.quick, runs=results,
        details={"columns": ["run", "weights", "lr", "sequences per update", "training sequences", "result",
                             "minutes"], "rows": rows},
        hyperparameters={"optimizer": "Adam" if args.optimizer == "adam" else "SGD (no momentum)",
                         "modern_forget_bias": args.forget_bias,
                         "loss": "1/2 squared error", "batch_size": args.batch_size,
                         "truncated_gradient": not args.full_gradient, "T": args.T,
                         "reber_output_bias": args.output_bias, "in_gate_bias": args.in_gate_bias,
                         "reber_data_seed": args.data_seed,
                         "reber_sequential_construction": args.sequential_construction,
                         "lr_schedule": args.lr_schedule, "adding_train_to_cap": args.train_to_cap,
                         "reber_update_every_1997": args.update_every if online_engine_applies(args, device)
                         else "string"},
    )
    print_metrics(metrics, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

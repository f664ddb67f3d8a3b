"""One trial of each experiment as the paper trains it, with hooks for the probes in ``experiments/``: the
LSTM's own training loops (online: one sequence per update, so not ``common.training.fit``'s epochs).

- :func:`adding_trial` (Exp. 4, Sec. 5.4): fresh sequences until the paper's stopping rule; plain gradient
  descent by the closed form of ``online.py``, or any optimiser through autograd (``make_optimizer``).
  Checkpoints in ``common.training``'s format; ``--resume`` continues the same data stream.
- :func:`finetune`: the adding problem's named deviation, Adam after the paper's training.
- :func:`reber_trial` (Exp. 1, Sec. 5.1): randomly picked training strings until every symbol of the training
  and test strings is predicted; the paper's per-step online update, or another (``make_update``).
- :func:`run_trials`: independent trials side by side in worker processes.

Every function takes the run's ``args``: ``T``, ``lr``, ``max_sequences``, ``checkpoint_every``, ``resume``,
``no_progress`` and the sizes of :func:`sizes` (``args.quick``: seconds).
"""

from __future__ import annotations

import collections
import functools
import json
import math
import re
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from common.fileio import atomic_target
from common.training import NonFiniteLossError, restore_checkpoint, resume_checkpoint, save_checkpoint, seed_everything
from RNN.lstm.model import LSTM1997, adding_config, reber_config
from RNN.lstm.online import OnlineLSTM1997
from RNN.lstm.tasks import ADDING_TOLERANCE, adding_problem, encode_reber, reber_correct, reber_sets

# Adding: the paper's 0.5. Reber: the best of Table 1's 0.1, 0.2 and 0.5 on validation trials (EXPERIMENTS.md).
LR = {"adding": 0.5, "reber": 0.1}
MAX_SEQUENCES = {"adding": 1_000_000, "reber": 100_000}   # a trial gives up after this many (--max-sequences)
FINETUNE = {"lr": 0.003, "batch_size": 256, "sequences": 1_536_000, "reports": 5, "val_size": 25_600}
VALIDATION_SEED = 60_000   # the fine-tuning's validation stream: none of the training streams or test sets
STREAM_OFFSET = 50_000     # the fine-tuning's training stream is seeded 50,000 + seed
SIZES = {"test_size": 2560, "strings": 256, "eval_every": 1000, "report_every": 10_000, "finetune": FINETUNE}
QUICK = {"test_size": 64, "strings": 32, "eval_every": 50, "report_every": 100,
         "finetune": {**FINETUNE, "batch_size": 16, "sequences": 160, "val_size": 256}}


def sizes(args):
    """Set the sizes (test set, strings, intervals) on ``args``: the paper's, or tiny ones with ``args.quick``."""
    if args.quick:
        vars(args).update({**QUICK, "T": min(args.T, 20), "trials": min(args.trials, 2), "workers": 1,
                           "max_sequences": min(args.max_sequences or 200, 200),
                           "checkpoint_every": min(args.checkpoint_every, 100)})
    else:
        vars(args).update(SIZES)
    return args


def write_record(obj, path: Path) -> None:
    """JSON as ``common.training.write_json`` writes it, but each list of numbers (a training curve's column) on
    one line: the records of many trials stay readable and small."""
    text = re.sub(r"\[\s*([-+0-9.eE]+(?:,\s*[-+0-9.eE]+)*)\s*\]",
                  lambda m: "[" + ",".join(m.group(1).replace(",", " ").split()) + "]", json.dumps(obj, indent=2))
    with atomic_target(path) as tmp:
        tmp.write_text(text + "\n")


def check_finite(loss: float, where: str) -> None:
    if not math.isfinite(loss):
        raise NonFiniteLossError(f"loss became {loss} at {where}; try a lower --lr")


# --------------------------------------------------------------------------- Experiment 4: adding problem


def adding_outputs(model, x, lengths) -> torch.Tensor:
    """The output at each sequence's last step (the only one with a target)."""
    return model(x[:, : int(lengths.max())])[torch.arange(len(x)), lengths - 1, 0]


@torch.no_grad()
def adding_errors(model, x, target, lengths, batch: int = 512) -> torch.Tensor:
    return torch.cat([adding_outputs(model, x[i:i + batch], lengths[i:i + batch]) - target[i:i + batch]
                      for i in range(0, len(x), batch)])


def adding_update(model, opt, x, target, lengths, where: str) -> torch.Tensor:
    """One step through autograd on E = 1/2 (target - output)^2 at the sequence ends (mean over the batch)."""
    err = adding_outputs(model, x, lengths) - target
    loss = 0.5 * (err ** 2).sum() / len(err)
    check_finite(loss.item(), where)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return err.detach()


def adding_test(model, x, target, lengths) -> dict:
    errors = adding_errors(model, x, target, lengths).abs()
    return {"test_wrong": int((errors > ADDING_TOLERANCE).sum()), "test_size": len(x),
            "test_mse": float((errors ** 2).mean()), "test_max_abs_error": float(errors.max())}


def adding_test_set(size: int, T: int, seed: int):
    """The test sequences of trial ``seed``: their own stream, none of the training ones."""
    return adding_problem(size, T, torch.Generator().manual_seed(10_000 + seed))


def stopping_rule_met(recent: collections.deque) -> bool:
    """Sec. 5.4: the average training error is below 0.01 and the 2,000 most recent sequences were processed
    correctly. ``recent`` holds (squared error, correct) of the most recent sequences (maxlen 2,000)."""
    return len(recent) == recent.maxlen and all(ok for _, ok in recent) and \
        sum(sq for sq, _ in recent) / len(recent) < 0.01


def resumed(args, ckpt: Path, seed: int, phase: str) -> dict | None:
    """The checkpoint of this trial's phase if --resume finds one (a finished part leaves none to continue)."""
    if not (args.resume and ckpt.exists()):
        return None
    ck = resume_checkpoint(ckpt)
    return ck if (ck.get("seed"), ck.get("phase")) == (seed, phase) else None


def adding_trial(seed: int, args, ckpt: Path, *, make_model=lambda: LSTM1997(adding_config()), lr=None,
                 make_optimizer=None, batch_size=1, schedule=None, train_to_cap=False, phase="paper"):
    """Online training on fresh sequences until the stopping rule holds or ``args.max_sequences`` have been seen
    (``train_to_cap``: all of them; where the rule first held is recorded). ``make_optimizer(model, lr)`` None:
    the paper's gradient descent by the closed form; else steps through autograd on batches. ``schedule(lr,
    seen, cap)`` sets the rate. Returns the model and the trial's record."""
    seed_everything(seed)
    model = make_model()
    lr = lr or args.lr or LR["adding"]
    opt = make_optimizer(model, lr) if make_optimizer else None
    online = OnlineLSTM1997(model) if opt is None else None
    data = torch.Generator().manual_seed(seed)
    cap = args.max_sequences or MAX_SEQUENCES["adding"]
    recent = collections.deque(maxlen=2000)                  # (squared error, correct) of the latest sequences
    seen, history, t_before, first_met = 0, [], 0.0, None
    if ck := resumed(args, ckpt, seed, phase):
        history = restore_checkpoint(ck, model, opt)
        data.set_state(ck["data_rng"])
        recent.extend(zip(ck["recent_sq"].tolist(), ck["recent_ok"].tolist()))
        seen, t_before, first_met = ck["epoch"], ck["train_time_s"], ck["first_met"] or None
        print(f"adding seed {seed}: resumed from {ckpt} after {seen:,} sequences")

    def save():
        save_checkpoint(ckpt, model, opt, epoch=seen, history=history, seed=seed, phase=phase,
                        data_rng=data.get_state(), train_time_s=t_before + time.perf_counter() - t0,
                        first_met=first_met or 0, recent_sq=torch.tensor([r[0] for r in recent], dtype=torch.float64),
                        recent_ok=torch.tensor([r[1] for r in recent], dtype=torch.bool))

    bar = tqdm(total=cap, initial=seen, disable=args.no_progress, desc=f"adding seed {seed}", unit="seq")
    t0 = time.perf_counter()
    stopped = stopping_rule_met(recent) and not train_to_cap     # a resumed trial that had stopped stays stopped
    while seen < cap and not stopped:
        x, y, lengths = adding_problem(batch_size, args.T, data)
        lr_now = schedule(lr, seen, cap) if schedule else lr
        if online is not None:                                   # the paper's algorithm, in closed form
            n = int(lengths[0])
            loss, y_last = online.update_from_last_step(x[0, :n].numpy(), y[:1].numpy(), lr_now)
            check_finite(loss, f"seed {seed}, sequence {seen + 1}")
            err = torch.tensor([y_last[0] - float(y[0])])
        else:
            for group in opt.param_groups:
                group["lr"] = lr_now
            err = adding_update(model, opt, x, y, lengths, f"seed {seed}, sequence {seen + 1}")
        for e in err.tolist():
            recent.append((e * e, abs(e) < ADDING_TOLERANCE))
        seen += len(err)
        bar.update(len(err))
        if seen % 1000 < batch_size:
            history.append({"sequences": seen, "train_mse": sum(r[0] for r in recent) / len(recent),
                            "recent_correct": sum(r[1] for r in recent) / len(recent)})
        if stopping_rule_met(recent):
            first_met = first_met or seen
            stopped = not train_to_cap
        if seen % args.checkpoint_every < batch_size:
            save()
            if args.no_progress:
                mse = sum(r[0] for r in recent) / len(recent)
                print(f"adding seed {seed}: {seen:,} sequences, train MSE {mse:.2e}, "
                      f"{sum(r[1] for r in recent)} of the last {len(recent):,} correct", flush=True)
    bar.close()
    save()
    train_time = t_before + time.perf_counter() - t0
    test = adding_test(model, *adding_test_set(args.test_size, args.T, seed))
    print(f"adding seed {seed} ({phase}): {seen:,} sequences (stopping rule "
          f"{'met' if first_met else 'not met'}), {test['test_wrong']} of {args.test_size} test sequences wrong")
    return model, {"sequences": seen, "stopping_rule_met": bool(first_met) and not train_to_cap,
                   "stopping_rule_first_met_after": first_met, **test, "train_time_s": train_time,
                   "history": {k: [h[k] for h in history] for k in ("sequences", "train_mse", "recent_correct")}}


def summarise(errors: torch.Tensor, target: torch.Tensor) -> dict:
    """Wrong (|error| > 0.04) per 2,560, the mean error at the low and high ends, and the RMS error between."""
    low, high = target < 0.1, target > 0.9

    def mean(e):
        return float(e.mean()) if len(e) else None        # None where a small stream has no such target
    return {"wrong_per_2560": float((errors.abs() > ADDING_TOLERANCE).sum()) * 2560 / len(errors),
            "mean_error_below_0.1": mean(errors[low]), "mean_error_above_0.9": mean(errors[high]),
            "rms_error_between": float(errors[~(low | high)].pow(2).mean().sqrt())}


def finetune(model, seed: int, args, *, lr=None, batch_size=None, sequences=None, test=True) -> dict:
    """The adding deviation: Adam on mini-batches of fresh sequences (stream 50,000 + seed), the same truncated
    gradient, no stopping rule; reports on a validation stream (seed 60,000), then tests once (``test``). Two
    minutes and deterministic, so an interrupted fine-tuning starts again from the paper's weights."""
    ft = {**args.finetune, **{k: v for k, v in (("lr", lr), ("batch_size", batch_size), ("sequences", sequences))
                              if v is not None}}
    val_x, val_y, val_len = adding_problem(ft["val_size"], args.T, torch.Generator().manual_seed(VALIDATION_SEED))
    opt = torch.optim.Adam(model.parameters(), lr=ft["lr"])
    stream = torch.Generator().manual_seed(STREAM_OFFSET + seed)
    steps = ft["sequences"] // ft["batch_size"]
    report_every = max(steps // ft["reports"], 1)
    curve = [{"sequences": 0, **summarise(adding_errors(model, val_x, val_y, val_len), val_y)}]
    t0 = time.perf_counter()
    for step in tqdm(range(1, steps + 1), disable=args.no_progress, desc=f"Adam seed {seed}", unit="batch"):
        adding_update(model, opt, *adding_problem(ft["batch_size"], args.T, stream), f"fine-tuning batch {step}")
        if step % report_every == 0:
            curve.append({"sequences": step * ft["batch_size"],
                          **summarise(adding_errors(model, val_x, val_y, val_len), val_y)})
            print(f"Adam seed {seed}: {curve[-1]['sequences']:,} sequences, validation wrong per 2,560 "
                  f"{curve[-1]['wrong_per_2560']:.1f}", flush=True)
    record = {**{k: ft[k] for k in ("lr", "batch_size", "sequences")}, "optimizer": "Adam",
              "train_time_s": time.perf_counter() - t0, "validation_curve": curve}
    if test:
        record.update(adding_test(model, *adding_test_set(args.test_size, args.T, seed)))
        print(f"adding seed {seed} (then Adam): {record['test_wrong']} of {args.test_size} test sequences wrong")
    return record


# --------------------------------------------------------------------------- Experiment 1: embedded Reber grammar


def reber_loss(model, inputs, targets, lengths) -> torch.Tensor:
    """1/2 the squared error, summed over output units and steps, averaged over the strings."""
    mask = (torch.arange(inputs.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)
    return 0.5 * (((model(inputs) - targets) ** 2) * mask).sum() / len(inputs)


@torch.no_grad()
def reber_wrong(model, *sets) -> int:
    """Strings with a wrong prediction somewhere (Sec. 5.1's criterion, RNN/lstm/tasks.py: reber_correct)."""
    return sum(int((~reber_correct(model(x), t, n)).sum()) for x, t, n in sets)


def reber_data(seed: int, strings: int, data_seed: int | None = None):
    """A trial's training and test strings (Sec. 5.1: none of the test strings a training string), and the
    generator that then picks its training strings; ``data_seed`` gives every trial the same strings."""
    rng = torch.Generator().manual_seed(seed)
    data = rng if data_seed is None else torch.Generator().manual_seed(data_seed)
    train = reber_sets(strings, data)
    return train, reber_sets(strings, data, exclude=set(train)), rng


def online_update(model, lr: float, *, per_string: bool = False):
    """The paper's online algorithm: a weight change at every time step with an error (RNN/lstm/online.py);
    ``per_string``: one change per string, the sum of its steps' contributions (App. A.1's other reading)."""
    engine = OnlineLSTM1997(model)
    learn = engine.update_per_sequence if per_string else engine.online_sequence

    def update(x, target, lengths) -> float:
        t = target[0].numpy()
        return learn(x[0].numpy(), t, np.ones_like(t), lr)[0]
    return update


def optimizer_update(model, lr: float, optimizer=torch.optim.Adam):
    """One step of ``optimizer`` per string, through autograd (the same truncated gradient)."""
    opt = optimizer(model.parameters(), lr=lr)

    def update(x, target, lengths) -> float:
        loss = reber_loss(model, x, target, lengths)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()
    return update


def reber_trial(seed: int, args, *, make_model=functools.partial(LSTM1997, reber_config()), make_update=online_update,
                lr=None, data_seed=None) -> dict:
    """One trial of Sec. 5.1: train on randomly picked training strings until all 512 strings are predicted
    correctly (tested every ``args.eval_every`` strings) or ``args.max_sequences`` strings. An update may pause
    the test (``update.testing_paused(seen)``) and add to the record (``update.record``)."""
    seed_everything(seed)
    model = make_model()
    update = make_update(model, lr or args.lr or LR["reber"])
    train_strings, test_strings, rng = reber_data(seed, args.strings, data_seed)
    train, test = encode_reber(train_strings), encode_reber(test_strings)
    cap = args.max_sequences or MAX_SEQUENCES["reber"]
    seen, solved, t0 = 0, False, time.perf_counter()
    curve = {"sequences": [], "wrong_strings": [], "train_loss": []}           # at every test
    while seen < cap and not solved:
        pick = torch.randint(0, len(train_strings), (1,), generator=rng)
        n = int(train[2][pick].max())
        check_finite(update(train[0][pick, :n], train[1][pick, :n], train[2][pick]), f"seed {seed}, string {seen + 1}")
        seen += 1
        if seen % args.eval_every or getattr(update, "testing_paused", lambda s: False)(seen):
            continue
        wrong = reber_wrong(model, train, test)
        with torch.no_grad():
            loss = float(reber_loss(model, *train))
        for key, value in (("sequences", seen), ("wrong_strings", wrong), ("train_loss", loss)):
            curve[key].append(value)
        solved = wrong == 0
        if args.no_progress and seen % args.report_every == 0:
            print(f"Reber seed {seed}: {seen:,} strings, {wrong} of {2 * len(train_strings)} wrong", flush=True)
    print(f"Reber seed {seed}: {'solved' if solved else 'NOT solved'} after {seen:,} strings", flush=True)
    return {"seed": seed, "solved": solved, "sequences": seen, "train_time_s": time.perf_counter() - t0,
            "curve": curve, **getattr(update, "record", {}), "model": model.state_dict()}


def _one_thread(trial, seed: int) -> dict:
    torch.set_num_threads(1)              # a worker per trial; the net is tiny, the cost is per-step overhead
    return trial(seed)


def run_trials(trial, seeds, workers: int, done=lambda r: None) -> list[dict]:
    """Independent trials, each seeded by its own seed, so running them side by side changes only the wall time.
    ``done(record)`` sees each finished trial in seed order."""
    if workers == 1:
        return [done(r) or r for r in map(trial, seeds)]
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_one_thread, trial, s) for s in seeds]
        return [done(r) or r for r in (f.result() for f in futures)]



"""LSTM (Hochreiter & Schmidhuber 1997) on two of its experiments: the adding problem and the embedded Reber grammar.

    python RNN/lstm/train.py                  # the paper's setup, 10 trials of each task; writes RNN/lstm/results/
    python RNN/lstm/train.py --deviation      # ... and beside it the named deviation of each task
    python RNN/lstm/train.py --task adding    # one task (adding or reber)
    python RNN/lstm/train.py --resume         # continue: finished trials are read back, the interrupted one resumes
    python RNN/lstm/train.py --quick          # seconds; writes runs/lstm-quick

The paper's setup (squared error of sigmoid outputs, plain gradient descent, one sequence at a time, the truncated
gradient in the closed form of RNN/lstm/online.py):
- Adding problem (Exp. 4, Sec. 5.4, Table 7), T = 100: 2 blocks of 2 cells (93 weights), lr 0.5, fresh sequences
  until the stopping rule (mean training error below 0.01 and the 2,000 most recent sequences all within 0.04),
  then 2,560 test sequences. The paper: 1 wrong on average over 10 trials, never more than 3.
- Embedded Reber grammar (Exp. 1, Sec. 5.1, Table 1): 3 blocks of 2 cells (276 weights), weights changed at every
  time step, lr 0.1, until every symbol of 256 training and 256 test strings is predicted. The paper: every trial.
The named deviations (--deviation), each under its own metric: adding, the paper's training followed by 1,536,000
sequences of Adam (lr 0.003, batches of 256); Reber, Adam (lr 0.01) instead of gradient descent. Probes of other
settings are the scripts in RNN/lstm/experiments/ (their story: RNN/lstm/EXPERIMENTS.md).
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from common.cli import Run, base_parser, positive_int, run
from common.fileio import UserError
from common.results import command_line, metric, print_metrics
from common.training import atomic_save, load_checkpoint
from RNN.lstm.model import LSTM1997, adding_config, config_dict, reber_config
from RNN.lstm.trials import (LR, MAX_SEQUENCES, adding_test, adding_test_set, adding_trial, finetune,
                             optimizer_update, reber_trial, run_trials, sizes, write_record)

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "Hochreiter & Schmidhuber 1997, Long Short-Term Memory"
PAPER_ADDING = {100: (1, 74_000), 500: (0, 209_000), 1000: (1, 853_000)}   # Table 7: wrong of 2,560; sequences
REBER_ADAM_LR = 0.01       # the Reber deviation's rate, chosen on validation trials (EXPERIMENTS.md)


def parse_args(argv=None) -> argparse.Namespace:
    p = base_parser(__doc__.split("\n")[0], epochs=1, batch_size=1, lr=None, paper_dir=PAPER_DIR,
                    lr_help=f"learning rate of the paper's gradient descent; None = {LR}")
    p.add_argument("--task", choices=("adding", "reber", "all"), default="all", help="which experiment(s)")
    p.add_argument("--deviation", action="store_true",
                   help="also run each task's named deviation (adding: then Adam; Reber: Adam), its own metric")
    p.add_argument("--trials", type=positive_int, default=10, help="trials per task (seeds seed .. seed+n-1)")
    p.add_argument("--T", type=positive_int, default=100, help="adding problem: minimal sequence length")
    p.add_argument("--max-sequences", type=positive_int, default=None,
                   help=f"a trial gives up after this many training sequences; None = {MAX_SEQUENCES}")
    p.add_argument("--checkpoint-every", type=positive_int, default=20_000,
                   help="adding problem: checkpoint (and, with --no-progress, a log line) every this many sequences")
    p.add_argument("--workers", type=positive_int, default=2, help="Reber: trials run side by side in processes")
    for action in p._actions:               # shared flags that an online run on generated data does not use
        if action.dest in ("data_dir", "epochs", "batch_size", "amp"):
            action.help = argparse.SUPPRESS
    args = p.parse_args(argv)
    if args.epochs != 1 or args.batch_size != 1 or args.amp not in ("auto", "off"):
        p.error("--epochs, --batch-size and --amp do not apply: the paper trains online, one sequence per update, "
                "until its stopping rule (other settings: RNN/lstm/experiments/)")
    args.amp = "off"                        # fp32: the 1997 cell's online updates are not autocast
    if args.T < 10:
        p.error(f"--T must be at least 10 (the first marker is one of the first ten pairs), got {args.T}")
    return sizes(args)


# --------------------------------------------------------------------------- trials, their records, the metrics


def settings(task: str, args) -> dict:
    """What a task's trials depend on; --resume reads back only trials made with the same."""
    if task == "adding":
        return {"T": args.T, "lr": args.lr or LR["adding"], "max_sequences": args.max_sequences or
                MAX_SEQUENCES["adding"], "test_size": args.test_size,
                "then_adam": {k: args.finetune[k] for k in ("lr", "batch_size", "sequences")}}
    return {"lr": args.lr or LR["reber"], "max_sequences": args.max_sequences or MAX_SEQUENCES["reber"],
            "strings": args.strings, "eval_every": args.eval_every, "adam_lr": REBER_ADAM_LR}


def load_records(r: Run, task: str) -> tuple[dict, dict]:
    """``<out>/<task>.json``: every finished trial, {"settings", "paper": [...], <deviation>: [...]}, and
    ``<out>/<task>.pt``: their final weights. Read back with --resume; else a fresh start."""
    path, want = r.out / f"{task}.json", settings(task, r.args)
    if not (r.args.resume and path.exists()):
        return {"settings": want}, {}
    rec = json.loads(path.read_text())
    if rec.get("settings") != want:
        raise UserError(f"{path} holds trials made with other settings ({rec.get('settings')}, not {want}); "
                        "start without --resume, or give another --out")
    weights = r.out / f"{task}.pt"
    return rec, load_checkpoint(weights, fix="start without --resume") if weights.exists() else {}


def keep(r: Run, task: str, rec: dict, weights: dict, variant: str, trial: dict, state: dict) -> None:
    """Add a finished trial to the records and save them (atomically) at once."""
    stamp = {"command": command_line(), "commit": r.commit, "date": datetime.date.today().isoformat()}
    rec[variant] = sorted(rec.get(variant, []) + [{**trial, **stamp}], key=lambda t: t["seed"])
    weights[f"{variant}/seed{trial['seed']}"] = {k: v.detach().clone() for k, v in state.items()}
    write_record(rec, r.out / f"{task}.json")
    atomic_save(weights, r.out / f"{task}.pt")


def seeds(args) -> range:
    return range(args.seed, args.seed + args.trials)


def done(rec: dict, variant: str, args) -> list[dict]:
    return [t for t in rec.get(variant, []) if t["seed"] in seeds(args)]


def adding_trials(r: Run) -> dict:
    args, ckpt = r.args, r.out / "checkpoint.pt"
    rec, weights = load_records(r, "adding")
    for seed in seeds(args):
        if seed not in [t["seed"] for t in done(rec, "paper", args)]:
            model, trial = adding_trial(seed, args, ckpt)
            keep(r, "adding", rec, weights, "paper", {"seed": seed, **trial}, model.state_dict())
        if args.deviation and seed not in [t["seed"] for t in done(rec, "then_adam", args)]:
            model = LSTM1997(adding_config())
            model.load_state_dict(weights[f"paper/seed{seed}"])
            keep(r, "adding", rec, weights, "then_adam", {"seed": seed, **finetune(model, seed, args)},
                 model.state_dict())
    return rec


def reber_trials(r: Run) -> dict:
    args = r.args
    rec, weights = load_records(r, "reber")
    variants = {"paper": functools.partial(reber_trial, args=args)}
    if args.deviation:
        variants["adam"] = functools.partial(reber_trial, args=args, make_update=optimizer_update, lr=REBER_ADAM_LR)
    for variant, trial in variants.items():
        todo = [s for s in seeds(args) if s not in [t["seed"] for t in done(rec, variant, args)]]
        run_trials(trial, todo, args.workers,
                   done=lambda t, v=variant: keep(r, "reber", rec, weights, v, t, t.pop("model")))
    return rec


def report(r: Run, records: dict) -> None:
    """The checked numbers (means and counts over the trials, with the paper's and our band), the per-seed
    table, the figure, and metrics.json."""
    args, metrics = r.args, []
    rows = {s: {} for s in seeds(args)}
    time_of = lambda trials: sum(t["train_time_s"] for t in trials)     # noqa: E731
    if "adding" in records:
        paper, then = done(records["adding"], "paper", args), done(records["adding"], "then_adam", args)
        claim = f"Adding problem, T = {args.T} (Table 7): test sequences wrong of {args.test_size:,}, mean of"
        for name, trials, how, t in (("", paper, "the paper's setup (gradient descent, lr 0.5, to its stopping "
                                      "rule)", time_of(paper)), ("_sgd_then_adam", then, "the paper's training, "
                                      "then Adam (a deviation)", time_of(paper) + time_of(then))):
            wrong = [t["test_wrong"] for t in trials]
            if wrong:
                metrics.append(metric(f"adding_T{args.T}_1997{name}_mean_test_wrong", sum(wrong) / len(wrong),
                                      paper=PAPER_ADDING.get(args.T, (None,))[0], band=(0, 3),
                                      claim=f"{claim} {len(wrong)} trials; {how}", per_trial=wrong,
                                      trials_in_band=sum(w <= 3 for w in wrong), training_time_s=round(t, 1)))
        for t in paper:
            rows[t["seed"]].update(stop=f"{t['sequences']:,}", paper=t["test_wrong"])
        for t in then:
            rows[t["seed"]]["then"] = t["test_wrong"]
    if "reber" in records:
        for variant, how in (("paper", "the paper's setup (gradient descent, lr 0.1)"),
                             ("adam", f"Adam (lr {REBER_ADAM_LR}) instead of gradient descent (a deviation)")):
            trials = done(records["reber"], variant, args)
            if trials:
                solved = [t["sequences"] for t in trials if t["solved"]]
                metrics.append(metric(f"reber_1997{'' if variant == 'paper' else '_adam'}_trials_solved",
                                      len(solved), paper=len(trials), band=(math.ceil(0.8 * len(trials)), len(trials)),
                                      claim=f"Embedded Reber grammar (Table 1, 3 blocks of 2): trials solved of "
                                            f"{len(trials)}; {how}", strings_to_solve=solved,
                                      training_time_s=round(time_of(trials), 1)))
            for t in trials:
                rows[t["seed"]][f"reber_{variant}"] = f"after {t['sequences']:,}" if t["solved"] else \
                    f"no ({t['curve']['wrong_strings'][-1]} wrong)"
    task = next(iter(records))
    model = LSTM1997(adding_config() if task == "adding" else reber_config())
    weights = load_checkpoint(r.out / f"{task}.pt")
    model.load_state_dict(weights[next(k for k in weights if k.startswith("paper/"))])      # the first trial kept
    atomic_save(model.state_dict(), r.out / "model.pt")
    plot_trials(records, args, r.out / "trials.png")
    columns = {"stop": "adding: sequences to the stopping rule", "paper": "adding: wrong, paper's setup",
               "then": "adding: wrong, then Adam", "reber_paper": "Reber: solved, paper's setup",
               "reber_adam": "Reber: solved, Adam"}
    probes = sorted(p.relative_to(r.out).as_posix() for p in r.out.glob("experiments/*/*.json"))   # EXPERIMENTS.md
    r.write_metrics(paper=PAPER, metrics=metrics, model=model, model_kwargs={"config": config_dict(model.config)},
                    epochs=1, weights="model.pt", seeds=list(seeds(args)), records=[f"{t}.json" for t in records],
                    experiments=probes,
                    training_time_s=sum(time_of(v) for rec in records.values() for k, v in rec.items()
                                        if k != "settings"),
                    details={"columns": ["seed", *columns.values()],
                             "rows": [[s, *(row.get(c, "-") for c in columns)] for s, row in rows.items()]},
                    hyperparameters={"loss": "1/2 squared error", "truncated_gradient": True,
                                     "adding": records.get("adding", {}).get("settings"),
                                     "reber": records.get("reber", {}).get("settings")})
    print_metrics(metrics, r.out)


def plot_trials(records: dict, args, path: Path) -> None:
    """Per trial: the adding problem's test sequences wrong, and the Reber grammar's strings wrong in training."""
    fig, axes = plt.subplots(1, len(records), figsize=(5.5 * len(records), 3.6), squeeze=False)
    for ax, (task, rec) in zip(axes[0], records.items()):
        if task == "adding":
            for i, (variant, label) in enumerate((("paper", "the paper's setup"), ("then_adam", "then Adam"))):
                trials = done(rec, variant, args)
                ax.bar([t["seed"] + 0.4 * i - 0.2 for t in trials], [t["test_wrong"] for t in trials], 0.4, label=label)
            ax.axhline(3.5, color="grey", ls="--", label="our band: at most 3")
            ax.set(xlabel="trial (seed)", ylabel=f"test sequences wrong (of {args.test_size:,})",
                   title=f"adding problem, T = {args.T}", xticks=list(seeds(args)))
        else:
            for variant, style in (("paper", "-"), ("adam", ":")):
                for t in done(rec, variant, args):
                    ax.plot(t["curve"]["sequences"], t["curve"]["wrong_strings"], style,
                            lw=1, color=f"C{t['seed'] % 10}")
                ax.plot([], [], style, color="k", label="the paper's setup" if variant == "paper" else "Adam")
            ax.set(xlabel="training strings", ylabel=f"strings wrong (of {2 * args.strings})",
                   title="embedded Reber grammar (a colour per seed)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(r: Run) -> int:
    r.device = torch.device("cpu")          # one sequence at a time through a net of 93 or 276 weights: a CPU job
    records = {task: (adding_trials if task == "adding" else reber_trials)(r)
               for task in (("adding", "reber") if r.args.task == "all" else (r.args.task,))}
    report(r, records)
    return 0


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: every adding trial's shipped final weights (results/adding.pt, both variants)
    on its own 2,560 test sequences, the mean count of wrong ones (deterministic: exact). The Reber claims count
    solved trials; only one solved trial's weights per variant are shipped, so they are not re-measured here
    (tests/test_lstm.py checks that those solve their strings)."""
    from common.verify import Check, claimed

    weights, checks = load_checkpoint(results / "adding.pt"), []
    for variant, name in (("paper", "adding_T100_1997_mean_test_wrong"),
                          ("then_adam", "adding_T100_1997_sgd_then_adam_mean_test_wrong")):
        wrong = []
        for seed in record["seeds"]:
            model = LSTM1997(adding_config())
            model.load_state_dict(weights[f"{variant}/seed{seed}"])
            wrong.append(adding_test(model, *adding_test_set(2560, 100, seed))["test_wrong"])
        checks.append(Check(name, claimed(record, name), sum(wrong) / len(wrong), 1e-9,
                            f"{len(wrong)} trials' final weights, 2,560 test sequences each"))
    for name in ("reber_1997_trials_solved", "reber_1997_adam_trials_solved"):
        checks.append(Check(name, claimed(record, name), None, 0.0,
                            "a count of solved trials; one solved trial's weights per variant are shipped"))
    return checks


def main(argv=None) -> int:
    args = parse_args(argv)
    return run(train, args, PAPER_DIR)


if __name__ == "__main__":
    sys.exit(main())

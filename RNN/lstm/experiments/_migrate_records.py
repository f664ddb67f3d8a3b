# ruff: noqa  (a one-off, two scripts run in turn, removed in the next commit)
"""One-off, run once at the commit that adds it and removed in the next: the committed records of the old layout
(a folder per run or seed: metrics.json, history.json, model.pt) moved, by code, into the new one:
- part 1: results/adding.json, adding.pt, reber.json, reber.pt (train.py --deviation reads them back with --resume);
- part 2: results/experiments/<name>/<name>.json, one record per experiment, and selection/validation.json.
Every field is copied from the old records; the metrics are recomputed from the trials and checked against the
old values; the shipped weights are checked to give the recorded test counts. Run from the repository root."""

# ---------------------------------------------------------------- part 1: the paper path
import json
from pathlib import Path

import torch

from common.training import atomic_save
from RNN.lstm.model import LSTM1997, adding_config, reber_config
from RNN.lstm.tasks import encode_reber
from RNN.lstm.trials import write_record as write_json, adding_test, adding_test_set, reber_data, reber_wrong

R = Path("RNN/lstm/results")


def load(p):
    return json.loads((R / p).read_text())


def curve_columns(trials):
    return [{**t, "curve": {k: [c[k] for c in t["curve"]] for k in ("sequences", "wrong_strings", "train_loss")}}
            for t in trials]


def columns(history):
    return {k: [h[k] for h in history] for k in ("sequences", "train_mse", "recent_correct")}


def weights(p):
    return torch.load(R / p, map_location="cpu", weights_only=True)


adding = {"settings": {"T": 100, "lr": 0.5, "max_sequences": 1_000_000, "test_size": 2560,
                       "then_adam": {"lr": 0.003, "batch_size": 256, "sequences": 1_536_000}},
          "paper": [], "then_adam": []}
adding_w = {}
final = load("metrics.json")
for seed in range(10):
    if seed == 0:
        rec, folder = load("adding-1997/continuation_metrics.json"), "adding-1997"
        run = final["runs"]["adding-1997"]
        note = ("trained in parts on one data stream and checkpoint chain: the first 300,000 sequences at commit "
                "907cadd, continued by this command until the stopping rule held; evaluated again (the same weights "
                f"and test) by '{final['command']}' at {final['commit']} ({final['date']})")
    else:
        folder = f"adding-seeds/seed{seed}/adding-1997"
        rec = load(f"adding-seeds/seed{seed}/metrics.json")
        run, note = rec["runs"]["adding-1997"], None
    assert run["lr"] == 0.5 and run["batch_size"] == 1 and run["T"] == 100 and run["stopping_rule_met"]
    assert rec["runs"]["adding-1997"]["test_wrong"] == run["test_wrong"]
    trial = {"seed": seed, "sequences": run["sequences"], "stopping_rule_met": run["stopping_rule_met"],
             "stopping_rule_first_met_after": run["sequences"],
             "test_wrong": run["test_wrong"], "test_size": run["test_size"], "test_mse": run["test_mse"],
             "test_max_abs_error": run["test_max_abs_error"], "train_time_s": run["train_time_s"],
             "history": columns(json.loads((R / folder / "history.json").read_text())),
             "command": rec["command"], "commit": rec["commit"], "date": rec["date"], "device": rec["device"],
             "wall_time_s": rec["wall_time_s"], "torch": rec["torch"]}
    if note:
        trial["note"] = note
    adding["paper"].append(trial)
    adding_w[f"paper/seed{seed}"] = weights(f"{folder}/model.pt")

    ft_rec, ft = load(f"sgd-then-adam/seed{seed}/metrics.json"), load(f"sgd-then-adam/seed{seed}/finetune.json")
    hp, m = ft_rec["hyperparameters"], ft_rec["metrics"][0]
    assert ft_rec["weights_before"].endswith(f"{folder}/model.pt"), ft_rec["weights_before"]
    assert (hp["lr"], hp["batch_size"], hp["sequences"], ft["validation"]["seed"]) == (0.003, 256, 1_536_000, 60_000)
    adding["then_adam"].append({
        "seed": seed, "lr": hp["lr"], "batch_size": hp["batch_size"], "sequences": hp["sequences"],
        "optimizer": hp["optimizer"], "train_time_s": ft["wall_time_s"], "validation_curve": ft["curve"],
        "test_wrong": int(m["ours"]), "test_size": m["of"], "test_mse": m["mse"], "test_max_abs_error": m["max_abs_error"],
        "command": ft_rec["command"], "commit": ft_rec["commit"], "date": ft_rec["date"], "device": ft_rec["device"],
        "wall_time_s": ft_rec["wall_time_s"], "torch": ft_rec["torch"]})
    adding_w[f"then_adam/seed{seed}"] = weights(f"sgd-then-adam/seed{seed}/model.pt")

# the weights give the recorded test counts
for variant in ("paper", "then_adam"):
    for t in adding[variant]:
        model = LSTM1997(adding_config())
        model.load_state_dict(adding_w[f"{variant}/seed{t['seed']}"])
        test = adding_test(model, *adding_test_set(2560, 100, t["seed"]))
        assert test["test_wrong"] == t["test_wrong"], (variant, t["seed"], test, t["test_wrong"])
        assert abs(test["test_mse"] - t["test_mse"]) < 1e-9, (variant, t["seed"])
print("adding: weights reproduce every recorded test count")

reber = {"settings": {"lr": 0.1, "max_sequences": 100_000, "strings": 256, "eval_every": 1000, "adam_lr": 0.01},
         "paper": [], "adam": []}
reber_w = {}
for variant, folder, rec in (("paper", "reber-1997", final), ("adam", "adam-1997-reber/reber-1997",
                                                              load("adam-1997-reber/metrics.json"))):
    run = rec["runs"]["reber-1997"]
    assert run["lr"] == (0.1 if variant == "paper" else 0.01) and run["batch_size"] == 1 and run["weights"] == 276
    trials = curve_columns(json.loads((R / folder / "history.json").read_text()))
    assert [t["sequences"] for t in trials] == run["sequences"] and sum(t["solved"] for t in trials) == run["solved"]
    for t in trials:
        reber[variant].append({**t, "command": rec["command"], "commit": rec["commit"], "date": rec["date"],
                               "device": rec["device"], "torch": rec["torch"]})
    first = next(t for t in trials if t["solved"])      # the old runs kept the first solved trial's weights only
    reber_w[f"{variant}/seed{first['seed']}"] = weights(f"{folder}/model.pt")
    model = LSTM1997(reber_config())
    model.load_state_dict(reber_w[f"{variant}/seed{first['seed']}"])
    tr, te, _ = reber_data(first["seed"], 256)
    assert reber_wrong(model, encode_reber(tr), encode_reber(te)) == 0
print("reber: the kept weights solve their trials")

write_json(adding, R / "adding.json")
atomic_save(adding_w, R / "adding.pt")
write_json(reber, R / "reber.json")
atomic_save(reber_w, R / "reber.pt")
print("written")

# ---------------------------------------------------------------- part 2: the experiments
import glob
import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

from RNN.lstm.experiments import record
from RNN.lstm.trials import write_record

R = Path("RNN/lstm/results")
E = R / "experiments"


def load(p):
    return json.loads(Path(p).read_text())


def curve_columns(trials):
    return [{**t, "curve": {k: [c[k] for c in t["curve"]] for k in ("sequences", "wrong_strings", "train_loss")}}
            for t in trials]


def columns(history):
    return {k: [h[k] for h in history] for k in ("sequences", "train_mse", "recent_correct")}


def prov(rec, seeds):
    return {"seeds": seeds, "command": rec["command"], "commit": rec["commit"], "date": rec["date"],
            "device": rec["device"], "wall_time_s": rec["wall_time_s"], "torch": rec["torch"]}


def old_value(rec):
    return rec["metrics"][0]["ours"] if rec["metrics"] else None


def reber_run(folder, key="reber-1997"):
    """A 10-trial (or n-trial) Reber run: one command."""
    rec = load(R / folder / "metrics.json")
    run = rec["runs"][key]
    trials = curve_columns(load(R / folder / key / "history.json"))
    assert [t["sequences"] for t in trials] == run["sequences"] and sum(t["solved"] for t in trials) == run["solved"]
    return rec, run, trials, [prov(rec, [t["seed"] for t in trials])]


def adding_runs(folders, key="adding-1997"):
    """Adding runs, one folder (one command) per seed."""
    trials, provs, recs = [], [], []
    for folder in folders:
        rec = load(R / folder / "metrics.json")
        run = rec["runs"][key]
        t = {"seed": rec["seed"], "sequences": run["sequences"], "stopping_rule_met": run["stopping_rule_met"],
             "stopping_rule_first_met_after": run.get("stopping_rule_first_met_after",
                                                      run["sequences"] if run["stopping_rule_met"] else None),
             **{k: run[k] for k in ("test_wrong", "test_size", "test_mse", "test_max_abs_error", "train_time_s")},
             "history": columns(load(R / folder / key / "history.json"))}
        trials.append(t)
        provs.append(prov(rec, [rec["seed"]]))
        recs.append(rec)
    return recs, trials, provs


def ns(seed, trials, cap=None, T=100):
    return SimpleNamespace(seed=seed, trials=trials, max_sequences=cap, T=T, test_size=2560)


def put(name, purpose, variant, metric, settings, trials, provs):
    path = E / name / f"{name}.json"
    rec = load(path) if path.exists() else {"experiment": name, "purpose": purpose, "runs": {}}
    rec["runs"][variant] = {"metrics": [metric], "settings": settings, "trials": trials,
                            "training_time_s": round(sum(t["train_time_s"] for t in trials), 1), "provenance": provs}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_record(rec, path)


def purpose(script):
    return __import__(f"RNN.lstm.experiments.{script}", fromlist=["x"]).__doc__.split("\n")[0]


# ---- output bias (seeds 0-9, lr 0.5)
rec, run, trials, provs = reber_run("output-bias")
a = ns(0, 10)
m = record.solved_metric("reber_1997_output_bias_trials_solved", trials, a,
                         "output units with biases, gradient descent at lr 0.5 (a deviation)")
assert m["ours"] == old_value(rec) and run["lr"] == 0.5 and rec["hyperparameters"]["reber_output_bias"]
put("output-bias", purpose("output_bias"), record.variant(a, "lr0.5"), m,
    {"lr": 0.5, "output_bias": True, "max_sequences": 100_000}, trials, provs)

# ---- Table 1's other rows
from RNN.lstm.experiments.table1 import TABLE1  # noqa: E402
for b, c, lr in ((3, 2, 0.2), (3, 2, 0.5), (4, 1, 0.1), (4, 1, 0.5)):
    rec, run, trials, provs = reber_run(f"table1/{b}x{c}-lr{lr:g}")
    assert run["lr"] == lr and run["weights"] == (276 if b == 3 else 264)
    rate, strings = TABLE1[(b, c, lr)]
    m = record.solved_metric(f"reber_1997_{b}x{c}_lr{lr:g}_trials_solved", trials, a,
                             f"{b}x{c} blocks x cells, gradient descent at lr {lr:g} (Table 1: {rate:.0%}, "
                             f"{strings:,} strings on average)", paper_rate=rate)
    assert m["ours"] == old_value(rec)
    put("table1", purpose("table1"), record.variant(a, f"{b}x{c}-lr{lr:g}"), m,
        {"blocks": b, "cells_per_block": c, "lr": lr, "max_sequences": 100_000}, trials, provs)

# ---- the paper's protocol (data seeds 1000-1002)
for d in (1000, 1001, 1002):
    rec, run, trials, provs = reber_run(f"paper-protocol/data{d}")
    assert rec["hyperparameters"]["reber_data_seed"] == d and run["lr"] == 0.1
    m = record.solved_metric(f"reber_1997_data{d}_trials_solved", trials, a,
                             f"the paper's setup, every trial on the pair of sets of data seed {d}")
    assert m["ours"] == old_value(rec)
    put("paper-protocol", purpose("paper_protocol"), record.variant(a, f"data{d}"), m,
        {"data_seed": d, "lr": 0.1, "max_sequences": 100_000}, trials, provs)

# ---- Adam on Reber: lr 0.003; output biases at lr 0.01
for folder, bias, lr in (("adam-1997-reber-lr0.003", False, 0.003), ("adam-output-bias-1997-reber", True, 0.01)):
    rec, run, trials, provs = reber_run(folder)
    assert run["lr"] == lr and rec["hyperparameters"]["optimizer"] == "Adam"
    assert rec["hyperparameters"]["reber_output_bias"] == bias
    tag = "_output_bias" if bias else ""
    m = record.solved_metric(f"reber_1997{tag}_adam_trials_solved", trials, a,
                             f"Adam at lr {lr:g}{' with output biases' if bias else ''} (a deviation)")
    assert m["ours"] == old_value(rec)
    put("adam-reber", purpose("adam_reber"), record.variant(a, f"{'output_bias-' if bias else ''}lr{lr:g}"), m,
        {"optimizer": "Adam", "lr": lr, "output_bias": bias, "max_sequences": 100_000}, trials, provs)

# ---- nn.LSTM comparisons
for folder, opt, lr, cap in (("modern-reber", "sgd", 0.5, 30_000), ("modern-reber-adam", "adam", 0.03, None)):
    rec, run, trials, provs = reber_run(folder, "reber-modern")
    assert run["lr"] == lr and rec["hyperparameters"]["optimizer"] == ("Adam" if opt == "adam" else "SGD (no momentum)")
    assert rec["hyperparameters"].get("modern_forget_bias") is None
    a2 = ns(0, 10, cap)
    m = record.solved_metric(f"modern_reber_{opt}_trials_solved", trials, a2, f"nn.LSTM, {opt} at lr {lr:g} "
                                                                              "(a comparison)")
    put("modern-lstm", purpose("modern_lstm"), record.variant(a2, f"reber-{opt}-lr{lr:g}"), m,
        {"task": "reber", "optimizer": opt, "lr": lr, "forget_bias": None, "batch_size": 1,
         "max_sequences": cap or 100_000}, trials, provs)
for folders, opt, lr, fb, cap in ((["modern-adding"], "sgd", 0.5, None, 200_000),
                                  (["modern-adding-adam"], "adam", 0.003, 3.0, None),
                                  ([f"modern-adding-adam-seeds/seed{s}" for s in range(1, 5)], "adam", 0.003, 3.0,
                                   300_000)):
    recs, trials, provs = adding_runs(folders, "adding-modern")
    for rec in recs:
        hp = rec["hyperparameters"]
        assert rec["runs"]["adding-modern"]["lr"] == lr and hp.get("modern_forget_bias") == fb
        assert rec["runs"]["adding-modern"]["batch_size"] == 16
    a2 = ns(trials[0]["seed"], len(trials), cap)
    m = record.wrong_metric(f"modern_adding_{opt}_mean_test_wrong", trials, a2, f"nn.LSTM, {opt} at lr {lr:g} "
                                                                                "(a comparison)")
    put("modern-lstm", purpose("modern_lstm"),
        record.variant(a2, f"adding-{opt}-lr{lr:g}{'' if fb is None else f'-fb{fb:g}'}"), m,
        {"task": "adding", "optimizer": opt, "lr": lr, "forget_bias": fb, "batch_size": 16,
         "max_sequences": cap or 1_000_000}, trials, provs)

# ---- Adam on the adding problem: constant lr 0.01; cosine from lr 0.003 to the cap
for pattern, kind, lr in (("adam-1997-adding", "", 0.01), ("adam-cosine-1997-adding", "_cosine_to_cap", 0.003)):
    recs, trials, provs = adding_runs([f"{pattern}/seed{s}" for s in range(10)])
    for rec, t in zip(recs, trials):
        hp = rec["hyperparameters"]
        assert rec["runs"]["adding-1997"]["lr"] == lr and hp["optimizer"] == "Adam" and hp["batch_size"] == 256
        assert hp.get("lr_schedule", "constant") == ("cosine" if kind else "constant")
        assert "--max-sequences 3000000" in rec["command"] and rec["metrics"][0]["ours"] == t["test_wrong"]
        assert rec["metrics"][0]["name"] == f"adding_T100_1997_adam{kind}_test_wrong"
    a2 = ns(0, 10, 3_000_000)
    m = record.wrong_metric(f"adding_T100_1997_adam{kind}_mean_test_wrong", trials, a2,
                            f"Adam at lr {lr:g}{', decaying to 0' if kind else ''}, batches of 256 (a deviation)")
    put("adam-adding", purpose("adam_adding"), record.variant(a2, f"{'cosine' if kind else 'constant'}-lr{lr:g}"), m,
        {"optimizer": "Adam", "lr": lr, "batch_size": 256, "lr_schedule": "cosine" if kind else "constant",
         "train_to_cap": bool(kind), "max_sequences": 3_000_000}, trials, provs)

# ---- eqs. 16-17 read literally: lr 1.0
recs, trials, provs = adding_runs(["adding-lr1"])
assert recs[0]["runs"]["adding-1997"]["lr"] == 1.0 and "--max-sequences 400000" in recs[0]["command"]
a2 = ns(0, 1, 400_000)
m = record.wrong_metric("adding_T100_1997_lr1_mean_test_wrong", trials, a2,
                        "gradient descent at lr 1 (eqs. 16-17 read literally)")
assert m["ours"] == old_value(recs[0])
put("error-function", purpose("error_function"), record.variant(a2, "lr1"), m,
    {"lr": 1.0, "max_sequences": 400_000}, trials, provs)

# ---- the fine-tuning diagnostic (validation stream only)
from common.results import metric  # noqa: E402
for folder, start, name in (("seed0-weights", "paper", "seed0-weights-lr0.003"),
                            ("seed0-weights-lr0.001", "paper", "seed0-weights-lr0.001"),
                            ("fresh-weights", "fresh", "fresh-weights-lr0.003")):
    ft = load(R / "finetune" / folder / "finetune.json")
    assert (ft["weights"] is None) == (start == "fresh") and ft["validation"] == {"seed": 60_000, "size": 25_600}
    seqs = ft["curve"][-1]["sequences"]
    trial = {"seed": ft["seed"], "lr": ft["lr"], "batch_size": ft["batch_size"], "sequences": seqs,
             "optimizer": "Adam", "train_time_s": ft["wall_time_s"], "validation_curve": ft["curve"],
             "weights_before": ft["weights"]}
    end = ft["curve"][-1]["wrong_per_2560"]
    m = metric(f"adding_T100_finetune_{start}_validation_wrong", end, paper=1, band=(0, 3), split="validation",
               claim=f"Adding problem, T = 100: validation sequences wrong per 2,560 after {seqs:,} sequences of "
                     f"Adam at lr {ft['lr']:g} from {'the paper-setup weights' if start == 'paper' else 'fresh weights'}")
    p = {"seeds": [ft["seed"]], "command": ft["command"], "commit": ft["commit"], "device": ft["device"],
         "wall_time_s": ft["wall_time_s"], "torch": ft["torch"],
         "date": subprocess.run(["git", "show", "-s", "--format=%cs", ft["commit"]], capture_output=True, text=True,
                                check=True).stdout.strip() + " (the commit's date; the record has none)"}
    put("finetune", purpose("finetune"), name, m,
        {"start": start, "lr": ft["lr"], "batch_size": ft["batch_size"], "sequences": seqs,
         "validation": ft["validation"]}, [trial], [p])

# ---- validation runs, for selection.py
runs = {}
for path in sorted(glob.glob(str(R / "validation/*/metrics.json"))):
    rec = load(path)
    (key, _), = rec["runs"].items()
    history = load(Path(path).parent / key / "history.json")
    runs[Path(path).parent.name] = {"record": rec, "history": columns(history) if key.startswith("adding") else
                                    curve_columns(history)}
write_record({"purpose": "every validation run's record (train.py's metrics.json of the time) and training curve "
                         "(history.json), read by RNN/lstm/experiments/selection.py", "runs": runs},
             E / "selection" / "validation.json")
print("done", len(runs), "validation runs")

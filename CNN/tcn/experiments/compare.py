"""The comparative tables of the README, read from the results files (nothing is retrained or typed in), with the
TCN paper's own Table 1 numbers beside them:

* the music table: the recurrent units of RNN/gru against the TCN of this folder, on JSB Chorales and Nottingham;
* Table 1 whole: every task we run (pixel MNIST, the adding problem, copy memory, the two music sets) and the four
  models (TCN, LSTM, GRU, tanh RNN), ours beside the paper's, "pending" where the run has not been made.

    python CNN/tcn/experiments/compare.py            # rewrites both tables in CNN/tcn/README.md
    python CNN/tcn/experiments/compare.py --check    # exit 1 when a table in the README is out of date

Two conventions of the metric (both common.data.frame_nll, nats per time step): RNN/gru predicts every frame
of a piece, the first from silence; the TCN paper's code predicts frames 2..T from the frames before. The TCN's
train.py measures both, so its row can be read against either.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common.data import REPO_ROOT
from common.results import replace_block

README = REPO_ROOT / "CNN" / "tcn" / "README.md"
GRU_RESULTS, TCN_RESULTS = "RNN/gru/results/metrics.json", "CNN/tcn/results/{dataset}/metrics.json"
BEGIN, END = "<!-- comparison:begin -->", "<!-- comparison:end -->"
DATASETS = {"jsb": "JSB Chorales", "nottingham": "Nottingham"}
# Table 1 of Bai et al. (2018): their own runs, models of about 300K (JSB) and 1M (Nottingham) parameters.
TCN_PAPER = {"jsb": {"tanh RNN": 8.91, "LSTM": 8.45, "GRU": 8.43, "TCN": 8.10},
             "nottingham": {"tanh RNN": 4.05, "LSTM": 3.29, "GRU": 3.46, "TCN": 3.07}}
GRU_NAMES = {"tanh": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def rows(root: Path = REPO_ROOT) -> list[list[str]]:
    """One row per model and dataset that has a results file."""
    out = []
    for dataset, name in DATASETS.items():
        gru = root / GRU_RESULTS
        gru_record = json.loads(gru.read_text()) if gru.exists() else None
        if gru_record is not None and gru_record.get("dataset") == dataset:
            for unit, res in gru_record["units"].items():
                model = GRU_NAMES[unit]
                out.append([name, model, "RNN/gru (Chung et al. 2014's sizes)", f"{res['parameters']:,}",
                            f"{res['test_nll']:.3f}", "-", _minutes(res["wall_time_s"]),
                            f"{TCN_PAPER[dataset][model]:.2f}"])
        tcn = root / TCN_RESULTS.format(dataset=dataset)
        if tcn.exists():
            rec = json.loads(tcn.read_text())
            out.append([name, "TCN", "CNN/tcn (Bai et al. 2018's setting)", f"{rec['parameters']:,}",
                        f"{rec['test_nll_all_frames']:.3f}", f"**{rec['metrics'][0]['ours']:.3f}**",
                        _minutes(rec["training_time_s"]), f"{TCN_PAPER[dataset]['TCN']:.2f}"])
    return out


def table(root: Path = REPO_ROOT) -> str:
    lines = ["| Data | Model | Trained by | Parameters | Test NLL, every frame (RNN/gru's convention) | "
             "Test NLL, frames 2..T (the TCN paper's) | Training time, this CPU | TCN paper, Table 1 |",
             "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows(root)]
    return "\n".join(lines)


# --------------------------------------------------------------------------- Table 1, every task and model

TABLE1_BEGIN, TABLE1_END = "<!-- table1:begin -->", "<!-- table1:end -->"
MODELS = {"tcn": "TCN", "lstm": "LSTM", "gru": "GRU", "rnn": "tanh RNN"}
# Table 1 of Bai et al. (2018): the metric, the model size it states, and the four models' numbers.
TABLE1 = {
    "smnist": ("Sequential MNIST, test accuracy %", "70K", {"tcn": 99.0, "lstm": 87.2, "gru": 96.2, "rnn": 21.5}),
    "pmnist": ("Permuted MNIST, test accuracy %", "70K", {"tcn": 97.2, "lstm": 85.7, "gru": 87.3, "rnn": 25.3}),
    "adding": ("Adding problem T = 600, test MSE", "70K", {"tcn": 5.8e-5, "lstm": 0.164, "gru": 5.3e-5, "rnn": 0.177}),
    "copy": ("Copy memory T = 1000, test loss", "16K", {"tcn": 3.5e-5, "lstm": 0.0204, "gru": 0.0197, "rnn": 0.0202}),
    "jsb": ("JSB Chorales, test NLL", "300K", {"tcn": 8.10, "lstm": 8.45, "gru": 8.43, "rnn": 8.91}),
    "nottingham": ("Nottingham, test NLL", "1M", {"tcn": 3.07, "lstm": 3.29, "gru": 3.46, "rnn": 4.05}),
}
KEYS = {"smnist": "test_accuracy_pct", "pmnist": "test_accuracy_pct", "adding": "test_mse", "copy": "test_loss"}
PENDING = "pending"


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(x: float) -> str:
    """Ours: accuracies and NLLs to 2-3 decimals, small losses to 3 significant digits."""
    if x != 0 and abs(x) < 1e-2:
        return f"{x:.2e}".replace("e-0", "e-")
    return f"{x:.3g}" if abs(x) < 1 else f"{x:.3f}" if abs(x) < 10 else f"{x:.2f}"


def _paper(x: float) -> str:
    """The paper's number as Table 1 prints it."""
    return f"{x:.1e}".replace("e-0", "e-") if x != 0 and abs(x) < 1e-3 else str(x)


def ours(task: str, model: str, root: Path = REPO_ROOT) -> str:
    """Our number for ``model`` on ``task`` from its results file, or "pending". A run stopped by its time box
    says after how many epochs; the music sets' recurrent numbers are RNN/gru's (marked: Chung et al.'s sizes)."""
    results = root / "CNN" / "tcn" / "results"
    if task in DATASETS:
        if model == "tcn":
            rec = _read(results / task / "metrics.json")
            return PENDING if rec is None else _fmt(rec["metrics"][0]["ours"])
        gru = _read(root / GRU_RESULTS)
        unit = {"rnn": "tanh"}.get(model, model)
        if gru is None or gru.get("dataset") != task or unit not in gru.get("units", {}):
            return "-"                                    # not run here: RNN/gru runs JSB only
        return f"{_fmt(gru['units'][unit]['test_nll'])}*"
    rec = _read(results / (task if model == "tcn" else f"baselines/{task}-{model}") / "metrics.json")
    if rec is None:
        return PENDING
    text = _fmt(rec[KEYS[task]])
    if rec.get("stopped_early") and rec.get("time_limit_h"):
        text += f" ({rec['epochs']} epochs, {rec['time_limit_h']:g} h box)"
    return text


def table1(root: Path = REPO_ROOT) -> str:
    """Table 1 of the paper, task by task: ours beside the paper's for each of the four models."""
    head = " | ".join(f"{name}: ours | {name}: paper" for name in MODELS.values())
    lines = [f"| Task (Table 1's metric) | Size (Table 1) | {head} |", "|---|---|" + "---|" * (2 * len(MODELS))]
    for task, (what, size, paper) in TABLE1.items():
        cells = []
        for m in MODELS:
            value = ours(task, m, root)
            bold = m == "tcn" and value not in (PENDING, "-")          # the paper's model, ours in bold
            cells.append(f"{f'**{value}**' if bold else value} | {_paper(paper[m])}")
        lines.append(f"| {what} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(root: Path = REPO_ROOT) -> str:
    readme = root / README.relative_to(REPO_ROOT)
    text = replace_block(readme.read_text(), table(root), BEGIN, END)
    if TABLE1_BEGIN in text:
        text = replace_block(text, table1(root), TABLE1_BEGIN, TABLE1_END)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only report whether the README's table is up to date")
    args = p.parse_args(argv)
    new = render()
    if args.check:
        stale = new != README.read_text()
        if stale:
            print(f"out of date: {README.relative_to(REPO_ROOT)} (run: python CNN/tcn/experiments/compare.py)")
        return int(stale)
    if new != README.read_text():
        README.write_text(new)
        print(f"updated {README.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The comparative table of the README: the recurrent units of RNN/gru against the TCN of this folder, read from
their results files (nothing is retrained or typed in), with the TCN paper's own Table 1 numbers beside them.

    python CNN/tcn/experiments/compare.py            # rewrites the table in CNN/tcn/README.md
    python CNN/tcn/experiments/compare.py --check    # exit 1 when the README's table is out of date

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


def render(root: Path = REPO_ROOT) -> str:
    readme = root / README.relative_to(REPO_ROOT)
    return replace_block(readme.read_text(), table(root), BEGIN, END)


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

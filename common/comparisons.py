"""COMPARISONS.md: the same data set, different papers, side by side, generated from the committed metrics files.

    python -m common.comparisons            # rewrite COMPARISONS.md (python -m common.results does it too)
    python -m common.comparisons --check    # exit 1 when COMPARISONS.md is out of date

Every number on the page is read from a ``results/.../metrics.json`` (the runs that make the README's rows come
through :func:`common.results.find_records`; a paper's other runs, such as an ablation or a recurrent baseline,
are read from their own files). A row whose run has not been made yet, but whose code is in the tree, shows
"run pending" and the paper's own number only; nothing is typed in. Parameters are the metrics file's count, or
counted from the network it names (``model``: module, class, constructor arguments; no weights are loaded).
The paper folders are imported by name when the page is made, as ``common.verify`` does: ``common`` imports
no paper folder.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from common.data import REPO_ROOT
from common.results import find_records

PAGE = "COMPARISONS.md"
PENDING = "run pending"

Value = Callable[[dict], "float | str | None"]


def metric(name: str, transform: Callable[[float], float] = lambda x: x) -> Value:
    """The ``ours`` of the metric ``name`` (else the top-level key ``name``), through ``transform``."""

    def value(record: dict) -> float | None:
        for m in record.get("metrics", []):
            if m["name"] == name:
                return transform(m["ours"])
        return transform(record[name]) if name in record else None

    return value


def error_from_accuracy(name: str) -> Value:
    """A test error in % from an accuracy in % (the sections compare errors)."""
    return metric(name, lambda acc: round(100.0 - acc, 4))


def key(*path: str) -> Value:
    """The value at ``record[path[0]][path[1]]...``."""

    def value(record: dict):
        for k in path:
            record = record[k]
        return record

    return value


@dataclass(frozen=True)
class Row:
    """One model on the section's data: ``folder``'s ``results/<run>/metrics.json`` (``run`` None: the paper's
    ``results/metrics.json``); ``value`` reads our number from it; ``paper`` is the number the row's own paper
    reports (None: it reports none). ``pending``: the run is planned (its code is in the tree) and the row shows
    "run pending" until its metrics file exists; without it a row whose file is missing is left out."""

    model: str
    cite: str
    year: int
    folder: str
    value: Value
    paper: float | str | None
    measure: str
    run: str | None = None
    parameters: Callable[[dict], int | None] | None = None
    time_s: Callable[[dict], float | None] | None = None
    pending: bool = False


@dataclass(frozen=True)
class Section:
    title: str
    intro: str
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = field(default_factory=tuple)


_TCN = ("Bai et al.", 2018, "CNN/tcn")
SECTIONS = (
    Section(
        "MNIST: classifiers",
        "The 10,000 MNIST test images, test error in % (lower is better), each network trained on MNIST's "
        "training images as its paper prescribes. The TCN and the LSTM of Bai et al. read an image as 784 pixels "
        "one after the other, a stress test of memory more than a digit recogniser; P-MNIST reads them in a fixed "
        "random order. Their paper reports accuracy: its error is 100 minus it.",
        (
            Row("LeNet-5", "LeCun et al.", 1998, "CNN/lenet5", metric("test_error_pct"), 0.95, "test error, %"),
            Row("SdA-3 (pretrained 784-1000-1000-1000 MLP)", "Vincent et al.", 2010, "AutoEncoders/stacked_denoising",
                metric("test_error_pct"), 1.28, "test error, %"),
            Row("the same MLP without pretraining", "Vincent et al.", 2010, "AutoEncoders/stacked_denoising",
                metric("test_error_pct"), None, "test error, %", run="no-pretrain"),
            Row("TCN, pixel by pixel (sequential MNIST)", *_TCN, error_from_accuracy("test_accuracy_pct"), 1.0,
                "test error, %", run="smnist", pending=True),
            Row("TCN, permuted pixels (P-MNIST)", *_TCN, error_from_accuracy("test_accuracy_pct"), 2.8,
                "test error, %", run="pmnist", pending=True),
            Row("LSTM, pixel by pixel (the TCN paper's baseline)", *_TCN, error_from_accuracy("test_accuracy_pct"),
                12.8, "test error, %", run="baselines/smnist-lstm", pending=True),
        ),
    ),
    Section(
        "CIFAR-10",
        "The 10,000 CIFAR-10 test images, test error in % (lower is better), unless the measure says otherwise. "
        "Krizhevsky et al.'s Fig. 1 is a speed claim, not an accuracy: epochs to 25% training error.",
        (
            Row("ResNet-20", "He et al.", 2015, "CNN/resnet", metric("test_error_pct"), 8.75, "test error, %"),
            Row("CCT-2/3x2 (Compact Convolutional Transformer)", "Hassani et al.", 2021, "Transformers/cct",
                error_from_accuracy("test_accuracy_pct"), round(100 - 89.17, 2), "test error, %", pending=True),
            Row("conv net of Sec. 3.3, without response normalisation", "Krizhevsky et al.", 2012, "CNN/alexnet",
                metric("test_error_plain_pct"), 13.0, "test error, %", run="lrn-cifar10"),
            Row("the same with response normalisation", "Krizhevsky et al.", 2012, "CNN/alexnet",
                metric("test_error_lrn_pct"), 11.0, "test error, %", run="lrn-cifar10"),
            Row("four-layer net of Fig. 1, ReLU", "Krizhevsky et al.", 2012, "CNN/alexnet",
                key("summary", "relu", "mean"), None, "epochs to 25% training error, mean of 3 seeds"),
            Row("the same, tanh", "Krizhevsky et al.", 2012, "CNN/alexnet", key("summary", "tanh", "mean"), None,
                "epochs to 25% training error, mean of 3 seeds"),
            Row("ratio tanh / ReLU of the Fig. 1 nets", "Krizhevsky et al.", 2012, "CNN/alexnet",
                metric("relu_speedup_x"), 6.0, "epochs to 25% training error, tanh / ReLU"),
        ),
    ),
    Section(
        "JSB Chorales (polyphonic music)",
        "The test pieces of JSB Chorales, negative log-likelihood per time step in nats (the 88 keys' Bernoulli "
        "NLLs summed; lower is better). Two conventions: RNN/gru predicts every frame, the first from silence; the "
        "TCN paper's code predicts frames 2..T from the frames before. The TCN is measured both ways. The "
        "recurrent nets here have Chung et al.'s sizes (about 20K parameters); the TCN paper's own recurrent nets "
        "had about 300K and reached 8.91 (tanh RNN), 8.45 (LSTM), 8.43 (GRU) in its convention.",
        (
            Row("tanh RNN", "Chung et al.", 2014, "RNN/gru", key("units", "tanh", "test_nll"), 9.10,
                "test NLL, every frame", parameters=key("units", "tanh", "parameters"),
                time_s=key("units", "tanh", "wall_time_s")),
            Row("LSTM", "Chung et al.", 2014, "RNN/gru", key("units", "lstm", "test_nll"), 8.67,
                "test NLL, every frame", parameters=key("units", "lstm", "parameters"),
                time_s=key("units", "lstm", "wall_time_s")),
            Row("GRU", "Chung et al.", 2014, "RNN/gru", key("units", "gru", "test_nll"), 8.54,
                "test NLL, every frame", parameters=key("units", "gru", "parameters"),
                time_s=key("units", "gru", "wall_time_s")),
            Row("TCN", *_TCN, metric("test_nll_all_frames"), None, "test NLL, every frame", run="jsb"),
            Row("TCN", *_TCN, metric("test_nll"), 8.10, "test NLL, frames 2..T", run="jsb"),
        ),
    ),
    Section(
        "Penn Treebank (word level)",
        "The PTB test set (82,430 words), perplexity (lower is better).",
        (
            Row("LSTM, 2 x 200, no dropout (small)", "Zaremba et al.", 2014, "RNN/rnn_regularization",
                metric("test_ppl"), 114.5, "test perplexity", run="small"),
            Row("LSTM, 2 x 650, dropout 0.5 (medium)", "Zaremba et al.", 2014, "RNN/rnn_regularization",
                metric("test_ppl"), 82.7, "test perplexity", run="medium"),
        ),
    ),
    Section(
        "MNIST: density models",
        "How well a model of MNIST images explains the test images, in nats per image. The two numbers measure "
        "different things and are not comparable with each other: the VAE's is an importance-sampled estimate "
        "(k = 5,000) of the negative log-likelihood of the binarised test images (lower is better); "
        "the GAN's is the log-likelihood of the (continuous) test images under a Parzen window of Gaussians "
        "placed on 10,000 generated samples, its width chosen on validation images (higher is better), an "
        "estimate the GAN paper itself calls of high variance.",
        (
            Row("VAE, 784-200-200-50", "Kingma & Welling", 2013, "AutoEncoders/vae", metric("test_nll"), 86.76,
                "test NLL, nats (lower is better)"),
            Row("GAN generator (Parzen estimate)", "Goodfellow et al.", 2014, "GANs/gan", metric("parzen_ll"), 225.0,
                "test Parzen log-likelihood, nats (higher is better)"),
        ),
    ),
    Section(
        "The adding problem",
        "Two of T random numbers in [0, 1] are marked; the network outputs their sum after the last step. The "
        "papers use different lengths and measures: Hochreiter & Schmidhuber count the test sequences answered "
        "with an absolute error above 0.04 (of 2,560, T = 100, mean of 10 trials); Bai et al. report the test "
        "MSE at T = 600 (predicting 1 always gives about 0.167).",
        (
            Row("LSTM of 1997, gradient descent (the paper's setup)", "Hochreiter & Schmidhuber", 1997, "RNN/lstm",
                metric("adding_T100_1997_mean_test_wrong"), 1, "T = 100: wrong test sequences of 2,560",
                time_s=lambda r: _metric_key(r, "adding_T100_1997_mean_test_wrong", "training_time_s")),
            Row("the same, then Adam (a deviation)", "Hochreiter & Schmidhuber", 1997, "RNN/lstm",
                metric("adding_T100_1997_sgd_then_adam_mean_test_wrong"), 1, "T = 100: wrong test sequences of 2,560",
                time_s=lambda r: _metric_key(r, "adding_T100_1997_sgd_then_adam_mean_test_wrong", "training_time_s")),
            Row("TCN, 8 levels of 24, k = 8", *_TCN, metric("test_mse"), 5.8e-5, "T = 600: test MSE", run="adding",
                pending=True),
            Row("LSTM (the TCN paper's baseline)", *_TCN, metric("test_mse"), 0.164, "T = 600: test MSE",
                run="baselines/adding-lstm", pending=True),
            Row("GRU (the TCN paper's baseline)", *_TCN, metric("test_mse"), 5.3e-5, "T = 600: test MSE",
                run="baselines/adding-gru", pending=True),
            Row("tanh RNN (the TCN paper's baseline)", *_TCN, metric("test_mse"), 0.177, "T = 600: test MSE",
                run="baselines/adding-rnn", pending=True),
        ),
    ),
)


def _metric_key(record: dict, name: str, field_: str):
    return next((m.get(field_) for m in record["metrics"] if m["name"] == name), None)


# --------------------------------------------------------------------------- reading the files


class Records:
    """The metrics files of ``root``: the README's runs through :func:`find_records`, other runs by path."""

    def __init__(self, root: Path):
        self.root = root
        self.found = {folder: dict(runs) for folder, runs in find_records(root).items()}

    def get(self, folder: str, run: str | None) -> dict | None:
        if run in self.found.get(folder, {}):
            return self.found[folder][run]
        path = self.root / folder / "results" / (run or "") / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else None


def count_parameters(record: dict) -> int | None:
    """The metrics file's ``parameters``, else the parameters of the network its ``model`` names (built, not
    loaded). None when the file names no network this tree can build."""
    if isinstance(record.get("parameters"), int):
        return record["parameters"]
    spec = record.get("model") or {}
    try:
        module = importlib.import_module(spec["module"].removesuffix(".py").replace("/", "."))
        model = getattr(module, spec["class"])(**spec["kwargs"])
    except (KeyError, ImportError, AttributeError, TypeError):
        return None
    return sum(p.numel() for p in model.parameters())


def _number(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4g}" if abs(x) < 100 else f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def row_cells(row: Row, record: dict | None) -> list[str] | None:
    """The table cells of one row; None when it has no file and is not a planned run."""
    where = f"[{row.folder}]({row.folder}/README.md)"
    who = f"{row.cite} {row.year}"
    if record is None:
        return [row.model, who, where, row.measure, f"*{PENDING}*", _number(row.paper), "-", "-"]
    value = row.value(record)
    params = row.parameters(record) if row.parameters else count_parameters(record)
    time_s = row.time_s(record) if row.time_s else record.get("training_time_s", record.get("wall_time_s"))
    device = record.get("device", "-")
    return [row.model, who, where, row.measure, f"**{_number(value)}**", _number(row.paper),
            "-" if params is None else f"{params:,}", f"{_duration(time_s)}, {device}"]


def section_table(section: Section, records: Records) -> str | None:
    rows = []
    for row in section.rows:
        record = records.get(row.folder, row.run)
        if record is None and not (row.pending and (records.root / row.folder / "train.py").is_file()):
            continue
        rows.append(row_cells(row, record))
    if not rows:
        return None
    lines = ["| Model | Paper | Code | Measure | Ours | Paper's | Parameters | Training time (device) |",
             "|---|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


HEADER = f"""# Comparisons across papers

The same data set in different papers' hands: each row is one of this repository's reproductions, measured on
that paper's test set by its own `train.py`, beside the number its paper reports. Generated from the committed
`results/.../metrics.json` files by `python -m common.results` (or `python -m common.comparisons`); a test
fails when this page and the files disagree, so do not edit it by hand. *{PENDING}*: the code is in the tree,
the run has not been made yet; no number is shown for it. Training times are of the run behind the number, on
the device named (a 2-core CPU unless a GPU is named); the parameters are the trained network's (for a GAN, the
generator's).
"""


def render(root: Path = REPO_ROOT) -> str:
    records = Records(root)
    parts = [HEADER]
    for section in SECTIONS:
        table = section_table(section, records)
        if table is None:
            continue
        parts.append(f"## {section.title}\n\n{section.intro}\n\n{table}\n")
        parts += [f"{note}\n" for note in section.notes]
    return "\n".join(parts)


def stale(root: Path = REPO_ROOT) -> bool:
    """Does ``root``'s COMPARISONS.md differ from what the metrics files give?"""
    page = root / PAGE
    return not page.is_file() or page.read_text() != render(root)


def write(root: Path = REPO_ROOT) -> bool:
    """Rewrite ``root``'s COMPARISONS.md if it is out of date; True when it was rewritten."""
    text, page = render(root), root / PAGE
    if page.is_file() and page.read_text() == text:
        return False
    page.write_text(text)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="only report whether COMPARISONS.md is up to date")
    args = p.parse_args(argv)
    if args.check:
        if stale():
            print(f"out of date: {PAGE} (run: python -m common.comparisons)")
            return 1
        return 0
    if write():
        print(f"updated {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

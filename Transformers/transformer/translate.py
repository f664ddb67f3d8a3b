"""Translate English into German with a trained Transformer: greedy and beam search, batched, with an incremental
decoder state, and BLEU against references.

    python Transformers/transformer/translate.py --split test2016          # BLEU of the shipped model, beam 5
    python Transformers/transformer/translate.py --input my.en --output my.de   # tokenised lowercased English
    echo "a man is riding a bike ." | python Transformers/transformer/translate.py --greedy

Input lines are lowercased, Moses-tokenised English (as Multi30k's ``*.lc.norm.tok.en``); they are segmented with
the data's BPE merges (subword-nmt, the ``code`` file) unless ``--no-bpe`` says they are segmented already. Output:
one German line per input line, tokenised, BPE removed.

The search is fairseq's (``sequence_generator.py``, the code behind the Multi30k baseline's 41.02): each step
takes the best 2k continuations of the k hypotheses; those among the best k that end in EOS are finished, with
the score log p / length ** lenpen (length counting EOS), and the best k others go on; a sentence is done when k
hypotheses have finished (or at ``max_len``); EOS is not allowed at the first step, padding never. Beam 1 is
greedy search. ``incremental=False`` runs the decoder over the whole prefix at every step (the benchmark's
comparison; same outputs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from common.fileio import UserError
from common.text import Vocabulary
from common.training import load_weights, resolve_device
from Transformers.transformer.model import EOS, PAD, Transformer

PAPER_DIR = Path(__file__).resolve().parent
MAX_LEN = 200          # fairseq's --max-len-b (with --max-len-a 0): at most 200 tokens, then EOS
BATCH = 128            # sentences per batch (evaluate.sh's --batch-size)


# --------------------------------------------------------------------------- search


def _step_scores(model: Transformer, tokens: torch.Tensor, memory, src_mask, state, t: int, max_len: int,
                 min_len: int) -> torch.Tensor:
    """Log-probabilities of the next token (rows, vocab) after ``tokens``, with fairseq's constraints."""
    y = model.decode(tokens[:, -1:] if state is not None else tokens, memory, src_mask, state)
    lprobs = model.output(y[:, -1]).float().log_softmax(-1)
    lprobs[:, PAD] = -torch.inf                                      # never padding
    if t < min_len:
        lprobs[:, EOS] = -torch.inf                                  # at least min_len tokens before EOS
    if t >= max_len:                                                 # the last step: EOS only
        eos = lprobs[:, EOS].clone()
        lprobs.fill_(-torch.inf)
        lprobs[:, EOS] = eos
    return lprobs


@torch.no_grad()
def greedy(model: Transformer, src: torch.Tensor, max_len: int = MAX_LEN, min_len: int = 1) -> list[list[int]]:
    """The most probable next token at every step, for a batch of sources (B, S) at once, with the incremental
    decoder state. Returns each sentence's ids without the final EOS."""
    model.eval()
    memory, src_mask = model.encode(src)
    state = model.init_state()
    tokens = src.new_full((src.size(0), 1), EOS)
    done = torch.zeros(src.size(0), dtype=torch.bool, device=src.device)
    for t in range(max_len + 1):
        nxt = _step_scores(model, tokens, memory, src_mask, state, t, max_len, min_len).argmax(-1)
        nxt = nxt.masked_fill(done, PAD)
        tokens = torch.cat([tokens, nxt[:, None]], 1)
        done |= nxt == EOS
        if done.all():
            break
    return [_strip(row[1:].tolist()) for row in tokens]


def _strip(ids: list[int]) -> list[int]:
    return ids[: ids.index(EOS)] if EOS in ids else [i for i in ids if i != PAD]


@torch.no_grad()
def beam_search(model: Transformer, src: torch.Tensor, beam: int = 5, max_len: int = MAX_LEN, lenpen: float = 1.0,
                min_len: int = 1, incremental: bool = True) -> list[list[int]]:
    """fairseq's beam search (module docstring) for a batch of sources (B, S). The B x k hypotheses are rows of one
    batch; every step keeps the rows of the surviving hypotheses (one ``order`` index for the tokens and the
    decoder state's target keys and values); the memory, which the k hypotheses of a sentence share, loses the
    rows of the sentences that are done. Returns each sentence's best ids without EOS."""
    model.eval()
    B, k = src.size(0), beam
    memory, src_mask = model.encode(src)
    memory, src_mask = memory.repeat_interleave(k, 0), src_mask.repeat_interleave(k, 0)
    state = model.init_state() if incremental else None
    tokens = src.new_full((B * k, 1), EOS)                          # row b * k + j: hypothesis j of sentence b
    scores = torch.zeros(B, k, device=src.device)                   # cumulative log-probabilities; at first the
    scores[:, 1:] = -torch.inf                                      # k rows are one hypothesis (the others: -inf)
    alive = list(range(B))                                          # the sentences the rows belong to
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(B)]
    for t in range(max_len + 1):
        lprobs = _step_scores(model, tokens, memory, src_mask, state, t, max_len, min_len)
        b, V = len(alive), lprobs.size(-1)
        lprobs = lprobs.view(b, k, V)
        cand = lprobs + scores[:, :, None]
        cand_scores, cand_idx = cand.reshape(b, -1).topk(min(2 * k, k * V - 1))
        cand_beam, cand_tok = cand_idx // V, cand_idx % V
        is_eos = (cand_tok == EOS) & cand_scores.isfinite()
        for i, j in is_eos[:, :k].nonzero().tolist():                # EOS among the best k: finished
            sentence = alive[i]
            if len(finished[sentence]) < k:
                ids = tokens[i * k + cand_beam[i, j], 1:].tolist()
                finished[sentence].append((cand_scores[i, j].item() / (t + 1) ** lenpen, ids))
        keep = [i for i, s in enumerate(alive) if len(finished[s]) < k and t < max_len]
        if not keep:
            break
        rows = torch.tensor(keep, device=src.device)
        ranks = torch.arange(cand_scores.size(1), device=src.device).expand(len(keep), -1)
        ranks = ranks + is_eos[rows] * cand_scores.size(1)             # the best k candidates that are not EOS
        chosen = ranks.topk(k, largest=False).indices.sort(-1).values
        scores = cand_scores[rows].gather(1, chosen)
        order = (rows[:, None] * k + cand_beam[rows].gather(1, chosen)).view(-1)
        tokens = torch.cat([tokens[order], cand_tok[rows].gather(1, chosen).view(-1, 1)], 1)
        if state is not None:
            state.reorder_targets(order)
        if len(keep) < b:           # sentences done: their memory rows go (a sentence's k rows are all the same)
            same = (rows[:, None] * k + torch.arange(k, device=src.device)).view(-1)
            memory, src_mask = memory[same], src_mask[same]
            if state is not None:
                state.reorder_memory(same)
        alive = [alive[i] for i in keep]
    return [_strip(sorted(f, key=lambda h: -h[0])[0][1]) for f in finished]


def translate(model: Transformer, sources: list[torch.Tensor], *, beam: int = 5, batch_size: int = BATCH,
              max_len: int = MAX_LEN, lenpen: float = 1.0, incremental: bool = True,
              device: torch.device | str = "cpu") -> list[list[int]]:
    """Source id tensors (each ending in EOS) -> target ids, in the input order; sentences are batched by length
    (``batch_size`` at a time). ``beam`` 1 with ``incremental`` is :func:`greedy`."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    out: list[list[int]] = [[] for _ in sources]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        src = torch.nn.utils.rnn.pad_sequence([sources[i] for i in idx], batch_first=True,
                                              padding_value=PAD).to(device)
        if beam == 1 and incremental:
            hyps = greedy(model, src, max_len)
        else:
            hyps = beam_search(model, src, beam, max_len, lenpen, incremental=incremental)
        for i, h in zip(idx, hyps):
            out[i] = h
    return out


# --------------------------------------------------------------------------- BLEU


def bleu_score(hypotheses: list[str], references: list[str]):
    """Corpus BLEU-4 (Papineni et al. 2002) of tokenised text as it stands, by sacrebleu with ``tokenize="none"``
    (one reference per sentence, n-gram counts clipped and summed over the corpus, brevity penalty
    exp(1 - ref_len / hyp_len) when the output is shorter): multi-bleu.perl's and fairseq's figure on the
    lowercased, tokenised references (the Multi30k convention). sacrebleu's smoothing only acts when an n-gram
    order has no match at all, where multi-bleu.perl and fairseq give 0. Returns sacrebleu's ``BLEUScore``."""
    import sacrebleu

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} translations for {len(references)} references")
    return sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none", force=True)


def bleu(hypotheses: list[str], references: list[str]) -> float:
    """:func:`bleu_score`'s BLEU-4, 0-100."""
    return bleu_score(hypotheses, references).score


def fairseq_line(score) -> str:
    """A ``BLEUScore`` as fairseq's generate.py prints it (the form of the published 41.02):
    ``BLEU4 = 41.02, 71.0/47.5/34.3/24.5 (BP=0.999, ratio=0.999, syslen=12096, reflen=12103)``."""
    return (f"BLEU4 = {score.score:.2f}, {'/'.join(f'{p:.1f}' for p in score.precisions)} (BP={score.bp:.3f}, "
            f"ratio={score.sys_len / score.ref_len:.3f}, syslen={score.sys_len}, reflen={score.ref_len})")


# --------------------------------------------------------------------------- command line


def load_vocabulary(path: Path, fix: str) -> Vocabulary:
    """The ``vocab.json`` train.py writes beside the weights; a missing or damaged one is a :class:`UserError`."""
    import json

    if not path.is_file():
        raise UserError(f"{path}: no vocabulary beside the weights; {fix}")
    try:
        return Vocabulary.load(path)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError) as e:
        raise UserError(f"{path} is damaged or not a vocabulary written by train.py "
                        f"({str(e).splitlines()[0][:120]}); {fix}") from None


def load_model(weights: Path, device, vocab_path: Path | None = None) -> tuple[Transformer, Vocabulary]:
    """A model of train.py (transformer_tiny) from ``weights`` and the ``vocab.json`` beside it."""
    fix = "pass the model.pt (transformer_tiny) that train.py wrote, with its vocab.json beside it"
    vocab = load_vocabulary(vocab_path or weights.parent / "vocab.json", fix)
    model = Transformer.tiny(len(vocab)).to(device)
    load_weights(model, weights, device, fix=fix)
    return model.eval(), vocab


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", type=Path, default=PAPER_DIR / "results" / "model.pt",
                   help="a state_dict written by train.py (vocab.json beside it)")
    p.add_argument("--split", choices=["valid", "test2016", "test2017", "coco"], default=None,
                   help="translate a Multi30k split and print its BLEU (instead of --input)")
    p.add_argument("--input", type=Path, default=None, help="tokenised lowercased English, one sentence a line "
                                                            "(default: standard input)")
    p.add_argument("--output", type=Path, default=None, help="where the German goes (default: standard output)")
    p.add_argument("--no-bpe", action="store_true", help="the input is BPE-segmented already")
    p.add_argument("--beam", type=int, default=5, help="beam size (1 = greedy)")
    p.add_argument("--greedy", action="store_true", help="greedy search (the same as --beam 1)")
    p.add_argument("--lenpen", type=float, default=1.0, help="length penalty: scores are divided by length ** lenpen")
    p.add_argument("--max-len", type=int, default=MAX_LEN, help="longest translation, in BPE tokens")
    p.add_argument("--batch-size", type=int, default=BATCH, help="sentences decoded together")
    p.add_argument("--data-dir", default=None, help="data root (the BPE code file, --split)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = p.parse_args(argv)
    if args.greedy:
        args.beam = 1
    if args.beam < 1:
        p.error(f"--beam must be at least 1, got {args.beam}")
    return args


def main(argv=None) -> int:
    from Transformers.transformer.data import code_file, decode, encode, load_multi30k

    args = parse_args(argv)
    try:
        device = resolve_device(args.device)
        model, vocab = load_model(args.weights, device)
        if args.split is not None:
            data_vocab, splits = load_multi30k(args.data_dir)
            if data_vocab.words != vocab.words:
                raise UserError(f"{args.weights.parent / 'vocab.json'} is not the dictionary of the Multi30k BPE data")
            data = splits[args.split]
            hyps = translate(model, data.src, beam=args.beam, batch_size=args.batch_size, max_len=args.max_len,
                             lenpen=args.lenpen, device=device)
            lines = [decode(vocab, h) for h in hyps]
            print(f"{args.split}: {fairseq_line(bleu_score(lines, data.references()))} (beam {args.beam}, "
                  f"{len(lines)} sentences)", file=sys.stderr)
        else:
            try:
                text = args.input.read_text(encoding="utf-8") if args.input else sys.stdin.read()
            except (OSError, UnicodeDecodeError) as e:
                raise UserError(f"{args.input or 'standard input'}: cannot be read as UTF-8 text "
                                f"({str(e).splitlines()[0][:120]}); pass tokenised lowercased English, one "
                                "sentence a line") from None
            raw = text.splitlines()
            if not args.no_bpe:
                from subword_nmt.apply_bpe import BPE

                with open(code_file(args.data_dir), encoding="utf-8") as codes:
                    segmenter = BPE(codes)
                raw = [segmenter.process_line(line.strip()) for line in raw]
            hyps = translate(model, [encode(vocab, line) for line in raw], beam=args.beam,
                             batch_size=args.batch_size, max_len=args.max_len, lenpen=args.lenpen, device=device)
            lines = [decode(vocab, h) for h in hyps]
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = "\n".join(lines) + "\n"
    if args.output:
        args.output.write_text(result, encoding="utf-8")
    else:
        sys.stdout.write(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

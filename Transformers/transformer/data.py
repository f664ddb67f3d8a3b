"""Multi30k English-German after a joint BPE (the files of ``common.data.DATASETS["multi30k_bpe"]``), as fairseq
reads it for the baseline train.py reproduces: a joined dictionary, sentences as token ids ending in EOS, and
batches of about ``max_tokens`` tokens of similar length.

* The dictionary is fairseq's ``--joined-dictionary`` built from train.en and train.de: the four special symbols
  ``<s> <pad> </s> <unk>`` (ids 0-3), then every training token by frequency (ties in alphabetical order), padded
  to a multiple of 8 with ``madeupword0000``... (none needed here: 9,712 symbols).
* A sentence is its whitespace-separated BPE tokens + EOS. The decoder reads the target shifted right: EOS, then
  the target without its EOS (fairseq's ``prev_output_tokens``).
* Batches (fairseq's ``batch_by_size``): the sentences ordered by a permutation drawn from the seed, then stably
  sorted by target length and by source length; cut greedily into batches whose size x longest sentence (source
  or target, EOS counted) stays within ``max_tokens``, cut to a multiple of 8 sentences. The batches are made once;
  each epoch visits them in an order drawn from (seed, epoch), so a resumed run sees what an uninterrupted one
  would (as :class:`common.data.TensorLoader`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from common.data import DATASETS, DataError, ensure_dataset
from common.text import Vocabulary
from Transformers.transformer.model import EOS, PAD, SPECIALS, UNK

FOLDER = "multi30k/bpe10k-en-de"
# our split names -> the files' prefixes (test.2016 = test_2016_flickr, test.coco = test_2017_mscoco)
SPLITS = {"train": "train", "valid": "valid", "test2016": "test.2016", "test2017": "test.2017", "coco": "test.coco"}
TESTS = ("test2016", "test2017", "coco")
SOURCE, TARGET = "en", "de"
BPE_MARK = "@@ "


def remove_bpe(line: str) -> str:
    """Undo the BPE (fairseq's ``--remove-bpe``): "ein spiel@@ haus" -> "ein spielhaus"."""
    return (line + " ").replace(BPE_MARK, "").rstrip()


def build_vocabulary(paths: list[str | os.PathLike], padding_factor: int = 8) -> Vocabulary:
    """fairseq's joined dictionary of the files (one sentence a line; EOS counted once a line)."""
    counts: Counter = Counter()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                counts.update(line.split())
                counts[SPECIALS[EOS]] += 1
    words = list(SPECIALS)
    ranked = sorted(((w, c) for w, c in counts.items() if w not in SPECIALS), key=lambda wc: (-wc[1], wc[0]))
    words += [w for w, _ in ranked]
    words += [f"madeupword{i:04d}" for i in range(-len(words) % padding_factor)]
    return Vocabulary(words)


def encode(vocab: Vocabulary, line: str) -> torch.Tensor:
    """A BPE line -> token ids + EOS; unknown tokens become UNK."""
    return torch.tensor([vocab.index.get(w, UNK) for w in line.split()] + [EOS], dtype=torch.long)


def decode(vocab: Vocabulary, ids, bpe: bool = False) -> str:
    """Token ids -> text, up to the first EOS, without padding and BOS; BPE removed unless ``bpe``."""
    words = []
    for i in (int(i) for i in ids):
        if i == EOS:
            break
        if i not in (PAD, SPECIALS.index("<s>")):
            words.append(vocab.words[i])
    text = " ".join(words)
    return text if bpe else remove_bpe(text)


@dataclass
class Parallel:
    """One split: source and target sentences as id tensors (each ending in EOS), and the lines they came from."""

    src: list[torch.Tensor]
    tgt: list[torch.Tensor]
    src_lines: list[str]
    tgt_lines: list[str]

    def __len__(self) -> int:
        return len(self.src)

    def subset(self, n: int) -> "Parallel":
        return Parallel(self.src[:n], self.tgt[:n], self.src_lines[:n], self.tgt_lines[:n])

    def references(self) -> list[str]:
        """The target sentences with the BPE removed: the tokenised, lowercased references of BLEU."""
        return [remove_bpe(line) for line in self.tgt_lines]


def read_lines(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def load_multi30k(root: str | os.PathLike | None = None) -> tuple[Vocabulary, dict[str, Parallel]]:
    """The joined dictionary and every split (train 29,000, valid 1,014, test2016 1,000, test2017 1,000, coco 461
    sentence pairs), from the verified files in the data root (``common.data.ensure_dataset``)."""
    folder = ensure_dataset("multi30k_bpe", root) / FOLDER
    vocab = build_vocabulary([folder / f"train.{SOURCE}", folder / f"train.{TARGET}"])
    splits = {}
    for name, prefix in SPLITS.items():
        src_lines, tgt_lines = read_lines(folder / f"{prefix}.{SOURCE}"), read_lines(folder / f"{prefix}.{TARGET}")
        if len(src_lines) != len(tgt_lines):
            raise DataError(f"{folder / prefix}.{{{SOURCE},{TARGET}}}: {len(src_lines)} and {len(tgt_lines)} lines; "
                            "the two sides of a split must have one line per sentence pair")
        splits[name] = Parallel([encode(vocab, s) for s in src_lines], [encode(vocab, t) for t in tgt_lines],
                                src_lines, tgt_lines)
    return vocab, splits


def code_file(root: str | os.PathLike | None = None) -> Path:
    """The BPE merges (subword-nmt's ``code``) the data were segmented with, for raw tokenised input."""
    return ensure_dataset("multi30k_bpe", root) / DATASETS["multi30k_bpe"][0].path


# --------------------------------------------------------------------------- batches


def pad_batch(seqs: list[torch.Tensor], pad: int = PAD) -> torch.Tensor:
    """Sequences of ids -> (batch, longest), padded on the right."""
    return torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True, padding_value=pad)


def collate(src: list[torch.Tensor], tgt: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(source (B, S), decoder input (B, T): EOS + target without its EOS, target (B, T)), padded with PAD."""
    prev = [torch.cat([t.new_tensor([EOS]), t[:-1]]) for t in tgt]
    return pad_batch(src), pad_batch(prev), pad_batch(tgt)


def batch_by_size(order: list[int], sizes: list[int], max_tokens: int, multiple: int = 8) -> list[list[int]]:
    """fairseq's ``batch_by_size``: consecutive sentences of ``order`` while (sentences x the longest ``sizes``)
    <= ``max_tokens``; a full batch is cut to a multiple of ``multiple`` sentences, the rest starts the next."""
    batches, batch, longest = [], [], 0
    for i in order:
        if sizes[i] > max_tokens:
            raise ValueError(f"sentence {i} has {sizes[i]} tokens, more than max_tokens ({max_tokens})")
        if batch and (len(batch) + 1) * max(longest, sizes[i]) > max_tokens:
            cut = max(multiple * (len(batch) // multiple), len(batch) % multiple)
            batches.append(batch[:cut])
            batch = batch[cut:]
            longest = max((sizes[j] for j in batch), default=0)
        batch.append(i)
        longest = max(longest, sizes[i])
    if batch:
        batches.append(batch)
    return batches


class TokenBatches:
    """fit's loader over a :class:`Parallel` split: batches of about ``max_tokens`` tokens (see the module's
    docstring), made once, visited in an order drawn from (seed, epoch) when ``shuffle``. ``max_updates`` caps the
    batches of all epochs together (fairseq's ``--max-update``): the epoch that reaches it is cut short, and
    ``len`` is the current epoch's number of batches."""

    def __init__(self, data: Parallel, *, max_tokens: int, seed: int = 0, shuffle: bool = False,
                 device: str | torch.device = "cpu", max_updates: int | None = None):
        sizes = [max(len(s), len(t)) for s, t in zip(data.src, data.tgt)]
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(data), generator=g).tolist() if shuffle else list(range(len(data)))
        order.sort(key=lambda i: len(data.tgt[i]))                      # stable: fairseq sorts by target ...
        order.sort(key=lambda i: len(data.src[i]))                      # ... then by source length
        self.batches = [tuple(t.to(device) for t in collate([data.src[i] for i in b], [data.tgt[i] for i in b]))
                        for b in batch_by_size(order, sizes, max_tokens)]
        self.seed, self.shuffle, self.max_updates, self.epoch = seed, shuffle, max_updates, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches_in_epoch(self, epoch: int) -> int:
        if self.max_updates is None:
            return len(self.batches)
        return max(0, min(len(self.batches), self.max_updates - epoch * len(self.batches)))

    def epochs_for(self, max_updates: int) -> int:
        """Epochs that ``max_updates`` updates take (the last one possibly cut short)."""
        return -(-max_updates // len(self.batches))

    def __len__(self) -> int:
        return self.batches_in_epoch(self.epoch)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(len(self.batches), generator=g).tolist()
        else:
            order = range(len(self.batches))
        for k, i in enumerate(order):
            if k >= len(self):
                return
            yield self.batches[i]

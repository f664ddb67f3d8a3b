"""Word-level corpora for language models: the vocabulary, the token streams, batchified columns and the
truncated-BPTT windows over them.

Penn Treebank in Mikolov's split (``ptb.{train,valid,test}.txt``, 10,000 words including ``<unk>``): every
line is a sentence of space-separated words, and ``<eos>`` is appended at each line end. The vocabulary is
read from the training file (ids in order of first appearance, as the authors' Torch code numbers them).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from common.data import DataError, ensure_dataset
from common.fileio import atomic_target

EOS = "<eos>"
SPLITS = ("train", "valid", "test")



def read_words(path: str | os.PathLike) -> list[str]:
    """The words of a text file, ``<eos>`` after every line."""
    words = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            words += line.split() + [EOS]
    return words


@dataclass
class Vocabulary:
    """Words <-> ids."""

    words: list[str]

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise ValueError("a vocabulary lists every word once")

    @classmethod
    def from_words(cls, words: list[str]) -> "Vocabulary":
        """Ids in order of first appearance."""
        return cls(list(dict.fromkeys(words)))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, words: list[str], where: str = "the text") -> torch.Tensor:
        missing = sorted({w for w in words if w not in self.index})
        if missing:
            raise DataError(f"{len(missing)} word(s) of {where} are not in the vocabulary, e.g. {missing[:5]}")
        return torch.tensor([self.index[w] for w in words], dtype=torch.long)

    def decode(self, ids) -> list[str]:
        return [self.words[int(i)] for i in ids]

    def save(self, path: str | os.PathLike) -> None:
        """The words in id order, as JSON (beside the weights: a model is useless without its vocabulary)."""
        from common.distributed import is_main

        if is_main():
            with atomic_target(path) as tmp:
                tmp.write_text(json.dumps(self.words) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))


def load_ptb(root: str | os.PathLike | None = None) -> tuple[Vocabulary, dict[str, torch.Tensor]]:
    """Penn Treebank (Mikolov's split): the vocabulary of the training file and each split as one stream of
    token ids (929,589 / 73,760 / 82,430 tokens, 10,000 words)."""
    root = ensure_dataset("ptb", root)
    words = {s: read_words(root / "PennTreebank" / f"ptb.{s}.txt") for s in SPLITS}
    vocab = Vocabulary.from_words(words["train"])
    return vocab, {s: vocab.encode(words[s], f"ptb.{s}.txt") for s in SPLITS}


def batchify(stream: torch.Tensor, batch_size: int) -> torch.Tensor:
    """A token stream cut into ``batch_size`` contiguous pieces of equal length, side by side: a (T, B) tensor
    whose column b continues where column b-1's piece of the stream would (the few tokens left over at the
    end are dropped). Row t is the t-th token of every piece; the model reads the rows in order."""
    steps = len(stream) // batch_size
    if steps < 2:
        raise ValueError(f"{len(stream)} tokens are too few for batches of {batch_size} columns")
    return stream[: steps * batch_size].view(batch_size, steps).t().contiguous()


def windows(columns: torch.Tensor, steps: int, drop_last: bool = True):
    """Truncated-BPTT windows over batchified ``columns`` (T, B): pairs (x, y) of ``steps`` rows, y the rows
    one later than x (the next word of every column). Windows follow each other without overlap, so the
    hidden state at the end of one is the state at the start of the next. ``drop_last`` drops a last window
    shorter than ``steps`` (as the authors' code does in training)."""
    t = len(columns) - 1
    for i in range(0, t, steps):
        n = min(steps, t - i)
        if n < steps and drop_last:
            return
        yield columns[i : i + n], columns[i + 1 : i + 1 + n]


def n_windows(columns: torch.Tensor, steps: int, drop_last: bool = True) -> int:
    t = len(columns) - 1
    return t // steps if drop_last else -(-t // steps)

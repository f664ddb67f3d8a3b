"""The two tasks of Elman (1990), *Finding Structure in Time*, Cognitive Science 14:179-211, generated
exactly as specified:

- :func:`temporal_xor`: the bit stream of Sec. 2 ("Exclusive-Or"): two random bits, then their XOR,
  repeated; the network predicts the next bit, so only every third bit is predictable.
- :func:`letter_sequence`: the letter stream of Sec. 3 ("Structure in Letter Sequences"): random
  consonants b, d, g, each replaced by ba, dii, guuu; letters coded by the six phonetic features of
  Table 1 (:data:`LETTER_FEATURES`).

Every generator takes a ``torch.Generator`` so that a seed fixes the data.
"""

from __future__ import annotations

import torch


def temporal_xor(n_triples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Elman Sec. 2: ``n_triples`` x (bit, bit, XOR of the two) as one float stream of 3 * n_triples bits.

    The paper's training stream has 1,000 triples (3,000 bits). Input bit t, target bit t + 1.
    """
    if n_triples < 1:
        raise ValueError(f"temporal_xor needs at least one triple, got {n_triples}")
    pairs = torch.randint(0, 2, (n_triples, 2), generator=generator)
    return torch.cat([pairs, pairs[:, :1] ^ pairs[:, 1:]], dim=1).reshape(-1).float()


# Elman Table 1: the letters as six binary features (Consonant, Vowel, Interrupted, High, Back, Voiced).
LETTER_FEATURE_NAMES = ("Consonant", "Vowel", "Interrupted", "High", "Back", "Voiced")
LETTER_FEATURES = {
    "b": (1, 0, 1, 0, 0, 1),
    "d": (1, 0, 1, 1, 0, 1),
    "g": (1, 0, 1, 0, 1, 1),
    "a": (0, 1, 0, 0, 1, 1),
    "i": (0, 1, 0, 1, 0, 1),
    "u": (0, 1, 0, 1, 1, 1),
}
WORDS = {"b": "ba", "d": "dii", "g": "guuu"}   # Elman Sec. 3: each consonant brings its vowels


def letter_sequence(n_consonants: int, generator: torch.Generator | None = None) -> tuple[str, torch.Tensor]:
    """Elman Sec. 3: ``n_consonants`` random consonants (b, d, g), each expanded (b -> ba, d -> dii,
    g -> guuu). Returns the letters and their features (len x 6, float). The paper uses 1,000 consonants."""
    if n_consonants < 1:
        raise ValueError(f"letter_sequence needs at least one consonant, got {n_consonants}")
    picks = torch.randint(0, 3, (n_consonants,), generator=generator).tolist()
    letters = "".join(WORDS["bdg"[k]] for k in picks)
    return letters, encode_letters(letters)


def encode_letters(letters: str) -> torch.Tensor:
    try:
        return torch.tensor([LETTER_FEATURES[c] for c in letters], dtype=torch.float32)
    except KeyError as e:
        raise ValueError(f"letter {e.args[0]!r} is not one of {''.join(LETTER_FEATURES)}") from None

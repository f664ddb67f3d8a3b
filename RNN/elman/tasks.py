"""The two tasks of Elman (1990), *Finding Structure in Time*, Cognitive Science 14:179-211, generated
exactly as specified:

- :func:`temporal_xor`: the bit stream of Sec. 2 ("Exclusive-Or"): two random bits, then their XOR,
  repeated; the network predicts the next bit, so only every third bit is predictable.
  :func:`ideal_observer_rms` is the lowest error any predictor that sees only the last k bits can reach.
- :func:`letter_sequence`: the letter stream of Sec. 3 ("Structure in Letter Sequences"): random
  consonants b, d, g, each replaced by ba, dii, guuu; letters coded by the six phonetic features of
  Table 1 (:data:`LETTER_FEATURES`).

Every generator takes a ``torch.Generator`` so that a seed fixes the data.
"""

from __future__ import annotations

import itertools
import math

import torch


def temporal_xor(n_triples: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Elman Sec. 2: ``n_triples`` x (bit, bit, XOR of the two) as one float stream of 3 * n_triples bits.

    The paper's training stream has 1,000 triples (3,000 bits). Input bit t, target bit t + 1.
    """
    if n_triples < 1:
        raise ValueError(f"temporal_xor needs at least one triple, got {n_triples}")
    pairs = torch.randint(0, 2, (n_triples, 2), generator=generator)
    return torch.cat([pairs, pairs[:, :1] ^ pairs[:, 1:]], dim=1).reshape(-1).float()


def ideal_observer_rms(k: int) -> dict[str, float]:
    """RMS errors of the Bayes-optimal prediction of the next bit of :func:`temporal_xor` from the last ``k``
    bits alone (k >= 2), on the predictable bits (every third, the XOR) and on the two random bits.

    The stream carries no marker of where a triple starts, so the observer does not know the phase of the
    bit to predict (uniform a priori over 0, 1, 2; 2 = the XOR bit). Under phase q the window's bits have
    phases q - k, ..., q - 1 (mod 3): a window is impossible when a phase-2 bit inside it is not the XOR of
    the two bits before it, and otherwise has probability 2^-(free bits). Exact, by enumerating the 2^k
    windows. With k = 2 nothing tells the phases apart: the prediction is 1/3 x (XOR of the two bits) +
    2/3 x 0.5, and the RMS error is 1/3 on the XOR bit and sqrt(5/18) = 0.527 on the random bits.
    """
    if k < 2:
        raise ValueError(f"the window must hold at least the two bits the XOR is taken of, got k={k}")

    def likelihood(w: tuple[int, ...], q: int) -> float:
        free = 0
        for i in range(k):
            if (q - k + i) % 3 == 2 and i >= 2:
                if w[i] != w[i - 1] ^ w[i - 2]:
                    return 0.0
            else:
                free += 1
        return 0.5 ** free

    sq_err, weight = [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]
    for w in itertools.product((0, 1), repeat=k):
        lik = [likelihood(w, q) for q in range(3)]          # P(window | phase q of the next bit)
        if sum(lik) == 0.0:
            continue
        xor = w[-1] ^ w[-2]
        p = (lik[0] * 0.5 + lik[1] * 0.5 + lik[2] * xor) / sum(lik)   # P(next bit = 1 | window)
        sq_err[2] += lik[2] * (p - xor) ** 2
        for q in (0, 1):                                    # a fair coin: E (p - b)^2 = 1/4 + (p - 1/2)^2
            sq_err[q] += lik[q] * (0.25 + (p - 0.5) ** 2)
        for q in range(3):
            weight[q] += lik[q]
    return {"predictable": math.sqrt(sq_err[2] / weight[2]),
            "random": math.sqrt((sq_err[0] / weight[0] + sq_err[1] / weight[1]) / 2)}


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

"""The tasks of RNN/elman/tasks.py against Elman (1990)'s specification."""

import re

import pytest
import torch

from RNN.elman.tasks import LETTER_FEATURES, letter_sequence, temporal_xor


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_temporal_xor_every_third_bit_is_the_xor():
    s = temporal_xor(500, gen()).long()
    assert s.shape == (1500,) and set(s.tolist()) <= {0, 1}
    t = s.view(-1, 3)
    assert torch.equal(t[:, 2], t[:, 0] ^ t[:, 1])
    assert 0.4 < t[:, :2].float().mean() < 0.6      # the first two bits are fair coin flips
    with pytest.raises(ValueError):
        temporal_xor(0)


def test_letter_sequence_words_and_features():
    letters, feats = letter_sequence(300, gen())
    assert re.fullmatch(r"(ba|dii|guuu)+", letters)
    assert len(re.findall(r"[bdg]", letters)) == 300
    assert feats.shape == (len(letters), 6)
    for c, row in zip(letters, feats):
        assert tuple(int(v) for v in row) == LETTER_FEATURES[c]
    assert len({tuple(v) for v in LETTER_FEATURES.values()}) == 6   # every letter coded uniquely (Table 1)

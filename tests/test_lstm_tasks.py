"""The tasks of RNN/lstm/tasks.py against Hochreiter & Schmidhuber (1997)'s specification."""

import re

import pytest
import torch

from RNN.lstm.tasks import (ADDING_TOLERANCE, REBER_SYMBOLS, adding_problem, embedded_reber, encode_reber,
                           reber_correct, reber_next_sets, reber_sets)

# An independent check of the grammar: the Reber language written as a regular expression (Cleeremans et al.
# 1989). From the state after "BT": S* X, then S (to the end) or X and the P-branch; the P-branch is
# (T* V P X)* T* V, then V or P S, then E.
_P_BRANCH = r"(T*VPX)*T*V(V|PS)"
REBER_RE = rf"B(TS*X(S|X{_P_BRANCH})|P{_P_BRANCH})E"
EMBEDDED_RE = re.compile(rf"^B(T{REBER_RE}T|P{REBER_RE}P)E$")


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_embedded_reber_strings_are_in_the_grammar():
    g = gen()
    strings = [embedded_reber(g) for _ in range(2000)]
    assert all(EMBEDDED_RE.match(s) for s in strings)
    assert {s[1] for s in strings} == {"T", "P"}
    assert min(len(s) for s in strings) == 9              # B T B T X S E T E is the shortest
    assert len(set(strings)) > 200                         # not a handful of strings


def test_reber_checker_rejects_strings_outside_the_grammar():
    for bad in ("BTBTXSEPE", "BTBTSSEТE", "BTBPVVETEX", "BPBTXXE PE", "BTBTXSET", "BTBXXSETE"):
        assert not EMBEDDED_RE.match(bad)
        with pytest.raises(ValueError):
            reber_next_sets(bad)


def test_reber_targets_are_the_sets_of_possible_next_symbols():
    s = "BTBPVVETE"
    sets = reber_next_sets(s)
    assert sets == [{"T", "P"}, {"B"}, {"T", "P"}, {"T", "V"}, {"P", "V"}, {"E"}, {"T"}, {"E"}]
    inputs, targets, lengths = encode_reber([s, "BPBTXSEPE"])
    assert inputs.shape == (2, 8, 7) and lengths.tolist() == [8, 8]
    assert torch.equal(inputs.sum(-1), torch.ones(2, 8))   # local (one-hot) coding
    assert REBER_SYMBOLS == "BTSXPVE"
    assert targets[0, 0].tolist() == [0, 1, 0, 0, 1, 0, 0]  # after B: T or P
    assert targets[1, 6].tolist() == [0, 0, 0, 0, 1, 0, 0]  # after the inner E: the remembered P


def test_reber_success_criterion():
    _, targets, lengths = encode_reber(["BTBPVVETE"])
    assert reber_correct(targets * 0.9 + 0.05, targets, lengths).all()
    wrong = targets.clone()
    wrong[0, 6] = torch.tensor([0, 0.5, 0, 0, 0.6, 0, 0])   # P above the correct T at the long-lag step
    assert not reber_correct(wrong, targets, lengths).any()


def test_reber_sets_keep_test_strings_out_of_training():
    g = gen()
    train = reber_sets(256, g)
    test = reber_sets(256, g, exclude=set(train))
    assert len(train) == len(test) == 256 and not set(train) & set(test)


@pytest.mark.parametrize("T", [100, 500, 1000])
def test_adding_problem_follows_section_5_4(T):
    x, y, lengths = adding_problem(3000, T, gen(T))
    assert x.shape == (3000, T + T // 10, 2)
    assert lengths.min() >= T and lengths.max() <= T + T // 10
    assert len(set(lengths.tolist())) > T // 10 // 2        # lengths spread over the range
    values, markers = x[..., 0], x[..., 1]
    valid = torch.arange(x.shape[1])[None] < lengths[:, None]
    assert values[valid].abs().max() <= 1 and values[valid].min() < -0.99 and values[valid].max() > 0.99
    assert (x[~valid] == 0).all()
    assert ((markers == 1).sum(1) == 2).all()
    first = (markers == 1).float().argmax(1)
    last_mark = x.shape[1] - 1 - (markers == 1).flip(1).float().argmax(1)
    assert first.max() <= 9                                  # the first marked pair is one of the first ten
    assert last_mark.max() <= T // 2 - 1                     # the second among the first T/2 - 1 unmarked pairs
    rows = torch.arange(3000)
    assert (markers[rows, lengths - 1] == -1).all()          # the final pair
    first_is_marked = markers[:, 0] == 1
    assert (markers[~first_is_marked, 0] == -1).all() and (values[first_is_marked, 0] == 0).all()
    assert ((markers == -1).sum(1) == 2 - first_is_marked.long()).all()
    marked_sum = (values * (markers == 1)).sum(1)
    assert torch.allclose(y, 0.5 + marked_sum / 4.0)
    assert y.min() >= 0 and y.max() <= 1
    assert ADDING_TOLERANCE == 0.04


def test_adding_problem_is_seeded_and_rejects_short_sequences():
    a, b = adding_problem(5, 100, gen(3)), adding_problem(5, 100, gen(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    with pytest.raises(ValueError, match="T >= 10"):
        adding_problem(5, 9)
    with pytest.raises(ValueError):
        adding_problem(0, 100)

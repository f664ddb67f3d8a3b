"""The two tasks of Hochreiter & Schmidhuber (1997), *Long Short-Term Memory*, Neural Computation
9(8):1735-1780, generated exactly as specified:

- :func:`embedded_reber` / :func:`encode_reber`: Experiment 1 (Sec. 5.1), the embedded Reber grammar
  over the symbols B T S X P V E, locally (one-hot) coded; the target at each step is the *set* of
  possible next symbols. :func:`reber_correct` is the paper's success criterion.
- :func:`adding_problem`: Experiment 4 (Sec. 5.4), pairs (value in [-1, 1], marker in {-1, 0, 1});
  the target at the sequence end is 0.5 + (X1 + X2) / 4. :data:`ADDING_TOLERANCE` is the criterion.

Every generator takes a ``torch.Generator`` so that a seed fixes the data.
"""

from __future__ import annotations

import torch


REBER_SYMBOLS = "BTSXPVE"
# The Reber grammar (Cleeremans, Servan-Schreiber & McClelland 1989; LSTM paper Fig. 3): from each state the
# two arcs (symbol, next state) are taken with probability 1/2; state 5 can only emit E.
REBER_ARCS = {
    0: (("T", 1), ("P", 2)),
    1: (("S", 1), ("X", 3)),
    2: (("T", 2), ("V", 4)),
    3: (("X", 2), ("S", 5)),
    4: (("P", 3), ("V", 5)),
    5: (("E", None),),
}


def _coin(generator: torch.Generator | None) -> int:
    return int(torch.randint(0, 2, (1,), generator=generator))


def reber(generator: torch.Generator | None = None) -> str:
    """One string of the (plain) Reber grammar, B ... E."""
    out, state = ["B"], 0
    while state is not None:
        arcs = REBER_ARCS[state]
        symbol, state = arcs[_coin(generator)] if len(arcs) == 2 else arcs[0]
        out.append(symbol)
    return "".join(out)


def embedded_reber(generator: torch.Generator | None = None) -> str:
    """Sec. 5.1 (Fig. 4): B, then T or P, a Reber string, the *same* T or P again, E.

    The second T/P can only be predicted by remembering the first one across the embedded string.
    """
    outer = "TP"[_coin(generator)]
    return "B" + outer + reber(generator) + outer + "E"


def _reber_next(state: int) -> set[str]:
    return {symbol for symbol, _ in REBER_ARCS[state]}


def reber_next_sets(string: str) -> list[set[str]]:
    """For each prefix string[:t+1] (t < len - 1) of an embedded Reber string, the set of symbols that
    may come next: the targets of Sec. 5.1. Raises ValueError if the string is not in the grammar."""
    if len(string) < 9 or string[0] != "B" or string[-1] != "E" or string[1] not in "TP" or string[-2] != string[1]:
        raise ValueError(f"not an embedded Reber string: {string!r}")
    sets: list[set[str]] = [{"T", "P"}, {"B"}]           # after B: T or P; after the outer T/P: the inner B
    inner, state = string[2:-2], 0
    if inner[0] != "B":
        raise ValueError(f"not an embedded Reber string: {string!r}")
    for symbol in inner[1:]:
        sets.append(_reber_next(state))
        arcs = dict(REBER_ARCS[state])
        if symbol not in arcs:
            raise ValueError(f"not an embedded Reber string: {string!r} ({symbol} cannot follow here)")
        state = arcs[symbol]
        if state is None:
            break
    sets.append({string[1]})                              # after the inner E: the outer T/P, now determined
    sets.append({"E"})
    if state is not None or len(sets) != len(string) - 1:
        raise ValueError(f"not an embedded Reber string: {string!r}")
    return sets


def encode_reber(strings: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local (one-hot) coding of Sec. 5.1: inputs are the symbols but the last, targets the sets of possible
    next symbols (several ones where the grammar allows two). Returns zero-padded ``inputs`` and ``targets``
    (N x T_max x 7, float) and the ``lengths`` (number of predictions per string)."""
    lengths = torch.tensor([len(s) - 1 for s in strings])
    n, t_max = len(strings), int(lengths.max())
    inputs, targets = torch.zeros(n, t_max, 7), torch.zeros(n, t_max, 7)
    index = {c: i for i, c in enumerate(REBER_SYMBOLS)}
    for k, s in enumerate(strings):
        for t, (symbol, nxt) in enumerate(zip(s[:-1], reber_next_sets(s))):
            inputs[k, t, index[symbol]] = 1.0
            targets[k, t, [index[c] for c in nxt]] = 1.0
    return inputs, targets, lengths


def reber_sets(n: int, generator: torch.Generator | None = None, exclude: set[str] | None = None) -> list[str]:
    """``n`` embedded Reber strings (Sec. 5.1: 256 for training; 256 for testing, none of them a training
    string). Strings repeat within a set, as random draws do."""
    exclude = exclude or set()
    out = []
    while len(out) < n:
        s = embedded_reber(generator)
        if s not in exclude:
            out.append(s)
    return out


def reber_correct(outputs: torch.Tensor, targets: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Sec. 5.1's criterion per string: at every step the output units of the possible next symbols are
    the most active ones (each allowed unit above every other unit). Returns a bool tensor (N,)."""
    allowed = targets > 0.5
    lowest_allowed = outputs.masked_fill(~allowed, float("inf")).amin(-1)
    highest_other = outputs.masked_fill(allowed, float("-inf")).amax(-1)
    ok = lowest_allowed > highest_other
    steps = torch.arange(outputs.shape[1])[None, :] < lengths[:, None]
    return (ok | ~steps).all(1)


ADDING_TOLERANCE = 0.04   # Sec. 5.4: a sequence is processed correctly if the absolute error at its end is below


def adding_problem(n: int, T: int, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Experiment 4 (Sec. 5.4), ``n`` sequences of minimal length ``T``.

    - length: a random integer in [T, T + T/10] (both ends included);
    - each element a pair: a value uniform in [-1, 1] and a marker;
    - the first marked pair (X1) is one of the first ten; the second (X2) one of the first T/2 - 1 pairs
      still unmarked; their markers are 1.0;
    - the markers of the first and the final pair are -1 (unless the first pair is marked; then its value,
      "X1", is set to 0);
      all other markers 0;
    - target 0.5 + (X1 + X2) / 4, i.e. X1 + X2 scaled into [0, 1], given at the sequence end only.

    Returns zero-padded ``x`` (n x (T + T//10) x 2), ``target`` (n,) and ``lengths`` (n,).
    """
    if T < 10:
        raise ValueError(f"the adding problem needs T >= 10 (its first marker is one of the first ten pairs), got {T}")
    if n < 1:
        raise ValueError(f"need at least one sequence, got {n}")
    t_max = T + T // 10
    lengths = torch.randint(T, t_max + 1, (n,), generator=generator)
    x = torch.zeros(n, t_max, 2)
    x[:, :, 0] = torch.rand(n, t_max, generator=generator) * 2 - 1
    x[torch.arange(t_max)[None, :].expand(n, -1) >= lengths[:, None]] = 0.0   # padding
    first = torch.randint(0, 10, (n,), generator=generator)
    # one of the first T/2 - 1 still unmarked pairs: draw a rank r, skip the first marker if it comes before
    rank = torch.randint(0, T // 2 - 1, (n,), generator=generator)
    second = rank + (rank >= first).long()
    rows = torch.arange(n)
    x[rows, 0, 1] = -1.0
    x[rows, lengths - 1, 1] = -1.0
    x[rows, first, 1] = 1.0
    x[rows, second, 1] = 1.0
    # the rare case of a marked first pair (by either draw): its value, X1 in the paper's words, is set to zero
    x[rows, 0, 0] = torch.where(x[rows, 0, 1] == 1.0, torch.zeros(n), x[rows, 0, 0])
    target = 0.5 + (x[rows, first, 0] + x[rows, second, 0]) / 4.0
    return x, target, lengths

"""The synthetic stress tests of Bai, Kolter & Koltun (2018), Sec. 4, made as the authors' code makes them
(github.com/locuslab/TCN, ``TCN/adding_problem/utils.py`` and ``TCN/copy_memory/utils.py``), from a seeded
generator so that a split is the same every time it is drawn.

    adding_problem(n, T, g)   x: n x T x 2 (values uniform in [0, 1]; a marker channel with two 1s), y: n (their sum)
    copy_memory(n, T, g)      x, y: n x (T + 20) digits: 10 digits from 1..8, blanks, eleven 9s -> blanks, the 10 digits
    task_splits(task, T, ...) train / valid / test sets of the authors' sizes (50,000 / 1,000 / 1,000 adding;
                              10,000 / 1,000 / 1,000 copy), the test set fixed whatever the run's seed

Pixel MNIST needs no generator: the images are read by ``TaskModel`` in ``model.py`` (normalisation, row-by-row
order, P-MNIST's permutation).
"""

from __future__ import annotations

import torch

# The authors' set sizes: adding_problem/add_test.py (50,000 training, 1,000 test), copy_memory/copymem_test.py
# (10,000 training, 1,000 test). They hold no validation set out; ours is a third, independent draw of 1,000.
SIZES = {"adding": {"train": 50_000, "valid": 1_000, "test": 1_000},
         "copy": {"train": 10_000, "valid": 1_000, "test": 1_000}}
# Seeds of the data: the validation and test sets never change; the training set follows the run's --seed.
TEST_SEED, VALID_SEED, TRAIN_SEED = 20_180_301, 20_180_302, 1_000_000
MEMORY, BLANK, DELIMITER = 10, 0, 9     # copy memory: 10 digits to recall; 0 = blank; 9 = the delimiter (Sec. 4)


def adding_problem(n: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The adding problem (Sec. 4; Hochreiter & Schmidhuber 1997): each input is T steps of depth 2, the first
    channel uniform in [0, 1], the second all zeros except two 1s; the target is the sum of the two marked values.

    As in ``adding_problem/utils.py``, the two marked positions are two distinct steps drawn uniformly from the whole
    sequence (``np.random.choice(T, 2, replace=False)``), not one from each half as in the 1997 paper. Predicting 1
    always gives an MSE of about 1/6 (Sec. 4: "about 0.1767").

    Returns x (n x T x 2, float32) and y (n, float32)."""
    if T < 2:
        raise ValueError(f"the adding problem needs T >= 2 steps, got {T}")
    values = torch.rand(n, T, generator=generator)
    first = torch.randint(0, T, (n,), generator=generator)
    second = torch.randint(0, T - 1, (n,), generator=generator)
    second = second + (second >= first).long()              # uniform over the T - 1 other steps
    markers = torch.zeros(n, T)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return torch.stack([values, markers], dim=2), y


def copy_memory(n: int, T: int, generator: torch.Generator, memory: int = MEMORY) -> tuple[torch.Tensor, torch.Tensor]:
    """The copy memory task (Sec. 4), as ``copy_memory/utils.py`` makes it: an input of length T + 2 * memory is
    ``memory`` digits drawn from 1..8, then T - 1 blanks (0), then memory + 1 copies of the digit 9 (the first 9 is
    the delimiter: "the last 11 entries are filled with the digit 9"); the target is blanks everywhere except the last
    ``memory`` steps, which repeat the digits of the start.

    Returns x and y, both n x (T + 2 * memory), uint8."""
    if T < 1:
        raise ValueError(f"copy memory needs T >= 1 blank steps, got {T}")
    digits = torch.randint(1, 9, (n, memory), generator=generator, dtype=torch.uint8)
    x = torch.cat([digits, torch.full((n, T - 1), BLANK, dtype=torch.uint8),
                   torch.full((n, memory + 1), DELIMITER, dtype=torch.uint8)], dim=1)
    y = torch.cat([torch.full((n, T + memory), BLANK, dtype=torch.uint8), digits], dim=1)
    return x, y


def copy_memory_zero_guess_loss(T: int, memory: int = MEMORY, classes: int = 8) -> float:
    """The cross-entropy per step of the best answer that remembers nothing (Figs. 4: "Guess 0 for all"): a blank
    wherever the target is a blank, and a uniform guess over the digits 1..8 at the last ``memory`` steps:
    memory * log(classes) / (T + 2 memory), 0.0204 nats for T = 1000 (the level of Table 1's recurrent nets)."""
    return memory * float(torch.log(torch.tensor(float(classes)))) / (T + 2 * memory)


def make(task: str, n: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples of ``task`` ("adding" or "copy") with sequence parameter ``T``, drawn from ``seed``."""
    g = torch.Generator().manual_seed(seed)
    if task == "adding":
        return adding_problem(n, T, g)
    if task == "copy":
        return copy_memory(n, T, g)
    raise ValueError(f"task must be adding or copy, got {task!r}")


def task_splits(task: str, T: int, seed: int = 0, sizes: dict[str, int] | None = None
                ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The train / valid / test sets of ``task``: the test and validation sets from fixed seeds (the same for every
    run), the training set from ``seed`` (the run's --seed). ``sizes`` overrides :data:`SIZES` (--quick)."""
    sizes = sizes or SIZES[task]
    seeds = {"train": TRAIN_SEED + seed, "valid": VALID_SEED, "test": TEST_SEED}
    return {split: make(task, sizes[split], T, seeds[split]) for split in ("train", "valid", "test")}

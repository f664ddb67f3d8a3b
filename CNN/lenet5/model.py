"""LeNet-5 as described in LeCun, Bottou, Bengio & Haffner (1998), Section II.B.

    INPUT 32x32 -> C1 6@28x28 -> S2 6@14x14 -> C3 16@10x10 -> S4 16@5x5 -> C5 120 -> F6 84
    -> OUTPUT 10 Euclidean RBF units (Eq. 7)

Every layer up to F6 is followed by the squashing function f(a) = A tanh(S a) with A = 1.7159,
S = 2/3 (Eq. 6 and Appendix A). The module takes MNIST as torchvision's ``ToTensor()`` gives
it (N x 1 x 28 x 28, float in [0, 1]) and does the paper's preprocessing itself: 2-pixel
padding to 32x32 and the scaling that maps background to -0.1 and ink to 1.175 (Sec. III.A).

``LeNet5.forward`` returns the RBF outputs y_i: penalties, *lower* is better; the class is
``argmin``. :func:`map_loss` is the paper's training criterion (Eq. 9).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Appendix A: the squashing function f(a) = A tanh(S a); f(1) = 1, f(-1) = -1.
A, S = 1.7159, 2.0 / 3.0

# Sec. III.A: background (white) -> -0.1, foreground (black) -> 1.175.
BACKGROUND, FOREGROUND = -0.1, 1.175

# Table I: the S2 feature maps (rows 0..5) combined by each C3 feature map (columns 0..15).
C3_TABLE: tuple[tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),            # 3 contiguous maps
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),  # 4 contiguous
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),                                     # 4 discontinuous
    (0, 1, 2, 3, 4, 5),                                                           # all six
)

# Trainable parameters per layer as printed in Sec. II.B.
PAPER_PARAMETERS = {"C1": 156, "S2": 12, "C3": 1516, "S4": 32, "C5": 48120, "F6": 10164, "OUTPUT": 0}

# Sec. II.B, Fig. 3: the RBF parameter vectors are fixed +1/-1 codes, "a stylized image of the
# corresponding character class drawn on a 7x12 bitmap". The paper's own bitmaps are only
# printed as a picture; these are our own stylized digits on the same 7-wide, 12-high grid
# (minimum Hamming distance between two codes: 12 of 84 bits).
DIGIT_BITMAPS = (
    ".......  ..###..  .#...#.  #.....#  #.....#  #.....#  #.....#  #.....#  #.....#  .#...#.  ..###..  .......",
    ".......  ...#...  ..##...  .#.#...  ...#...  ...#...  ...#...  ...#...  ...#...  ...#...  .#####.  .......",
    ".......  ..###..  .#...#.  .....#.  .....#.  ....#..  ...#...  ..#....  .#.....  #......  #######  .......",
    ".......  .#####.  .....#.  ....#..  ...#...  ..###..  .....#.  ......#  ......#  #....#.  .####..  .......",
    ".......  ....#..  ...##..  ..#.#..  .#..#..  #...#..  #######  ....#..  ....#..  ....#..  ....#..  .......",
    ".......  #######  #......  #......  #####..  .....#.  ......#  ......#  ......#  #....#.  .####..  .......",
    ".......  ...##..  ..#....  .#.....  #......  #.###..  ##...#.  #.....#  #.....#  .#...#.  ..###..  .......",
    ".......  #######  ......#  .....#.  ....#..  ...#...  ...#...  ..#....  ..#....  ..#....  ..#....  .......",
    ".......  ..###..  .#...#.  #.....#  .#...#.  ..###..  .#...#.  #.....#  #.....#  .#...#.  ..###..  .......",
    ".......  ..###..  .#...#.  #.....#  #.....#  .#...##  ..###.#  ......#  .....#.  ....#..  ..##...  .......",
)


def rbf_codes() -> torch.Tensor:
    """The 10 x 84 matrix of fixed RBF parameter vectors: '#' -> +1, '.' -> -1 (row-major 12x7)."""
    rows = [bitmap.replace(" ", "") for bitmap in DIGIT_BITMAPS]
    assert all(len(r) == 84 for r in rows)
    return torch.tensor([[1.0 if c == "#" else -1.0 for c in r] for r in rows])


def squash(a: torch.Tensor) -> torch.Tensor:
    """f(a) = A tanh(S a)  (Eq. 6, Appendix A)."""
    return A * torch.tanh(S * a)


def lecun_uniform_(weight: torch.Tensor, fan_in: int) -> None:
    """Appendix A: weights drawn uniformly in [-2.4 / F_i, 2.4 / F_i], F_i the unit's fan-in."""
    bound = 2.4 / fan_in
    nn.init.uniform_(weight, -bound, bound)


class Subsampling(nn.Module):
    """S2 / S4 (Sec. II.B): each unit adds its 2x2 inputs, multiplies by a trainable coefficient,
    adds a trainable bias (one of each per feature map); the squashing follows in the network."""

    def __init__(self, maps: int):
        super().__init__()
        self.coefficient = nn.Parameter(torch.empty(maps))
        self.bias = nn.Parameter(torch.zeros(maps))
        lecun_uniform_(self.coefficient, fan_in=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled_sum = 4.0 * F.avg_pool2d(x, 2)  # sum over the non-overlapping 2x2 field
        return pooled_sum * self.coefficient.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class PartialConv2d(nn.Module):
    """C3 (Sec. II.B, Table I): a 5x5 convolution in which output map k sees only the input maps
    ``table[k]``. Only the connected kernels are parameters (60 kernels x 25 + 16 biases = 1,516);
    they are scattered into a dense, mostly-zero weight for a single ``conv2d`` call."""

    def __init__(self, table: tuple[tuple[int, ...], ...], in_maps: int, kernel_size: int = 5):
        super().__init__()
        self.table, self.in_maps, self.k = table, in_maps, kernel_size
        out_idx = [o for o, ins in enumerate(table) for _ in ins]
        in_idx = [i for ins in table for i in ins]
        self.register_buffer("out_idx", torch.tensor(out_idx), persistent=False)
        self.register_buffer("in_idx", torch.tensor(in_idx), persistent=False)
        self.weight = nn.Parameter(torch.empty(len(in_idx), kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(len(table)))
        with torch.no_grad():  # fan-in differs per output map: 3, 4 or 6 maps x 25
            for c, o in enumerate(out_idx):
                lecun_uniform_(self.weight[c], fan_in=len(table[o]) * kernel_size**2)

    def dense_weight(self) -> torch.Tensor:
        w = self.weight.new_zeros(len(self.table), self.in_maps, self.k, self.k)
        return w.index_put((self.out_idx, self.in_idx), self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), self.bias)


class EuclideanRBF(nn.Module):
    """OUTPUT (Eq. 7): y_i = sum_j (x_j - w_ij)^2, with fixed parameter vectors w_i."""

    def __init__(self, codes: torch.Tensor):
        super().__init__()
        self.register_buffer("centers", codes.clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ||x||^2 - 2 x.w + ||w||^2, computed in float32 for accuracy under autocast.
        x = x.float()
        return (x * x).sum(1, keepdim=True) - 2 * x @ self.centers.t() + (self.centers**2).sum(1)


class LeNet5(nn.Module):
    """LeNet-5 (Sec. II.B, Fig. 2). Input: N x 1 x 28 x 28 in [0, 1]; output: N x 10 RBF penalties."""

    def __init__(self):
        super().__init__()
        self.C1 = nn.Conv2d(1, 6, 5)              # 6@28x28, 156 parameters
        self.S2 = Subsampling(6)                  # 6@14x14, 12
        self.C3 = PartialConv2d(C3_TABLE, 6)      # 16@10x10, 1,516
        self.S4 = Subsampling(16)                 # 16@5x5, 32
        self.C5 = nn.Conv2d(16, 120, 5)           # 120@1x1, 48,120
        self.F6 = nn.Linear(120, 84)              # 84, 10,164
        self.OUTPUT = EuclideanRBF(rbf_codes())   # 10, fixed
        for layer in (self.C1, self.C5, self.F6):
            lecun_uniform_(layer.weight, fan_in=layer.weight[0].numel())
            nn.init.zeros_(layer.bias)

    @staticmethod
    def preprocess(x: torch.Tensor) -> torch.Tensor:
        """[0, 1] ink intensity -> [-0.1, 1.175] (Sec. III.A), 28x28 -> 32x32 on the background."""
        x = BACKGROUND + (FOREGROUND - BACKGROUND) * x
        if x.shape[-1] == 28:
            x = F.pad(x, (2, 2, 2, 2), value=BACKGROUND)
        return x

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every layer's state, for plots of feature maps."""
        h = {"INPUT": self.preprocess(x)}
        h["C1"] = squash(self.C1(h["INPUT"]))
        h["S2"] = squash(self.S2(h["C1"]))
        h["C3"] = squash(self.C3(h["S2"]))
        h["S4"] = squash(self.S4(h["C3"]))
        h["C5"] = squash(self.C5(h["S4"]))
        h["F6"] = squash(self.F6(h["C5"].flatten(1)))   # Eq. 6: x_i = f(a_i)
        h["OUTPUT"] = self.OUTPUT(h["F6"])                # Eq. 7
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)["OUTPUT"]

    @staticmethod
    def predict(y: torch.Tensor) -> torch.Tensor:
        return y.argmin(1)  # the RBF output is a penalty: the smallest wins


def map_loss(y: torch.Tensor, target: torch.Tensor, j: float = 1.0) -> torch.Tensor:
    """Eq. 9: E = mean_p [ y_{D^p} + log(e^{-j} + sum_i e^{-y_i}) ].

    The first term pulls the correct class's penalty down (the MLE criterion, Eq. 8); the second
    pushes the others up, but only while they are below about j ("discriminative" MAP criterion).
    """
    y_correct = y.gather(1, target[:, None]).squeeze(1)
    rubbish = torch.full_like(y[:, :1], -j)
    return (y_correct + torch.logsumexp(torch.cat([rubbish, -y], 1), 1)).mean()


class LeNet5Modern(nn.Module):
    """NOT the paper's network: the common modern reading (ReLU, max-pool, full C3, linear output
    with softmax cross-entropy), kept beside it for comparison. Same input convention."""

    def __init__(self):
        super().__init__()
        self.C1, self.C3, self.C5 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5), nn.Conv2d(16, 120, 5)
        self.F6, self.OUTPUT = nn.Linear(120, 84), nn.Linear(84, 10)

    preprocess = staticmethod(LeNet5.preprocess)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        x = F.max_pool2d(F.relu(self.C1(x)), 2)
        x = F.max_pool2d(F.relu(self.C3(x)), 2)
        x = F.relu(self.C5(x)).flatten(1)
        return self.OUTPUT(F.relu(self.F6(x)))  # logits

    @staticmethod
    def predict(logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(1)


MODELS = {"paper": LeNet5, "modern": LeNet5Modern}
__all__ = ["LeNet5", "LeNet5Modern", "map_loss", "C3_TABLE", "PAPER_PARAMETERS", "rbf_codes", "squash", "MODELS"]

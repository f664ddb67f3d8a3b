"""Compact Transformers of Hassani, Walton, Shah, Abuduweili, Li & Shi (2021), "Escaping the Big Data Paradigm
with Compact Transformers" (arXiv:2104.05704), as their code builds them (SHI-Labs/Compact-Transformers,
``src/cct.py``, ``src/utils/{tokenizer,transformers}.py``).

Three families share one Transformer encoder and differ in how an image becomes tokens and how the tokens
become one vector for the classifier (the paper's Fig. 2 / Sec. 3):

* ViT-Lite (``vit_lite_7_4``): ViT's patch embedding (non-overlapping p x p patches, a linear map each) and a
  class token; a small ViT.
* CVT (``cvt_7_4``): ViT-Lite with **sequence pooling** (SeqPool) instead of the class token: the encoder's
  output tokens x_L (n x d) are averaged with weights learned from the tokens themselves,

      x_L' = softmax(g(x_L)^T)  (1 x n),   z = x_L' x_L  (1 x d),   g a linear map d -> 1.

* CCT (``cct_2_3x2``): CVT with a **convolutional tokenizer**: ``n_conv`` blocks of
  Conv(k x k, no bias) -> ReLU -> MaxPool(3, stride 2), whose output pixels (row-major) are the tokens.

A name reads family_L_kxn (CCT: L encoder layers, n convolutions of k x k) or family_L_p (patch size p).
L fixes the width (Sec. 3's "small and compact models", ``src/cct.py``): 2 and 4 layers: d = 128, 2 heads,
MLP ratio 1; 6 and 7 layers: d = 256, 4 heads, ratio 2; 14 layers: d = 384, 6 heads, ratio 3.

The encoder layer is the authors' code, which differs from both the pre-norm and the post-norm Transformer:
the residual stream is replaced by its LayerNorm between attention and MLP::

    x = x + DropPath(MHSA(LN_pre(x)));   x = LN_1(x);   x = x + DropPath(MLP(x))

A model takes images as torchvision's ``ToTensor()`` gives them (N x 3 x H x W, float in [0, 1]) and applies
the authors' CIFAR-10 normalisation itself; it returns logits.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from common.attention import MultiHeadAttention

# The CIFAR-10 table of the authors' examples/README.md (200 epochs; top-1 is the best of the per-epoch test
# evaluations): name -> (CIFAR-10 top-1 %, parameters as printed, MACs as printed).
TABLE = {
    "vit_lite_7_4": (91.38, 3.717e6, 0.239e9),
    "vit_lite_6_4": (90.94, 3.191e6, 0.205e9),
    "cvt_7_4": (92.43, 3.717e6, 0.236e9),
    "cvt_6_4": (92.58, 3.190e6, 0.202e9),
    "cct_2_3x2": (89.17, 0.284e6, 0.033e9),
    "cct_4_3x2": (91.45, 0.482e6, 0.046e9),
    "cct_6_3x2": (93.56, 3.327e6, 0.241e9),
    "cct_7_3x2": (93.83, 3.853e6, 0.275e9),
    "cct_7_3x1": (94.78, 3.760e6, 0.947e9),
}

# L -> (embedding dimension d, heads, MLP ratio), src/cct.py's cct_2 ... cct_14
WIDTHS = {2: (128, 2, 1), 4: (128, 2, 1), 6: (256, 4, 2), 7: (256, 4, 2), 14: (384, 6, 3)}

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)   # examples/main.py


# --------------------------------------------------------------------------- tokenizers


class ConvTokenizer(nn.Module):
    """CCT's tokenizer: ``n_conv`` blocks of Conv(k x k, stride max(1, k//2 - 1), padding max(1, k//2), no bias)
    -> ReLU -> MaxPool(3, 2, padding 1); 64 channels between blocks, d after the last. Each pixel of the last
    map becomes a token (row-major): a 32 x 32 image gives 8 x 8 = 64 tokens with two blocks."""

    def __init__(self, d: int, k: int = 3, n_conv: int = 2, in_channels: int = 3, hidden: int = 64):
        super().__init__()
        channels = [in_channels] + [hidden] * (n_conv - 1) + [d]
        self.blocks = nn.Sequential(*(nn.Sequential(
            nn.Conv2d(c_in, c_out, k, stride=max(1, k // 2 - 1), padding=max(1, k // 2), bias=False),
            nn.ReLU(),
            nn.MaxPool2d(3, stride=2, padding=1)) for c_in, c_out in zip(channels, channels[1:])))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x).flatten(2).transpose(1, 2)       # (N, d, h, w) -> (N, h*w, d)


class PatchTokenizer(nn.Module):
    """ViT's patch embedding: non-overlapping p x p patches, each mapped linearly to d (a p x p convolution
    of stride p, with bias)."""

    def __init__(self, d: int, p: int = 4, in_channels: int = 3):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, d, p, stride=p)
        nn.init.kaiming_normal_(self.proj.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


# --------------------------------------------------------------------------- the encoder


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016) per example: in training a residual branch is dropped for a whole
    example with probability p and kept, scaled by 1 / (1 - p), otherwise; the identity at evaluation."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


class EncoderLayer(nn.Module):
    """One encoder layer as the authors' ``TransformerEncoderLayer`` computes it (see the module docstring):
    multi-head self-attention on the pre-normalised stream, the stream replaced by its LayerNorm, then the
    MLP d -> d * ratio -> d with GELU."""

    def __init__(self, d: int, heads: int, mlp_ratio: float, *, dropout: float = 0.0,
                 attention_dropout: float = 0.1, drop_path: float = 0.0):
        super().__init__()
        self.pre_norm = nn.LayerNorm(d)
        self.self_attn = MultiHeadAttention(d, heads, qkv_bias=False, attention_dropout=attention_dropout)
        self.attn_dropout = nn.Dropout(dropout)              # on the attention's output projection
        self.norm1 = nn.LayerNorm(d)
        self.linear1, self.linear2 = nn.Linear(d, int(d * mlp_ratio)), nn.Linear(int(d * mlp_ratio), d)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn_dropout(self.self_attn(self.pre_norm(x))))
        x = self.norm1(x)
        return x + self.drop_path(self.dropout2(self.linear2(self.dropout1(F.gelu(self.linear1(x))))))


class SeqPool(nn.Module):
    """Sequence pooling: z = softmax(g(x_L)^T) x_L with g: d -> 1 linear, the softmax over the n tokens.
    ``keep_weights=True`` keeps the last call's weights (batch x n) in ``self.weights`` for plots."""

    def __init__(self, d: int):
        super().__init__()
        self.g = nn.Linear(d, 1)
        self.keep_weights, self.weights = False, None

    def forward(self, x_L: torch.Tensor) -> torch.Tensor:
        weights = self.g(x_L).transpose(1, 2).softmax(dim=-1)          # (N, 1, n)
        if self.keep_weights:
            self.weights = weights.squeeze(1).detach()
        return (weights @ x_L).squeeze(1)                              # (N, d)


# --------------------------------------------------------------------------- the classifier


NAME = re.compile(r"^(?:cct_(?P<L>\d+)_(?P<k>\d+)x(?P<n>\d+)|(?P<family>vit_lite|cvt)_(?P<L2>\d+)_(?P<p>\d+))$")


def parse_name(name: str) -> dict:
    """``cct_{L}_{k}x{n}`` (e.g. cct_2_3x2, cct_7_3x1), ``cvt_{L}_{p}`` or ``vit_lite_{L}_{p}`` (e.g. cvt_7_4), L in
    2, 4, 6, 7, 14 -> the family, L, d, heads, MLP ratio and the tokenizer's k, n or p."""
    match = NAME.match(name)
    layers = int(match["L"] or match["L2"]) if match else None
    if layers not in WIDTHS:
        raise ValueError(f"unknown model {name!r}: expected cct_L_kxn, cvt_L_p or vit_lite_L_p with L in "
                         f"{sorted(WIDTHS)}, e.g. cct_2_3x2, cct_7_3x1, cvt_7_4, vit_lite_7_4")
    d, heads, ratio = WIDTHS[layers]
    family = match["family"] or "cct"
    size = {"family": family, "layers": layers, "d": d, "heads": heads, "mlp_ratio": ratio}
    if family == "cct":
        return {**size, "k": int(match["k"]), "n_conv": int(match["n"])}
    return {**size, "p": int(match["p"])}


class CompactTransformer(nn.Module):
    """A named size (:func:`parse_name`): tokenizer -> (+ class token) -> + positional embedding -> L encoder
    layers -> LayerNorm -> SeqPool or the class token -> linear classifier. Stochastic depth rises linearly from
    0 (first layer) to ``drop_path`` (last), as ``torch.linspace`` in the authors' code. Initialisation as
    theirs: linear layers N(0, 0.02) truncated at +-2, zero biases; the learnable positional embedding
    N(0, 0.2) truncated; convolutions He-normal."""

    def __init__(self, name: str = "cct_2_3x2", num_classes: int = 10, img_size: int = 32, *, dropout: float = 0.0,
                 attention_dropout: float = 0.1, drop_path: float = 0.1,
                 mean: tuple[float, ...] = CIFAR10_MEAN, std: tuple[float, ...] = CIFAR10_STD):
        super().__init__()
        size = parse_name(name)
        self.name, d, layers, seq_pool = name, size["d"], size["layers"], size["family"] != "vit_lite"
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        if size["family"] == "cct":
            self.tokenizer = ConvTokenizer(d, k=size["k"], n_conv=size["n_conv"], in_channels=len(mean))
        else:
            self.tokenizer = PatchTokenizer(d, p=size["p"], in_channels=len(mean))
        with torch.no_grad():
            n = self.tokenizer(torch.zeros(1, len(mean), img_size, img_size)).shape[1]
        self.class_token = None if seq_pool else nn.Parameter(torch.zeros(1, 1, d))
        self.positional_embedding = nn.Parameter(torch.zeros(1, n + (not seq_pool), d))
        self.embedding_dropout = nn.Dropout(dropout)
        rates = torch.linspace(0, drop_path, layers).tolist()
        self.encoder = nn.Sequential(*(EncoderLayer(d, size["heads"], size["mlp_ratio"], dropout=dropout,
                                                    attention_dropout=attention_dropout, drop_path=r) for r in rates))
        self.norm = nn.LayerNorm(d)
        self.pool = SeqPool(d) if seq_pool else None
        self.fc = nn.Linear(d, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.positional_embedding, std=0.2)

    @property
    def tokens(self) -> int:
        """n: the tokens the encoder sees (the class token included)."""
        return self.positional_embedding.shape[1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.tokenizer((images - self.mean) / self.std)                 # (N, n, d)
        if self.class_token is not None:
            x = torch.cat([self.class_token.expand(len(x), -1, -1), x], dim=1)
        x = self.embedding_dropout(x + self.positional_embedding)
        x = self.norm(self.encoder(x))
        return self.fc(self.pool(x) if self.pool is not None else x[:, 0])

"""Scaled dot-product and multi-head attention, written out (Vaswani et al. 2017, Sec. 3.2).

Every Transformer paper in this repository uses these two pieces; what differs between them (where the
layer norms sit, which projections carry biases, how tokens are made and pooled) stays in the paper's
``model.py``.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                                    (Eq. 1)
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
        head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)                                   (Sec. 3.2.2)

with d_k = d_v = d_model / h. The h heads' projections are stored as one d_model x d_model matrix each
(``W_Q``, ``W_K``, ``W_V``): head i uses columns i*d_k .. (i+1)*d_k - 1, so the split into heads is a
reshape. ``tests/test_attention.py`` checks both against ``torch.nn.functional.scaled_dot_product_attention``.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def scaled_dot_product_attention(Q: torch.Tensor, K: torch.Tensor, V: torch.Tensor,
                                 mask: torch.Tensor | None = None,
                                 dropout: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 1 on (..., n_q, d_k), (..., n_k, d_k), (..., n_k, d_v) -> (output (..., n_q, d_v), weights
    (..., n_q, n_k)). ``mask`` (bool, broadcast to (..., n_q, n_k)): True where a query may attend to a key;
    masked keys get weight 0 (Sec. 3.2.3: their logits set to -inf before the softmax). ``dropout`` acts on the
    weights (the "attention dropout" of later papers); the returned weights are those before it."""
    d_k = Q.size(-1)
    logits = Q @ K.transpose(-2, -1) / math.sqrt(d_k)
    if mask is not None:
        logits = logits.masked_fill(~mask, float("-inf"))
    weights = logits.softmax(dim=-1)
    return (dropout(weights) if dropout is not None else weights) @ V, weights


def causal_mask(n: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(n, n) bool, True on and below the diagonal: position i attends to positions <= i only (Sec. 3.2.3)."""
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


class MultiHeadAttention(nn.Module):
    """Sec. 3.2.2: h heads of Eq. 1 in parallel on learned projections, concatenated and projected by W^O.

    ``qkv_bias``: biases on W^Q, W^K, W^V (the 2017 paper's implementations have them; CCT's and ViT's
    timm-style attention does not). W^O always has one. ``attention_dropout`` drops attention weights;
    ``keep_weights=True`` keeps the last call's weights (batch x h x n_q x n_k) in ``self.weights`` for plots."""

    def __init__(self, d_model: int, h: int, *, qkv_bias: bool = True, attention_dropout: float = 0.0):
        super().__init__()
        if d_model % h:
            raise ValueError(f"d_model ({d_model}) must be divisible by the number of heads h ({h})")
        self.d_model, self.h, self.d_k = d_model, h, d_model // h
        self.W_Q = nn.Linear(d_model, d_model, bias=qkv_bias)
        self.W_K = nn.Linear(d_model, d_model, bias=qkv_bias)
        self.W_V = nn.Linear(d_model, d_model, bias=qkv_bias)
        self.W_O = nn.Linear(d_model, d_model)
        self.attention_dropout = nn.Dropout(attention_dropout)
        self.keep_weights, self.weights = False, None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n, d_model) -> (batch, h, n, d_k)."""
        return x.unflatten(-1, (self.h, self.d_k)).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, n_q, d_model) queries attend over (batch, n_k, d_model) keys and values (self-attention when
        ``key`` and ``value`` are None). ``mask``: bool, broadcast to (batch, h, n_q, n_k), True = may attend."""
        key = query if key is None else key
        value = key if value is None else value
        Q, K, V = self.split_heads(self.W_Q(query)), self.split_heads(self.W_K(key)), self.split_heads(self.W_V(value))
        heads, weights = scaled_dot_product_attention(Q, K, V, mask, self.attention_dropout)
        if self.keep_weights:
            self.weights = weights.detach()
        return self.W_O(heads.transpose(1, 2).flatten(-2))          # Concat(head_1, ..., head_h) W^O


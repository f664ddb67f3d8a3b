"""Scaled dot-product and multi-head attention, written out (Vaswani et al. 2017, Sec. 3.2).

Every Transformer paper in this repository uses these two pieces; what differs between them (where the
layer norms sit, which projections carry biases, how tokens are made and pooled) stays in the paper's
``model.py``.

    Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                                    (Eq. 1)
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O,
        head_i = Attention(Q W_i^Q, K W_i^K, V W_i^V)                                   (Sec. 3.2.2)

with d_k = d_v = d_model / h unless other sizes are given (Table 3, rows A-C). The h heads' projections are
stored as one d_model x (h d_k) matrix each (``W_Q``, ``W_K``; ``W_V`` is d_model x (h d_v)): head i uses columns
i*d_k .. (i+1)*d_k - 1, so the split into heads is a reshape. ``tests/test_attention.py`` checks both against
``torch.nn.functional.scaled_dot_product_attention``.

A decoder that produces one position at a time (translation) can keep the keys and values it has projected
(:class:`KeyValueCache`) and attend from the newest position only (:meth:`MultiHeadAttention.forward_incremental`):
the same numbers as a full pass over the prefix, without recomputing it.
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


def causal_mask(n: int, device: torch.device | str | None = None, *, past: int = 0) -> torch.Tensor:
    """(n, past + n) bool, True where query i may attend to key j: j <= past + i (Sec. 3.2.3). ``past``: positions
    before the n queries (kept in a :class:`KeyValueCache`); 0 gives the square mask, True on and below the
    diagonal."""
    return torch.ones(n, past + n, dtype=torch.bool, device=device).tril(diagonal=past)


class MultiHeadAttention(nn.Module):
    """Sec. 3.2.2: h heads of Eq. 1 in parallel on learned projections, concatenated and projected by W^O.

    ``qkv_bias``: biases on W^Q, W^K, W^V (the 2017 paper's implementations have them; CCT's and ViT's
    timm-style attention does not). W^O always has one. ``attention_dropout`` drops attention weights;
    ``keep_weights=True`` keeps the last call's weights (batch x h x n_q x n_k) in ``self.weights`` for plots.
    ``d_k``, ``d_v``: the per-head key and value sizes when they are not d_model / h (Table 3's rows A-C).

    :meth:`forward_incremental` is the same attention for a decoder that produces one position at a time: the
    keys and values of earlier positions come from a :class:`KeyValueCache` instead of being projected again."""

    def __init__(self, d_model: int, h: int, *, qkv_bias: bool = True, attention_dropout: float = 0.0,
                 d_k: int | None = None, d_v: int | None = None):
        super().__init__()
        if (d_k is None or d_v is None) and d_model % h:
            raise ValueError(f"d_model ({d_model}) must be divisible by the number of heads h ({h})")
        # d_k = d_v = d_model / h unless given (Table 3 (B) shrinks d_k alone)
        self.d_model, self.h = d_model, h
        self.d_k, self.d_v = d_k or d_model // h, d_v or d_model // h
        self.W_Q = nn.Linear(d_model, h * self.d_k, bias=qkv_bias)
        self.W_K = nn.Linear(d_model, h * self.d_k, bias=qkv_bias)
        self.W_V = nn.Linear(d_model, h * self.d_v, bias=qkv_bias)
        self.W_O = nn.Linear(h * self.d_v, d_model)
        self.attention_dropout = nn.Dropout(attention_dropout)
        self.keep_weights, self.weights = False, None

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, n, h * d_k) -> (batch, h, n, d_k) (and likewise for d_v)."""
        return x.unflatten(-1, (self.h, -1)).transpose(1, 2)

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

    def forward_incremental(self, query: torch.Tensor, cache: "KeyValueCache", memory: torch.Tensor | None = None,
                            mask: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`forward` for the newest position(s) of a sequence produced step by step (incremental decoding).

        Self-attention (``memory`` None): the queries' own keys and values are appended to ``cache`` and each query
        attends over the cached positions up to its own, which is what the causal mask leaves of a full pass (one
        new position sees them all; several new ones get :func:`causal_mask` shifted by the cached length).
        Encoder-decoder attention (``memory`` given): the memory's keys and values are projected on the first call
        and read from ``cache`` afterwards. ``mask`` as in :meth:`forward` (e.g. the source padding). The result
        equals :meth:`forward` on the whole prefix at the new positions (``tests/test_attention.py``)."""
        if memory is None:
            past, n = len(cache), query.size(1)
            cache.append(self.split_heads(self.W_K(query)), self.split_heads(self.W_V(query)))
            if n > 1:
                causal = causal_mask(n, query.device, past=past)
                mask = causal if mask is None else mask & causal
        elif cache.K is None:
            cache.append(self.split_heads(self.W_K(memory)), self.split_heads(self.W_V(memory)))
        Q = self.split_heads(self.W_Q(query))
        heads, weights = scaled_dot_product_attention(Q, cache.K, cache.V, mask, self.attention_dropout)
        if self.keep_weights:
            self.weights = weights.detach()
        return self.W_O(heads.transpose(1, 2).flatten(-2))


class KeyValueCache:
    """The keys and values (batch, h, n, d_k / d_v) that one attention layer has projected so far, for
    :meth:`MultiHeadAttention.forward_incremental`. ``reorder`` keeps the rows named by an index (beam search: the
    hypotheses that survive a step, and the sentences still being decoded)."""

    def __init__(self):
        self.K: torch.Tensor | None = None
        self.V: torch.Tensor | None = None

    def append(self, K: torch.Tensor, V: torch.Tensor) -> None:
        self.K = K if self.K is None else torch.cat([self.K, K], dim=2)
        self.V = V if self.V is None else torch.cat([self.V, V], dim=2)

    def reorder(self, order: torch.Tensor) -> None:
        if self.K is not None:
            self.K, self.V = self.K.index_select(0, order), self.V.index_select(0, order)

    def __len__(self) -> int:
        """Positions cached."""
        return 0 if self.K is None else self.K.size(2)

"""The Transformer of Vaswani, Shazeer, Parmar, Uszkoreit, Jones, Gomez, Kaiser & Polosukhin (2017), "Attention Is
All You Need" (NeurIPS 2017, arXiv:1706.03762), Sec. 3, written out.

An encoder maps the source tokens to a sequence of vectors (the "memory"); a decoder produces the target one
token at a time, each position reading the positions before it (masked self-attention) and the whole memory
(encoder-decoder attention)::

    source ids -> Embedding * sqrt(d_model) + PE -> Dropout -> N x EncoderLayer                  -> memory
    target ids -> Embedding * sqrt(d_model) + PE -> Dropout -> N x DecoderLayer(memory) -> E^T   -> logits

Every sub-layer (attention or feed-forward) is wrapped as in Sec. 3.1 / 5.4 ("post-norm")::

    x = LayerNorm(x + Dropout(Sublayer(x)))

The paper's notation is kept: ``N`` layers per stack, width ``d_model``, inner feed-forward width ``d_ff``, ``h``
heads of key size ``d_k`` and value size ``d_v``, dropout ``P_drop`` (Sec. 5.4); ``epsilon_ls`` (label smoothing)
is a training setting and lives in train.py. Attention itself (Eq. 1 and Sec. 3.2.2) is
:mod:`common.attention`, shared with the other Transformer papers.

Two details follow fairseq (the code the Multi30k baseline of train.py was trained with, ``transformer_tiny``),
where the paper is silent: the initialisation (embeddings N(0, d_model^-1/2) with a zero padding row, Xavier-uniform
projections with zero biases; W^Q, W^K, W^V with gain 1/sqrt(2) and PyTorch's default biases) and two extra
dropouts that default to 0 (on the attention weights and after the ReLU). One embedding matrix serves the source,
the target and the pre-softmax projection (Sec. 3.4: a shared source-target vocabulary).

Decoding one token at a time can reuse the keys and values of the earlier target positions instead of running the
decoder over the whole prefix again: :meth:`Transformer.decode` with a :class:`DecoderState` does that (the search
itself, greedy and beam, is in translate.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from common.attention import KeyValueCache, MultiHeadAttention, causal_mask

# fairseq's dictionary: four special symbols first. A source sentence ends with EOS; the decoder's first input is
# EOS too (fairseq's convention: it starts from the end-of-sentence symbol, not from BOS).
BOS, PAD, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


# --------------------------------------------------------------------------- Sec. 3.5: positional encoding


def sinusoidal_positions(n: int, d_model: int) -> torch.Tensor:
    """Sec. 3.5, (n, d_model):  PE(pos, 2i) = sin(pos / 10000^(2i / d_model)),  PE(pos, 2i+1) = cos(same)."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / 10000 ** (two_i / d_model)
    pe = torch.zeros(n, d_model, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = angle.sin(), angle.cos()[:, : d_model // 2]
    return pe.float()


# --------------------------------------------------------------------------- Sec. 3.3: feed-forward, Sec. 3.1: layers


class FeedForward(nn.Module):
    """Eq. 2: FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, applied to each position separately (d_model -> d_ff ->
    d_model). ``activation_dropout``: fairseq's dropout after the ReLU (0 in the paper and in transformer_tiny)."""

    def __init__(self, d_model: int, d_ff: int, activation_dropout: float = 0.0):
        super().__init__()
        self.W_1, self.W_2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.activation_dropout = nn.Dropout(activation_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.W_2(self.activation_dropout(F.relu(self.W_1(x))))


class EncoderLayer(nn.Module):
    """Sec. 3.1: multi-head self-attention, then the feed-forward network, each as LayerNorm(x + Dropout(f(x)))."""

    def __init__(self, d_model: int, d_ff: int, h: int, d_k: int, d_v: int, P_drop: float,
                 attention_dropout: float = 0.0, activation_dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, h, d_k=d_k, d_v=d_v, attention_dropout=attention_dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, activation_dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(P_drop)                                      # Sec. 5.4: residual dropout

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.self_attn(x, mask=src_mask)))
        return self.norm2(x + self.dropout(self.ffn(x)))


class DecoderLayer(nn.Module):
    """Sec. 3.1: masked self-attention (position i sees positions <= i, Sec. 3.2.3), encoder-decoder attention
    (queries from the decoder, keys and values from the memory), then the feed-forward network; each sub-layer as
    LayerNorm(x + Dropout(f(x))). With a cache (``self_cache``, ``cross_cache``) ``y`` holds only the newest
    position(s) and the keys and values of the earlier ones come from the cache."""

    def __init__(self, d_model: int, d_ff: int, h: int, d_k: int, d_v: int, P_drop: float,
                 attention_dropout: float = 0.0, activation_dropout: float = 0.0):
        super().__init__()
        self.self_attn = MultiHeadAttention(d_model, h, d_k=d_k, d_v=d_v, attention_dropout=attention_dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, h, d_k=d_k, d_v=d_v, attention_dropout=attention_dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, d_ff, activation_dropout)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(P_drop)

    def forward(self, y: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor, tgt_mask: torch.Tensor | None,
                self_cache: KeyValueCache | None = None, cross_cache: KeyValueCache | None = None) -> torch.Tensor:
        if self_cache is None:
            a = self.self_attn(y, mask=tgt_mask)
            y = self.norm1(y + self.dropout(a))
            c = self.cross_attn(y, memory, mask=src_mask)
        else:
            a = self.self_attn.forward_incremental(y, self_cache)
            y = self.norm1(y + self.dropout(a))
            c = self.cross_attn.forward_incremental(y, cross_cache, memory, mask=src_mask)
        y = self.norm2(y + self.dropout(c))
        return self.norm3(y + self.dropout(self.ffn(y)))


class DecoderState:
    """What an incremental decoder remembers between steps: for each layer the keys and values of the target
    positions produced so far (self-attention) and of the memory (encoder-decoder attention, projected once), and
    the number of positions done (the next position's encoding). ``reorder(order)`` keeps the rows named by
    ``order`` (beam search: the surviving hypotheses; the sentences still being decoded); the memory's keys and
    values can be reordered on their own (:meth:`reorder_memory`), since the hypotheses of one sentence share them."""

    def __init__(self, layers: int):
        self.self_attn = [KeyValueCache() for _ in range(layers)]
        self.cross_attn = [KeyValueCache() for _ in range(layers)]
        self.step = 0

    def reorder_targets(self, order: torch.Tensor) -> None:
        for cache in self.self_attn:
            cache.reorder(order)

    def reorder_memory(self, order: torch.Tensor) -> None:
        for cache in self.cross_attn:
            cache.reorder(order)

    def reorder(self, order: torch.Tensor) -> None:
        self.reorder_targets(order)
        self.reorder_memory(order)


# --------------------------------------------------------------------------- the model


class Transformer(nn.Module):
    """The encoder-decoder of Sec. 3 with one embedding matrix E (vocab_size x d_model) for the source, the target
    and the pre-softmax projection (Sec. 3.4), scaled by sqrt(d_model) on the way in.

    ``positions``: "sinusoidal" (Sec. 3.5) or "learned" (Table 3, row E: a learned embedding of ``max_positions``
    positions). ``padding_idx``: the padding symbol; padded source positions are never attended to.

    Named sizes: :meth:`base`, :meth:`big`, :meth:`table3` (every row of Table 3) and :meth:`tiny` (fairseq's
    ``transformer_tiny``, the Multi30k baseline train.py reproduces)."""

    def __init__(self, vocab_size: int, *, N: int = 6, d_model: int = 512, d_ff: int = 2048, h: int = 8,
                 d_k: int | None = None, d_v: int | None = None, P_drop: float = 0.1, attention_dropout: float = 0.0,
                 activation_dropout: float = 0.0, positions: str = "sinusoidal", max_positions: int = 1024,
                 padding_idx: int = PAD):
        super().__init__()
        if positions not in ("sinusoidal", "learned"):
            raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {positions!r}")
        if (d_k is None or d_v is None) and d_model % h:
            raise ValueError(f"d_model ({d_model}) must be divisible by the number of heads h ({h})")
        d_k, d_v = d_k or d_model // h, d_v or d_model // h
        self.N, self.d_model, self.padding_idx, self.max_positions = N, d_model, padding_idx, max_positions
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=padding_idx)      # E, Sec. 3.4
        if positions == "learned":
            self.position_embedding = nn.Embedding(max_positions, d_model)
        else:
            self.position_embedding = None
            self.register_buffer("PE", sinusoidal_positions(max_positions, d_model), persistent=False)
        self.dropout = nn.Dropout(P_drop)                    # Sec. 5.4: on the sums of embeddings and encodings
        layer = dict(d_model=d_model, d_ff=d_ff, h=h, d_k=d_k, d_v=d_v, P_drop=P_drop,
                     attention_dropout=attention_dropout, activation_dropout=activation_dropout)
        self.encoder = nn.ModuleList(EncoderLayer(**layer) for _ in range(N))
        self.decoder = nn.ModuleList(DecoderLayer(**layer) for _ in range(N))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """fairseq's initialisation: E ~ N(0, d_model^-1/2) with a zero padding row (the scale sqrt(d_model)
        brings the embeddings to unit variance); linear maps Xavier-uniform with zero biases, except W^Q, W^K, W^V:
        gain 1/sqrt(2), default biases."""
        nn.init.normal_(self.embedding.weight, mean=0.0, std=self.d_model ** -0.5)
        with torch.no_grad():
            self.embedding.weight[self.padding_idx].zero_()
        if self.position_embedding is not None:
            nn.init.normal_(self.position_embedding.weight, mean=0.0, std=self.d_model ** -0.5)
        for module in self.modules():
            if isinstance(module, MultiHeadAttention):
                for W in (module.W_Q, module.W_K, module.W_V):
                    nn.init.xavier_uniform_(W.weight, gain=1 / math.sqrt(2))
                nn.init.xavier_uniform_(module.W_O.weight)
                nn.init.zeros_(module.W_O.bias)
            elif isinstance(module, FeedForward):
                for W in (module.W_1, module.W_2):
                    nn.init.xavier_uniform_(W.weight)
                    nn.init.zeros_(W.bias)

    # ----------------------------------------------------------------- pieces

    def embed(self, tokens: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Sec. 3.4-3.5: E[tokens] * sqrt(d_model) + PE[start : start + n], then dropout (batch, n, d_model)."""
        n = tokens.size(1)
        if start + n > self.max_positions:
            raise ValueError(f"a sequence of {start + n} positions is longer than max_positions ({self.max_positions})")
        if self.position_embedding is not None:
            pe = self.position_embedding.weight[start : start + n]
        else:
            pe = self.PE[start : start + n]
        return self.dropout(self.embedding(tokens) * math.sqrt(self.d_model) + pe)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Source ids (batch, S) -> memory (batch, S, d_model) and the source mask (batch, 1, 1, S): True on
        real tokens, False on padding (which no query attends to)."""
        src_mask = (src != self.padding_idx)[:, None, None, :]
        x = self.embed(src)
        for layer in self.encoder:
            x = layer(x, src_mask)
        return x, src_mask

    def decode(self, prev: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor,
               state: DecoderState | None = None) -> torch.Tensor:
        """The decoder's last hidden states (batch, T, d_model) for its inputs ``prev`` (batch, T): the target
        shifted right (EOS first). Without ``state``: all T positions at once, under the causal mask (targets are
        padded on the right, so it also keeps every real position from reading padding). With a
        :class:`DecoderState`: ``prev`` holds only the newest position(s); the keys and values of the earlier ones
        come from ``state``, which is then updated."""
        if state is None:
            y, tgt_mask = self.embed(prev), causal_mask(prev.size(1), prev.device)
            for layer in self.decoder:
                y = layer(y, memory, src_mask, tgt_mask)
            return y
        y = self.embed(prev, start=state.step)
        for layer, self_cache, cross_cache in zip(self.decoder, state.self_attn, state.cross_attn):
            y = layer(y, memory, src_mask, None, self_cache, cross_cache)
        state.step += prev.size(1)
        return y

    def output(self, y: torch.Tensor) -> torch.Tensor:
        """Sec. 3.4: the pre-softmax projection, by the same matrix E: logits = y E^T (batch, T, vocab)."""
        return F.linear(y, self.embedding.weight)

    def init_state(self) -> DecoderState:
        return DecoderState(self.N)

    def forward(self, src: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits (batch, T, vocab) of the target given the source and the shifted target."""
        memory, src_mask = self.encode(src)
        return self.output(self.decode(prev, memory, src_mask))

    # ----------------------------------------------------------------- named sizes

    @classmethod
    def tiny(cls, vocab_size: int, **overrides) -> "Transformer":
        """fairseq's ``transformer_tiny`` with train.py's dropout 0.3 (the Multi30k baseline): N = 4, d_model = 128,
        d_ff = 256, h = 4."""
        return cls(vocab_size, **{"N": 4, "d_model": 128, "d_ff": 256, "h": 4, "P_drop": 0.3, **overrides})

    @classmethod
    def base(cls, vocab_size: int = 37000, **overrides) -> "Transformer":
        """Table 3, base: N = 6, d_model = 512, d_ff = 2048, h = 8, d_k = d_v = 64, P_drop = 0.1 (WMT 2014
        English-German: a shared vocabulary of about 37,000 byte-pair tokens, Sec. 5.1)."""
        return cls(vocab_size, **{**TABLE3["base"]["config"], **overrides})

    @classmethod
    def big(cls, vocab_size: int = 37000, **overrides) -> "Transformer":
        """Table 3, big: N = 6, d_model = 1024, d_ff = 4096, h = 16, d_k = d_v = 64, P_drop = 0.3."""
        return cls(vocab_size, **{**TABLE3["big"]["config"], **overrides})

    @classmethod
    def table3(cls, row: str, vocab_size: int = 37000, **overrides) -> "Transformer":
        """A row of Table 3 ("base", "A1" ... "E", "big"): the base model with that row's changes."""
        if row not in TABLE3:
            raise ValueError(f"unknown Table 3 row {row!r}; known: {', '.join(TABLE3)}")
        return cls(vocab_size, **{**TABLE3[row]["config"], **overrides})


# Table 3 (WMT 2014 English-German, newstest2013): each row's changes to the base model, and the paper's
# perplexity (per word-piece), BLEU and parameters (millions; None where the table leaves the cell empty, i.e. the
# base model's). epsilon_ls is a training setting (train.py's --label-smoothing), kept here to complete the row.
_BASE = {"N": 6, "d_model": 512, "d_ff": 2048, "h": 8, "d_k": 64, "d_v": 64, "P_drop": 0.1}


def _row(ppl: float, bleu: float, params: float | None, epsilon_ls: float = 0.1, **changes) -> dict:
    return {"config": {**_BASE, **changes}, "epsilon_ls": epsilon_ls, "ppl": ppl, "bleu": bleu, "params_M": params}


TABLE3 = {
    "base": _row(4.92, 25.8, 65),
    "A1": _row(5.29, 24.9, None, h=1, d_k=512, d_v=512),
    "A2": _row(5.00, 25.5, None, h=4, d_k=128, d_v=128),
    "A3": _row(4.91, 25.8, None, h=16, d_k=32, d_v=32),
    "A4": _row(5.01, 25.4, None, h=32, d_k=16, d_v=16),
    "B1": _row(5.16, 25.1, 58, d_k=16),
    "B2": _row(5.01, 25.4, 60, d_k=32),
    "C1": _row(6.11, 23.7, 36, N=2),
    "C2": _row(5.19, 25.3, 50, N=4),
    "C3": _row(4.88, 25.5, 80, N=8),
    "C4": _row(5.75, 24.5, 28, d_model=256, d_k=32, d_v=32),
    "C5": _row(4.66, 26.0, 168, d_model=1024, d_k=128, d_v=128),
    "C6": _row(5.12, 25.4, 53, d_ff=1024),
    "C7": _row(4.75, 26.2, 90, d_ff=4096),
    "D1": _row(5.77, 24.6, None, P_drop=0.0),
    "D2": _row(4.95, 25.5, None, P_drop=0.2),
    "D3": _row(4.67, 25.3, None, epsilon_ls=0.0),
    "D4": _row(5.47, 25.7, None, epsilon_ls=0.2),
    "E": _row(4.92, 25.7, None, positions="learned"),
    "big": _row(4.33, 26.4, 213, d_model=1024, d_ff=4096, h=16, P_drop=0.3),
}


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters, the shared embedding counted once."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# Table 3's "params x 10^6" column and our counts. Every weight of a layer is fixed by the row's N, d_model, d_ff,
# h, d_k, d_v; what the paper leaves open is the embedding, V x d_model for a shared matrix of V rows.
#  * With the vocabulary the paper names (Sec. 5.1: a shared source-target vocabulary of about 37,000 tokens, one
#    matrix E for both embeddings and the pre-softmax projection, Sec. 3.4) base has 63.08M parameters, 1.9M
#    short of the table's 65M; the rows of the base family fall 1.2-4.1M short, big is 1.2M over (214.25M; each
#    row's difference is in tests/test_transformer.py and the README).
#  * A shared matrix of V rows with 40,932 <= V <= 41,160 (the bounds come from rows C2 and C6) makes all ten
#    counted rows of the base family (base, B, C) round to the table's figure exactly; V = 37,000 + 4,096 would
#    do, e.g. a learned table of 4,096 positions counted beside the vocabulary, but the paper does not say so.
#  * No single V fits "big" as well: C5 and big share d_model = 1024 (so the same embedding, whatever V is) and
#    differ only in d_ff (2,048 vs 4,096; h x d_k = 1,024 in both), which adds 12 x (2 x 1024 x 2048 + 2048)
#    = 50.36M parameters, while the table's 213 - 168 = 45 (+-1). The big row is 4.4-6.4M below what its own
#    C5 row implies, under any convention that counts a layer's weights.
TABLE3_SHARED_VOCABULARY = 37_000          # Sec. 5.1
TABLE3_FITTED_VOCABULARY = 41_000          # inside [40,932, 41,160]: reproduces base, B and C exactly


def table3_parameters(row: str, vocab_size: int = TABLE3_SHARED_VOCABULARY) -> int:
    """Our parameter count of a Table 3 row with a shared vocabulary of ``vocab_size`` tokens, counted on the
    meta device (no memory is allocated: "big" has 214M parameters)."""
    with torch.device("meta"):
        return count_parameters(Transformer.table3(row, vocab_size))

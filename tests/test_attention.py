"""common.attention: Eq. 1 and multi-head attention against PyTorch's fused kernel."""

import pytest
import torch
import torch.nn.functional as F

from common.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention


@pytest.mark.parametrize("masked", [None, "causal", "random"])
def test_eq1_equals_pytorch(masked):
    g = torch.Generator().manual_seed(0)
    Q, K, V = (torch.randn(3, 4, 7, 16, generator=g) for _ in range(3))
    mask = {None: None, "causal": causal_mask(7),
            "random": torch.rand(3, 1, 7, 7, generator=g) < 0.7}[masked]
    if masked == "random":
        mask[..., 0] = True                               # every query keeps one key (else the row is undefined)
    ours, weights = scaled_dot_product_attention(Q, K, V, mask)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(Q, K, V, attn_mask=mask))
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 7))
    if mask is not None:
        assert (weights[~mask.expand_as(weights)] == 0).all()


def test_multi_head_equals_pytorch_with_the_same_projections():
    torch.manual_seed(0)
    d, h = 32, 4
    ours = MultiHeadAttention(d, h)
    ref = torch.nn.MultiheadAttention(d, h, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([ours.W_Q.weight, ours.W_K.weight, ours.W_V.weight]))
        ref.in_proj_bias.copy_(torch.cat([ours.W_Q.bias, ours.W_K.bias, ours.W_V.bias]))
        ref.out_proj.weight.copy_(ours.W_O.weight)
        ref.out_proj.bias.copy_(ours.W_O.bias)
    x, memory = torch.randn(2, 5, d), torch.randn(2, 9, d)
    torch.testing.assert_close(ours(x), ref(x, x, x, need_weights=False)[0])
    torch.testing.assert_close(ours(x, memory), ref(x, memory, memory, need_weights=False)[0])   # cross-attention
    causal = causal_mask(5)
    torch.testing.assert_close(ours(x, mask=causal), ref(x, x, x, attn_mask=~causal, need_weights=False)[0])


def test_causal_attention_never_reads_a_later_position():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, qkv_bias=False)
    x = torch.randn(1, 6, 16, requires_grad=True)
    mha(x, mask=causal_mask(6))[0, 2].sum().backward()
    assert x.grad[0, 3:].abs().sum() == 0 and x.grad[0, :3].abs().sum() > 0


def test_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)


def test_key_and_value_sizes_other_than_width_over_heads():
    """Table 3 rows A-C: h heads of d_k, d_v chosen freely; the output keeps the width d_model."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, d_k=8, d_v=16).eval()
    assert mha.W_Q.weight.shape == (32, 32) and mha.W_K.weight.shape == (32, 32)
    assert mha.W_V.weight.shape == (64, 32) and mha.W_O.weight.shape == (32, 64)
    x, memory = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    Q = mha.W_Q(x).view(2, 5, 4, 8).transpose(1, 2)
    K = mha.W_K(memory).view(2, 7, 4, 8).transpose(1, 2)
    V = mha.W_V(memory).view(2, 7, 4, 16).transpose(1, 2)
    heads = F.scaled_dot_product_attention(Q, K, V)
    torch.testing.assert_close(mha(x, memory), mha.W_O(heads.transpose(1, 2).reshape(2, 5, 64)))
    MultiHeadAttention(30, 4, d_k=8, d_v=8)                       # no divisibility needed when the sizes are given


def test_causal_mask_with_cached_positions():
    assert causal_mask(2, past=3).tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    assert torch.equal(causal_mask(4), torch.ones(4, 4, dtype=torch.bool).tril())


@pytest.mark.parametrize("chunks", [[1] * 6, [3, 1, 2]])
def test_incremental_attention_equals_the_full_pass(chunks):
    """Self-attention fed a few positions at a time from a KeyValueCache, and cross-attention over a memory
    projected once, give the full causal pass's outputs at every position."""
    from common.attention import KeyValueCache

    torch.manual_seed(0)
    self_attn, cross_attn = MultiHeadAttention(16, 2, d_k=4).eval(), MultiHeadAttention(16, 2).eval()
    x, memory = torch.randn(3, 6, 16), torch.randn(3, 5, 16)
    source_mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)[:, None, None]
    full_self, full_cross = self_attn(x, mask=causal_mask(6)), cross_attn(x, memory, mask=source_mask)
    self_cache, cross_cache, start, outs = KeyValueCache(), KeyValueCache(), 0, []
    for n in chunks:
        piece = x[:, start:start + n]
        outs.append((self_attn.forward_incremental(piece, self_cache),
                     cross_attn.forward_incremental(piece, cross_cache, memory, mask=source_mask)))
        start += n
    assert len(self_cache) == 6 and len(cross_cache) == 5
    torch.testing.assert_close(torch.cat([o[0] for o in outs], 1), full_self)
    torch.testing.assert_close(torch.cat([o[1] for o in outs], 1), full_cross)
    kept = self_cache.V.clone()
    self_cache.reorder(torch.tensor([2, 0]))                      # beam search keeps rows by index
    assert torch.equal(self_cache.V, kept[[2, 0]])

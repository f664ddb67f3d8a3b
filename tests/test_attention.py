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

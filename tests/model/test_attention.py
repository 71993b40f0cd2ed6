import torch
import torch.nn.functional as F

from xformer_cli.model.attention import causal_mask, fused_attention, scaled_dot_product_attention


def random_qkv(seed=0, b=2, h=3, tq=5, tk=7, d=8):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, h, t, d, generator=g, dtype=torch.float64) for t in (tq, tk, tk)]


def test_matches_pytorch_without_mask():
    q, k, v = random_qkv()
    out, weights = scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 3, 5, dtype=torch.float64))


def test_matches_pytorch_with_padding_and_causal_masks():
    q, k, v = random_qkv(tq=6, tk=6)
    padding = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])[:, None, None, :]  # (B, 1, 1, T)
    mask = padding | causal_mask(6)  # True = may not attend
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=~mask))
    assert torch.all(weights.masked_select(mask.expand_as(weights)) == 0)


def test_fused_path_equals_reference():
    q, k, v = random_qkv(seed=1)
    mask = torch.tensor([[False] * 7, [False] * 3 + [True] * 4])[:, None, None, :]
    reference, _ = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(fused_attention(q, k, v, mask), reference)


def test_causal_mask_with_offset():
    # Two new positions after three earlier ones: position 3 sees 0..3, position 4 sees 0..4.
    expected = torch.tensor([[False, False, False, False, True], [False] * 5])
    assert torch.equal(causal_mask(2, offset=3), expected)
    assert torch.equal(causal_mask(3), torch.ones(3, 3, dtype=torch.bool).triu(1))


def test_beams_share_their_sentence_keys_and_values():
    """Query rows b*g .. b*g+g-1 attending over row b of k, v equals repeating k, v g times."""
    from xformer_cli.model.multi_head import MultiHeadAttention

    torch.manual_seed(0)
    attention = MultiHeadAttention(d_model=16, h=4).double().eval()
    g, memory = 3, torch.randn(2, 7, 16, dtype=torch.float64)
    mask = torch.tensor([[False] * 7, [False] * 4 + [True] * 3])[:, None, None, :]  # (B, 1, 1, S)
    query = torch.randn(2 * g, 2, 16, dtype=torch.float64)
    k, v = attention.project_kv(memory)
    for fused in (False, True):
        attention.fused = fused
        shared = attention.attend(query, k, v, mask)
        repeated = attention.attend(query, k.repeat_interleave(g, 0), v.repeat_interleave(g, 0), mask.repeat_interleave(g, 0))
        assert shared.shape == (2 * g, 2, 16)
        torch.testing.assert_close(shared, repeated)

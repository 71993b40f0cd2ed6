import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

from xformer_cli.errors import ConfigError
from xformer_cli.model import build_model
from xformer_cli.model.config import ModelConfig, preset
from xformer_cli.model.transformer import count_parameters

SRC = Path(__file__).parents[2] / "src"


def oracle_config(**overrides) -> ModelConfig:
    values = dict(vocab_size=50, d_model=16, h=4, d_ff=32, n_encoder_layers=2, n_decoder_layers=2, dropout=0.0, max_len=32)
    return ModelConfig(**{**values, **overrides})


def batch(seed=0, pad_id=0):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(4, 50, (3, 7), generator=g)
    src[1, 5:] = pad_id  # source padding
    src[2, 3:] = pad_id
    tgt = torch.randint(4, 50, (3, 6), generator=g)
    return src, tgt


def copy_into_torch_transformer(model, ref: nn.Transformer) -> None:
    """Copy our weights into torch.nn.Transformer (the oracle)."""

    def attn(ours, theirs):
        theirs.in_proj_weight.copy_(torch.cat([ours.q_proj.weight, ours.k_proj.weight, ours.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.q_proj.bias, ours.k_proj.bias, ours.v_proj.bias]))
        theirs.out_proj.load_state_dict(ours.out_proj.state_dict())

    with torch.no_grad():
        for ours, theirs in zip(model.encoder.layers, ref.encoder.layers):
            attn(ours.self_attn, theirs.self_attn)
            theirs.linear1.load_state_dict(ours.ffn.fc1.state_dict())
            theirs.linear2.load_state_dict(ours.ffn.fc2.state_dict())
            theirs.norm1.load_state_dict(ours.self_attn_layer_norm.state_dict())
            theirs.norm2.load_state_dict(ours.final_layer_norm.state_dict())
        for ours, theirs in zip(model.decoder.layers, ref.decoder.layers):
            attn(ours.self_attn, theirs.self_attn)
            attn(ours.encoder_attn, theirs.multihead_attn)
            theirs.linear1.load_state_dict(ours.ffn.fc1.state_dict())
            theirs.linear2.load_state_dict(ours.ffn.fc2.state_dict())
            theirs.norm1.load_state_dict(ours.self_attn_layer_norm.state_dict())
            theirs.norm2.load_state_dict(ours.encoder_attn_layer_norm.state_dict())
            theirs.norm3.load_state_dict(ours.final_layer_norm.state_dict())


@pytest.mark.parametrize("fused", [False, True])
def test_post_norm_model_matches_torch_nn_transformer(fused):
    torch.manual_seed(0)
    config = oracle_config()
    model = build_model(config).double().eval()
    model.set_fused_attention(fused)
    ref = nn.Transformer(
        d_model=16,
        nhead=4,
        num_encoder_layers=2,
        num_decoder_layers=2,
        dim_feedforward=32,
        dropout=0.0,
        batch_first=True,
        dtype=torch.float64,
    ).eval()
    ref.encoder.norm = None  # the paper's post-norm stack has no final norm
    ref.decoder.norm = None
    copy_into_torch_transformer(model, ref)
    src, tgt = batch()
    pad = src == config.pad_id
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)
    with torch.no_grad():
        memory = ref.encoder(model.embed(src, model.embedding), src_key_padding_mask=pad)
        hidden = ref.decoder(model.embed(tgt, model.embedding), memory, tgt_mask=causal, memory_key_padding_mask=pad)
        expected = model.project(hidden)
        ours = model(src, tgt)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_position", ["post", "pre"])
@pytest.mark.parametrize("fused", [False, True])
def test_incremental_decoding_equals_full_decoding_at_every_step(norm_position, fused):
    torch.manual_seed(1)
    model = build_model(oracle_config(norm_position=norm_position)).double().eval()
    model.set_fused_attention(fused)
    src, tgt = batch(seed=1)
    with torch.no_grad():
        memory, src_mask = model.encode(src)
        full = model.decode(tgt, model.init_state(memory, src_mask))  # (B, T, d)
        state = model.init_state(memory, src_mask)
        steps = [model.decode(tgt[:, t : t + 1], state, incremental=True) for t in range(tgt.size(1))]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-10, rtol=1e-10)
    assert state.offset == tgt.size(1)
    assert state.self_attn[0]["k"].shape == (3, 4, 6, 4)  # (B, h, T, d_k): one new key per step


def test_padding_never_changes_outputs_at_real_positions():
    torch.manual_seed(2)
    model = build_model(oracle_config()).double().eval()
    src = torch.tensor([[5, 6, 7, 3]])
    tgt = torch.tensor([[2, 8, 9]])
    padded_src = torch.tensor([[5, 6, 7, 3, 0, 0, 0]])
    padded_tgt = torch.tensor([[2, 8, 9, 0, 0]])
    with torch.no_grad():
        alone = model(src, tgt)
        padded = model(padded_src, padded_tgt)
        # In a batch with a longer neighbour, too.
        neighbour = torch.tensor([[10, 11, 12, 13, 14, 15, 3]])
        batched = model(torch.cat([padded_src, neighbour]), torch.cat([padded_tgt, torch.tensor([[2, 4, 5, 6, 7]])]))
    torch.testing.assert_close(padded[:, :3], alone, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(batched[:1, :3], alone, atol=1e-10, rtol=1e-10)


def test_tied_embeddings_are_one_matrix_and_untied_are_three():
    tied = build_model(oracle_config())
    untied = build_model(oracle_config(tie_embeddings=False))
    assert [k for k in tied.state_dict() if "embedding" in k or "projection" in k] == ["embedding.weight"]
    assert {"embedding.weight", "tgt_embedding.weight", "output_projection.weight"} <= set(untied.state_dict())
    assert count_parameters(untied) - count_parameters(tied) == 2 * 50 * 16


def test_presets_have_the_papers_sizes():
    base = preset("base")
    assert (base.d_model, base.d_ff, base.h, base.n_encoder_layers, base.n_decoder_layers) == (512, 2048, 8, 6, 6)
    small = preset("small")
    assert (small.d_model, small.d_ff, small.h, small.n_encoder_layers) == (256, 1024, 4, 3)
    assert preset("big").d_model == 1024
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        preset("huge")
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(d_model=30, h=4)


def test_embeddings_are_scaled_by_sqrt_d_model():
    torch.manual_seed(3)
    model = build_model(oracle_config()).eval()
    ids = torch.tensor([[7]])
    expected = model.embedding.weight[7] * 4.0 + model.positional.table[0]  # sqrt(16) = 4
    torch.testing.assert_close(model.embed(ids, model.embedding)[0, 0], expected)


def test_the_model_does_not_use_torch_transformer_modules():
    found = subprocess.run(
        ["grep", "-rn", r"nn.Transformer\b\|nn.MultiheadAttention\|nn.TransformerEncoderLayer", str(SRC)], capture_output=True, text=True
    )
    assert found.stdout == ""

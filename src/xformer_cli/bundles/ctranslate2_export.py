"""`xformer export --to ctranslate2`: a bundle written as a CTranslate2 model, for deployment.

CTranslate2's `TransformerSpec` holds the same layers as `model/`: fused query/key/value
projections, LayerNorm before or after each sub-layer, ReLU, SiLU or GELU, embeddings scaled by
sqrt(d_model). Two things are ours and travel explicitly: the sinusoid table (CTranslate2's
built-in one is laid out otherwise, so the model's own table is stored) and the EOS that ends
every source. The tokenizer files are copied beside the model, and the vocabulary is registered
as ids to pieces, so a caller tokenizes with them and hands CTranslate2 the pieces.
`ctranslate2` is an optional dependency (`pip install 'xformer-cli[ctranslate2]'`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from xformer_cli.bundles.bundle import Bundle
from xformer_cli.errors import ConfigError

QUANTIZATIONS = ("float32", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16", "bfloat16")


def export_ctranslate2(bundle: Bundle, out: str | Path, quantization: str = "float32") -> Path:
    """Write `bundle` as a CTranslate2 model folder `out` (written beside it, then renamed into
    place) with its weights in `quantization`; returns `out`."""
    try:
        import ctranslate2  # noqa: F401  the converter specs below need it
    except ImportError:
        raise ConfigError("export to CTranslate2 needs the ctranslate2 package: pip install 'xformer-cli[ctranslate2]'") from None
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization {quantization!r} (choose from {', '.join(QUANTIZATIONS)})")
    out = Path(out)
    if out.exists():
        raise ConfigError(f"{out} exists: choose a new folder")
    spec = transformer_spec(bundle)
    spec.validate()
    spec.optimize(quantization=quantization)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        tmp.mkdir()
        spec.save(str(tmp))
        for name, data in bundle.tokenizer.files().items():
            (tmp / name).write_bytes(data)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def transformer_spec(bundle: Bundle):
    """The CTranslate2 `TransformerSpec` of the bundle's model, weights in float32."""
    from ctranslate2.specs import common_spec
    from ctranslate2.specs import transformer_spec as ct2

    model, c = bundle.model, bundle.model.config
    if c.norm != "layernorm":
        raise ConfigError(f"CTranslate2 has no {c.norm} layer: only LayerNorm models export")
    activation = {"relu": common_spec.Activation.RELU, "silu": common_spec.Activation.SWISH, "gelu": common_spec.Activation.GELU}
    pre_norm = c.norm_position == "pre"
    spec = ct2.TransformerSpec.from_config(
        (c.n_encoder_layers, c.n_decoder_layers), c.h, pre_norm=pre_norm, activation=activation[c.activation]
    )
    w = {name: tensor.detach().float().numpy() for name, tensor in model.state_dict().items()}
    pieces = bundle.tokenizer.pieces(range(bundle.tokenizer.vocab_size))
    spec.config.layer_norm_epsilon = 1e-5  # torch.nn.LayerNorm's
    spec.config.add_source_eos = True  # every source ends with EOS
    spec.config.unk_token, spec.config.bos_token, spec.config.eos_token = (pieces[i] for i in (c.unk_id, c.bos_id, c.eos_id))
    spec.config.decoder_start_token = pieces[c.bos_id]
    table = model.positional.table.float().numpy()  # (max_len, d_model), the model's own layout
    target = w["tgt_embedding.weight"] if not c.tie_embeddings else w["embedding.weight"]
    for side, embedding in ((spec.encoder, w["embedding.weight"]), (spec.decoder, target)):
        for embeddings in side.embeddings if isinstance(side.embeddings, list) else [side.embeddings]:
            embeddings.weight = embedding
        side.position_encodings.encodings = table
    for side, name in ((spec.encoder, "encoder"), (spec.decoder, "decoder")):
        if pre_norm:
            _norm(side.layer_norm, w, f"{name}.layer_norm")
        for i, layer in enumerate(side.layer):
            _layer(layer, w, f"{name}.layers.{i}", decoder=name == "decoder")
    spec.decoder.projection.weight = model.output_weight.detach().float().numpy()
    bias = w.get("output_bias")
    spec.decoder.projection.bias = bias if bias is not None else np.zeros(c.vocab_size, dtype=np.float32)
    spec.register_source_vocabulary(pieces)
    spec.register_target_vocabulary(pieces)
    return spec


def _layer(layer, w: dict[str, np.ndarray], p: str, decoder: bool) -> None:
    """One encoder or decoder layer's weights into its spec."""
    _linear(layer.self_attention.linear[0], w, f"{p}.self_attn.q_proj", f"{p}.self_attn.k_proj", f"{p}.self_attn.v_proj")
    _linear(layer.self_attention.linear[1], w, f"{p}.self_attn.out_proj")
    _norm(layer.self_attention.layer_norm, w, f"{p}.self_attn_layer_norm")
    if decoder:
        _linear(layer.attention.linear[0], w, f"{p}.encoder_attn.q_proj")
        _linear(layer.attention.linear[1], w, f"{p}.encoder_attn.k_proj", f"{p}.encoder_attn.v_proj")
        _linear(layer.attention.linear[2], w, f"{p}.encoder_attn.out_proj")
        _norm(layer.attention.layer_norm, w, f"{p}.encoder_attn_layer_norm")
    _linear(layer.ffn.linear_0, w, f"{p}.ffn.fc1")
    _linear(layer.ffn.linear_1, w, f"{p}.ffn.fc2")
    _norm(layer.ffn.layer_norm, w, f"{p}.final_layer_norm")


def _linear(spec, w: dict[str, np.ndarray], *names: str) -> None:
    """A CTranslate2 linear layer from one or more of ours, stacked along the output axis."""
    spec.weight = np.concatenate([w[f"{n}.weight"] for n in names])
    spec.bias = np.concatenate([w[f"{n}.bias"] for n in names])


def _norm(spec, w: dict[str, np.ndarray], name: str) -> None:
    spec.gamma = w[f"{name}.weight"]
    spec.beta = w[f"{name}.bias"]

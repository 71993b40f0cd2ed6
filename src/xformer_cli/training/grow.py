"""A trained model grown into a deeper or shallower one, to fine-tune from (`train --init-from`).

A beam step pays for every decoder layer at every piece and the encoder once per sentence, so
capacity is cheapest in the encoder (Kasai et al. 2021, "Deep Encoder, Shallow Decoder"). Rather
than train such a shape from scratch, the trained model is grown: a deeper stack starts as the
trained stack repeated on top of itself (progressive stacking, Gong et al. 2019: 3 -> 8 layers is
0 1 2 0 1 2 0 1), a shallower one keeps layers spread evenly over the trained stack, its first
and last among them (3 -> 2 keeps 0 and 2); embeddings, final norms and every other weight are
the trained ones.

Measured on the shipped model (bench/quality/grow_shapes.py: validation loss on 300 mixed
development sentences, before any fine-tuning; the shipped model 1.93): the encoder stacked to 6 layers 2.05 (interleaved, 0 0 1 1
2 2: 2.04); the decoder cut to 2 layers 2.47 keeping 0 and 2, 2.78 keeping 0 and 1, 4.93 keeping
1 and 2; cut to 1 layer 7.15 (the last) or 7.34 (the first), near a model that knows nothing
(ln 8001 = 8.99): a one-layer decoder has to be trained again.
"""

from __future__ import annotations

from dataclasses import replace

from torch import Tensor

from xformer_cli.model.config import ModelConfig


def layer_sources(trained: int, wanted: int) -> list[int]:
    """The trained layer each of `wanted` layers starts as: the trained stack repeated upward;
    for fewer, layers spread evenly from the first to the last (one layer: the last)."""
    if wanted >= trained:
        return [i % trained for i in range(wanted)]
    if wanted == 1:
        return [trained - 1]
    return [round(i * (trained - 1) / (wanted - 1)) for i in range(wanted)]


def grown_config(config: ModelConfig, encoder_layers: int, decoder_layers: int) -> ModelConfig:
    """`config` with the given layer counts (0 keeps a count)."""
    return replace(
        config, n_encoder_layers=encoder_layers or config.n_encoder_layers, n_decoder_layers=decoder_layers or config.n_decoder_layers
    )


def grown_state(state: dict[str, Tensor], trained: ModelConfig, grown: ModelConfig) -> dict[str, Tensor]:
    """The weights of the grown model: each layer's from its source layer, everything else as trained."""
    return layers_from(
        state,
        {
            "encoder": layer_sources(trained.n_encoder_layers, grown.n_encoder_layers),
            "decoder": layer_sources(trained.n_decoder_layers, grown.n_decoder_layers),
        },
    )


def layers_from(state: dict[str, Tensor], sources: dict[str, list[int]]) -> dict[str, Tensor]:
    """`state` with the layers of each stack ("encoder", "decoder") taken from the trained layers
    `sources[stack]` lists, one per new layer (copies, so that repeated layers train apart)."""
    out = {name: t for name, t in state.items() if not name.startswith(("encoder.layers.", "decoder.layers."))}
    for stack, chosen in sources.items():
        for index, source in enumerate(chosen):
            prefix = f"{stack}.layers.{source}."
            out |= {f"{stack}.layers.{index}.{name[len(prefix) :]}": t.clone() for name, t in state.items() if name.startswith(prefix)}
    return out


def describe(trained: ModelConfig, grown: ModelConfig) -> str:
    """How the model grew, for the training log: "encoder 3 -> 6 layers (from trained layers 0 1 2 0 1 2), decoder 3 -> 2
    layers (from trained layers 0 2)"."""
    parts = []
    for stack, old, new in (
        ("encoder", trained.n_encoder_layers, grown.n_encoder_layers),
        ("decoder", trained.n_decoder_layers, grown.n_decoder_layers),
    ):
        sources = " ".join(map(str, layer_sources(old, new)))
        parts.append(f"{stack} {old} -> {new} layers" + ("" if old == new else f" (from trained layers {sources})"))
    return ", ".join(parts)

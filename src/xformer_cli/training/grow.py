"""A trained model grown into a deeper or shallower one, to fine-tune from (`train --init-from`).

A beam step pays for every decoder layer at every piece and the encoder once per sentence, so
capacity is cheapest in the encoder (Kasai et al. 2021, "Deep Encoder, Shallow Decoder"). Rather
than train such a shape from scratch, the trained model is grown: a deeper stack starts as the
trained stack repeated on top of itself (progressive stacking, Gong et al. 2019: 3 -> 8 layers is
0 1 2 0 1 2 0 1), a shallower one keeps layers spread evenly over the trained stack, its first
and last among them (3 -> 2 keeps 0 and 2); embeddings, final norms and every other weight are
the trained ones.

With `identity` (pre-norm models only), each added layer also has its output projections zeroed
(attention's out_proj, the feed-forward's fc2): a pre-norm layer computes x + Sublayer(norm(x)),
so it then passes its input on unchanged and the grown model starts as exactly the trained one,
with room to learn (Net2Net's function-preserving growth, Chen et al. 2016). Its other weights are
the copies above, so the layer does not start from nothing once its projections move.

Measured on the shipped model (bench/quality/grow_shapes.py: validation loss on 300 mixed
development sentences, before any fine-tuning; the shipped model 1.93): the encoder stacked to 6 layers 2.05 (interleaved, 0 0 1 1
2 2: 2.04); the decoder cut to 2 layers 2.47 keeping 0 and 2, 2.78 keeping 0 and 1, 4.93 keeping
1 and 2; cut to 1 layer 7.15 (the last) or 7.34 (the first), near a model that knows nothing
(ln 8001 = 8.99): a one-layer decoder has to be trained again.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from xformer_cli.errors import ConfigError
from xformer_cli.model.config import ModelConfig

OUTPUT_PROJECTIONS = ("self_attn.out_proj.", "encoder_attn.out_proj.", "ffn.fc2.")  # what a layer adds to its input


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


def grown_state(state: dict[str, Tensor], trained: ModelConfig, grown: ModelConfig, identity: bool = False) -> dict[str, Tensor]:
    """The weights of the grown model: each layer's from its source layer, everything else as
    trained; with `identity`, the added layers' output projections zero (see the module docstring)."""
    if identity and trained.norm_position != "pre":
        raise ConfigError("init_new_layers = identity needs a pre-norm model: a post-norm layer renormalizes what it passes on")
    out = layers_from(
        state,
        {
            "encoder": layer_sources(trained.n_encoder_layers, grown.n_encoder_layers),
            "decoder": layer_sources(trained.n_decoder_layers, grown.n_decoder_layers),
        },
    )
    if identity:
        first_added = {"encoder": trained.n_encoder_layers, "decoder": trained.n_decoder_layers}
        out = {name: torch.zeros_like(t) if is_added_projection(name, first_added) else t for name, t in out.items()}
    return out


def is_added_projection(name: str, first_added: dict[str, int]) -> bool:
    """True for an output projection's weight or bias ("encoder.layers.4.ffn.fc2.bias") in a layer at
    or above `first_added[stack]`."""
    parts = name.split(".", 3)  # stack, "layers", index, the rest
    if len(parts) < 4 or parts[0] not in first_added or parts[1] != "layers":
        return False
    return int(parts[2]) >= first_added[parts[0]] and parts[3].startswith(OUTPUT_PROJECTIONS)


def layers_from(state: dict[str, Tensor], sources: dict[str, list[int]]) -> dict[str, Tensor]:
    """`state` with the layers of each stack ("encoder", "decoder") taken from the trained layers
    `sources[stack]` lists, one per new layer (copies, so that repeated layers train apart)."""
    out = {name: t for name, t in state.items() if not name.startswith(("encoder.layers.", "decoder.layers."))}
    for stack, chosen in sources.items():
        for index, source in enumerate(chosen):
            prefix = f"{stack}.layers.{source}."
            out |= {f"{stack}.layers.{index}.{name[len(prefix) :]}": t.clone() for name, t in state.items() if name.startswith(prefix)}
    return out


def describe(trained: ModelConfig, grown: ModelConfig, identity: bool = False) -> str:
    """How the model grew, for the training log: "encoder 3 -> 6 layers (from trained layers 0 1 2 0 1 2), decoder 3 -> 2
    layers (from trained layers 0 2)", and with `identity` ", added layers start as identities"."""
    parts = []
    for stack, old, new in (
        ("encoder", trained.n_encoder_layers, grown.n_encoder_layers),
        ("decoder", trained.n_decoder_layers, grown.n_decoder_layers),
    ):
        sources = " ".join(map(str, layer_sources(old, new)))
        parts.append(f"{stack} {old} -> {new} layers" + ("" if old == new else f" (from trained layers {sources})"))
    return ", ".join(parts) + (", added layers start as identities (output projections zero)" if identity else "")

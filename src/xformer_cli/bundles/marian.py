"""Import a Marian model (OPUS-MT, in the `transformers` MarianMT format) as an xformer bundle.

A MarianMT model is the paper's Transformer up to a handful of choices, each of which the
from-scratch model has as an option (config.py):

    Marian (transformers)                  xformer ModelConfig
    post-norm, no final norm               norm_position = "post"
    activation_function "swish"            activation = "silu"
    final_logits_bias                      output_bias = True
    sines, then cosines                    positions = "halves"
    decoder_start_token_id = pad           bos_id = pad_id
    max_position_embeddings                max_len
    source.spm + target.spm + vocab.json   SourceTargetTokenizer (tokenizer.py)

Checkpoints come as `transformers` has saved them over the years: float16 or float32, with or
without the stored sinusoid tables (checked against ours within the rounding of their dtype, then
dropped: xformer computes the table, as Marian itself does), with or without `lm_head.weight`,
in safetensors or in torch's old or new `pytorch_model.bin`. The special ids come from
`vocab.json` (the tc-big models put `</s>` and `<unk>` elsewhere than 0 and 1) and must agree
with config.json.

The bundle's decoding defaults are the model's own (generation_config.json, else the generation
keys that older config.json files hold, then transformers' defaults): beam size, length cap,
banned ids, length penalty, stopping rule, renormalization, and no sentence splitting or span
protection, so that `xformer translate` gives what `generate` gives on whole sentences.

Only JSON, SentencePiece and safetensors are read; a repo with only `pytorch_model.bin` is read
with `torch.load(weights_only=True)`, which unpickles tensors and plain containers and refuses
anything else. Whatever does not fit (another architecture, separate vocabularies, a tensor
missing, unexpected or mis-shaped) is a one-line ModelLoadError naming it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from xformer_cli.bundles.bundle import Bundle, resolve, save_bundle
from xformer_cli.bundles.card import CardInfo, metadata_yaml
from xformer_cli.bundles.language_codes import model_languages
from xformer_cli.config import DecodeConfig
from xformer_cli.errors import ConfigError, ModelLoadError
from xformer_cli.model.config import ModelConfig
from xformer_cli.model.positional import sinusoidal_table
from xformer_cli.model.transformer import Transformer, build_model, count_parameters
from xformer_cli.text.tokenizer import SOURCE_SPM, TARGET_SPM, VOCAB_FILE, SourceTargetTokenizer

ACTIVATIONS = {"swish": "silu", "silu": "silu", "relu": "relu", "gelu": "gelu"}  # transformers' name -> ours
HUB_FILES = [
    "config.json",
    "generation_config.json",
    "tokenizer_config.json",
    "README.md",
    SOURCE_SPM,
    TARGET_SPM,
    VOCAB_FILE,
    "model.safetensors",
    "pytorch_model.bin",
]  # a Marian repo also holds TensorFlow, Flax and Rust weights: skip them


def import_marian(source: str, out: str | Path, revision: str | None = None) -> Path:
    """Write the Marian model at `source` (a folder or a Hub id) as an xformer bundle in `out`."""
    folder = resolve(source, revision, allow_patterns=HUB_FILES)
    config = read_json(folder / "config.json", required=True)
    tokenizer = SourceTargetTokenizer.load(folder)
    check_vocabulary(tokenizer, config, folder)
    model_config = marian_model_config(config, tokenizer.unk_id)
    model = build_model(model_config, initialize=False)
    model.load_state_dict(marian_state_dict(read_weights(folder), model, config), strict=True)
    model.eval()
    original_card = (folder / "README.md").read_text(encoding="utf-8") if (folder / "README.md").exists() else ""
    src_lang, tgt_lang = model_languages(source, read_json(folder / "tokenizer_config.json"), original_card)
    bundle = Bundle(
        model=model,
        tokenizer=tokenizer,
        decode=decoding_defaults(config, read_json(folder / "generation_config.json"), model_config),
        src_lang=src_lang,
        tgt_lang=tgt_lang,
        extra={"imported_from": {"source": source, "revision": revision, "format": "marian"}},
    )
    return save_bundle(bundle, out, card=import_card(source, model, bundle, original_card))


def read_json(path: Path, required: bool = False) -> dict[str, Any]:
    """A JSON object from `path`; {} for a missing optional file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise ModelLoadError(f"not a Marian model: {path.parent} has no {path.name}") from None
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"corrupt {path.name} in {path.parent}: {err}") from None
    if not isinstance(value, dict):
        raise ModelLoadError(f"corrupt {path.name} in {path.parent}: expected a JSON object")
    return value


def marian_model_config(config: dict[str, Any], unk_id: int) -> ModelConfig:
    """The xformer ModelConfig of a transformers MarianConfig (as found in config.json); `unk_id`
    is `<unk>`'s id in the vocabulary (config.json does not hold it)."""
    if config.get("model_type") != "marian":
        raise ModelLoadError(f"not a Marian model: config.json says model_type {config.get('model_type')!r}, expected 'marian'")
    if not config.get("share_encoder_decoder_embeddings", True):
        raise ModelLoadError(
            "unsupported Marian model: separate source and target vocabularies (share_encoder_decoder_embeddings is false)"
        )
    if config.get("decoder_vocab_size") not in (None, config.get("vocab_size")):
        raise ModelLoadError(
            f"unsupported Marian model: decoder_vocab_size {config['decoder_vocab_size']} differs from vocab_size "
            f"{config.get('vocab_size')}"
        )
    for enc, dec in (("encoder_attention_heads", "decoder_attention_heads"), ("encoder_ffn_dim", "decoder_ffn_dim")):
        if config.get(enc) != config.get(dec):
            raise ModelLoadError(f"unsupported Marian model: {enc} {config.get(enc)} differs from {dec} {config.get(dec)}")
    if not config.get("scale_embedding", False):
        raise ModelLoadError("unsupported Marian model: scale_embedding is false (xformer scales embeddings by sqrt(d_model))")
    if config.get("normalize_before", False) or config.get("normalize_embedding", False):
        raise ModelLoadError("unsupported Marian model: pre-norm or a normalized embedding")
    activation = ACTIVATIONS.get(str(config.get("activation_function", "swish")))
    if activation is None:
        raise ModelLoadError(
            f"unsupported Marian model: activation_function {config['activation_function']!r} (xformer has {', '.join(ACTIVATIONS)})"
        )
    try:
        pad = int(config["pad_token_id"])
        return ModelConfig(
            vocab_size=int(config["vocab_size"]),
            d_model=int(config["d_model"]),
            h=int(config["encoder_attention_heads"]),
            d_ff=int(config["encoder_ffn_dim"]),
            n_encoder_layers=int(config["encoder_layers"]),
            n_decoder_layers=int(config["decoder_layers"]),
            dropout=float(config.get("dropout", 0.1)),
            attention_dropout=float(config.get("attention_dropout", 0.0)),
            activation_dropout=float(config.get("activation_dropout", 0.0)),
            max_len=int(config["max_position_embeddings"]),
            norm="layernorm",
            norm_position="post",
            tie_embeddings=bool(config.get("tie_word_embeddings", True)),
            activation=activation,
            positions="halves",
            output_bias=True,
            pad_id=pad,
            unk_id=unk_id,
            bos_id=int(config.get("decoder_start_token_id", pad)),  # Marian's decoder starts from <pad>
            eos_id=int(config["eos_token_id"]),
        )
    except KeyError as err:
        raise ModelLoadError(f"corrupt Marian config.json: no {err.args[0]}") from None
    except (TypeError, ValueError) as err:
        raise ModelLoadError(f"corrupt Marian config.json: {err}") from None


def check_vocabulary(tokenizer: SourceTargetTokenizer, config: dict[str, Any], folder: Path) -> None:
    """The vocabulary and the model's special ids must agree."""
    if (folder / "target_vocab.json").exists():
        raise ModelLoadError("unsupported Marian model: separate source and target vocabularies (target_vocab.json)")
    if tokenizer.vocab_size != config["vocab_size"]:
        raise ModelLoadError(f"{VOCAB_FILE} has {tokenizer.vocab_size} pieces, config.json's vocab_size is {config['vocab_size']}")
    for piece, key in ((tokenizer.EOS, "eos_token_id"), (tokenizer.PAD, "pad_token_id"), (tokenizer.UNK, "unk_token_id")):
        if key in config and tokenizer.vocab[piece] != config[key]:
            raise ModelLoadError(f"{VOCAB_FILE} gives {piece} id {tokenizer.vocab[piece]}, config.json's {key} is {config[key]}")


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors: model.safetensors where there is one, else pytorch_model.bin read
    with torch.load(weights_only=True), never an unrestricted unpickle."""
    safetensors_path, bin_path = folder / "model.safetensors", folder / "pytorch_model.bin"
    if safetensors_path.exists():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(safetensors_path))
        except (SafetensorError, OSError, ValueError) as err:
            raise ModelLoadError(f"corrupt weights file {safetensors_path}: {err}") from None
    if bin_path.exists():
        try:
            state = torch.load(bin_path, map_location="cpu", weights_only=True)
        except Exception as err:  # an unpickling refusal, a truncated zip, ...
            raise ModelLoadError(
                f"cannot read {bin_path} as plain tensors: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
            ) from None
        if not isinstance(state, dict) or not all(isinstance(t, torch.Tensor) for t in state.values()):
            raise ModelLoadError(f"unexpected contents in {bin_path}: expected a dict of tensors")
        return state
    raise ModelLoadError(f"no weights in {folder}: neither model.safetensors nor pytorch_model.bin")


# transformers' names inside a layer -> ours (the attention and norm names are the same)
_LAYER = re.compile(r"(encoder|decoder)\.layers\.(\d+)\.(.+)")


def marian_state_dict(weights: dict[str, torch.Tensor], model: Transformer, config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Marian's tensors renamed to xformer's, checked for shape; positional tables are checked
    against the "halves" sinusoids and dropped, and tied copies against the shared embedding."""
    weights = {name.removeprefix("model."): t for name, t in weights.items()}
    expected = model.state_dict()
    c = model.config
    shared = weights.get("shared.weight", weights.get("encoder.embed_tokens.weight"))
    if shared is None:
        raise ModelLoadError("Marian weights: tensor 'model.shared.weight' is missing")
    consumed = {"shared.weight", "final_logits_bias"}
    tied_copies: set[str] = set()  # must equal the shared embedding
    if c.tie_embeddings:
        state: dict[str, torch.Tensor] = {"embedding.weight": shared}
        tied_copies |= {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}
    else:  # three matrices: source embedding, target embedding, output projection
        if "lm_head.weight" not in weights:
            raise ModelLoadError("Marian weights: tensor 'lm_head.weight' is missing (tie_word_embeddings is false)")
        state = {
            "embedding.weight": weights.get("encoder.embed_tokens.weight", shared),
            "tgt_embedding.weight": weights.get("decoder.embed_tokens.weight", shared),
            "output_projection.weight": weights["lm_head.weight"],
        }
        consumed |= {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "lm_head.weight"}
    bias = weights.get("final_logits_bias")
    state["output_bias"] = torch.zeros(c.vocab_size) if bias is None else bias.reshape(-1)  # transformers' default: zeros
    positions = sinusoidal_table(c.max_len, c.d_model, "halves")
    for name, tensor in weights.items():
        if name in consumed:
            continue
        if name in tied_copies:
            if not torch.equal(tensor, shared):
                raise ModelLoadError(f"Marian weights: {name!r} differs from the shared embedding, yet tie_word_embeddings is true")
            continue
        if name.endswith("embed_positions.weight"):  # stored by transformers before 2020's v4: check, then drop
            rounding = max(1e-4, torch.finfo(tensor.dtype).eps) if tensor.is_floating_point() else 1e-4
            if tensor.shape != positions.shape or not torch.allclose(tensor.float(), positions, atol=rounding, rtol=0):
                raise ModelLoadError(f"Marian weights: {name!r} is not the sinusoidal table xformer computes")
            continue
        match = _LAYER.fullmatch(name)
        if match is None:
            raise ModelLoadError(f"Marian weights: unexpected tensor {name!r}")
        stack, index, rest = match.groups()
        rest = re.sub(r"^(fc1|fc2)\.", r"ffn.\1.", rest)
        state[f"{stack}.layers.{index}.{rest}"] = tensor
    for name, tensor in state.items():
        if name not in expected:
            raise ModelLoadError(f"Marian weights: unexpected tensor {name!r}")
        if tensor.shape != expected[name].shape:
            raise ModelLoadError(f"Marian weights: tensor {name!r} has shape {tuple(tensor.shape)}, expected {tuple(expected[name].shape)}")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ModelLoadError(f"Marian weights: tensor {missing[0]!r} is missing")
    return {name: t.float() for name, t in state.items()}


def decoding_defaults(config: dict[str, Any], generation: dict[str, Any], model: ModelConfig) -> DecodeConfig:
    """The decoding defaults that reproduce `generate` under the model's own generation config:
    each key from generation_config.json, else from config.json (where transformers kept them
    before generation_config.json existed), else transformers' default; on whole sentences (no
    splitting, no span protection)."""

    def setting(key: str, default: Any) -> Any:
        return generation.get(key, config.get(key, default))

    early = setting("early_stopping", False)
    if early not in (True, False):
        raise ModelLoadError(f"unsupported Marian generation config: early_stopping {early!r} (xformer has true and false)")
    if setting("do_sample", False):
        raise ModelLoadError("unsupported Marian generation config: do_sample is true (xformer imports models that search)")
    bad = setting("bad_words_ids", None) or []
    if not isinstance(bad, list) or not all(isinstance(ids, list) and len(ids) == 1 and type(ids[0]) is int for ids in bad):
        raise ModelLoadError(f"unsupported Marian generation config: bad_words_ids {bad!r} (xformer bans single ids)")
    banned = sorted({ids[0] for ids in bad})
    max_length = int(setting("max_length", 20))  # decoder tokens, the start token included
    try:
        return DecodeConfig(
            beam_size=int(setting("num_beams", 1)),
            length_penalty=float(setting("length_penalty", 1.0)),
            max_len_a=0.0,
            max_len_b=max_length - 1,  # pieces after the start token, EOS included
            no_repeat_ngram=int(setting("no_repeat_ngram_size", 0)),
            early_stopping=bool(early),
            ban_unk=model.unk_id in banned,
            banned_ids=tuple(i for i in banned if i != model.unk_id),
            renormalize=bool(setting("renormalize_logits", False)),
            split_sentences=False,
            protect_spans=False,
        )
    except (TypeError, ValueError, ConfigError) as err:
        raise ModelLoadError(f"unsupported Marian generation config: {err}") from None


def card_license(original_card: str) -> str:
    """The `license:` of the original card's YAML front matter ("" when it has none)."""
    match = re.match(r"---\n(.*?)\n---", original_card, re.S)
    found = re.search(r"^license:\s*(\S+)", match.group(1), re.M) if match else None
    return found.group(1) if found else ""


def import_card(source: str, model: Transformer, bundle: Bundle, original_card: str) -> str:
    """The bundle's model card: the original named, its license and authors, then its own card."""
    license_id = card_license(original_card)
    d = bundle.decode
    stopping = (
        f"a sentence ends with its first {d.beam_size} finished hypotheses"
        if d.early_stopping
        else "transformers' stopping rule (a sentence ends when no running hypothesis can beat its finished ones)"
    )
    name = source.rstrip("/").split("/")[-1]
    info = CardInfo(
        name=f"{name} (xformer import)",
        src_lang=bundle.src_lang,
        tgt_lang=bundle.tgt_lang,
        license=license_id,
        parameters=count_parameters(model),
    )
    authors = (
        "Jörg Tiedemann and the Language Technology Research Group at the University of Helsinki (OPUS-MT; Tiedemann and Thottingal, 2020)"
        if source.startswith("Helsinki-NLP/")
        else "see the original model card below"
    )
    original = original_card.split("---", 2)[-1].strip() if original_card.startswith("---") else original_card.strip()
    return f"""---
{metadata_yaml(info)}
---

# {info.name}

The Marian model `{source}` imported into xformer's from-scratch Transformer
({info.parameters:,} parameters) with `xformer import`. The weights are the original's,
renamed; nothing was retrained.

- Original: `{source}`{f" (https://huggingface.co/{source})" if source.count("/") == 1 and not Path(source).exists() else ""}
- License: {license_id or "not stated in the original card; check the original"}
- Authors: {authors}

    echo "Guten Tag" | xformer translate --model path/to/this/folder

## Decoding defaults

The original's own generation config, so that `xformer translate` gives what transformers'
`generate` gives: beam {d.beam_size}, at most {d.max_len_b} pieces, length penalty {d.length_penalty:g},
banned ids {list(d.banned_ids) or "none"} (padding and the start token always are), `<unk>`
{"banned" if d.ban_unk else "allowed"}, scores {"renormalized" if d.renormalize else "not renormalized"} after banning,
{stopping};
whole lines, no sentence splitting or span protection (`generate` has neither; whether they help
this model was not measured at import). Every option of `xformer translate` overrides these.

## The original model card

{original or "The original had none."}
"""

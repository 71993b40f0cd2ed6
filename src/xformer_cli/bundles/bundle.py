"""A model bundle: one folder that is also a Hugging Face Hub repo.

    config.json        model config, special ids, languages, decoding defaults, format version
    model.safetensors  the weights (loaded strictly, never unpickled)
    spm.model          the joint SentencePiece model, or for an imported Marian model
                       source.spm, target.spm and vocab.json (tokenizer.py)
    README.md          the model card (Hub metadata + text)
    shortlist.safetensors  optional: the lexical shortlist of decoding (`decoding/shortlist.py`)

Format versions: 1 knew only the joint tokenizer and the paper's model; 2 adds the model options
an imported model needs (activation, positions layout, output bias) and Marian's tokenizer
files. Version 1 bundles load unchanged: a missing option takes its default.

`load_bundle` takes a local folder or a Hub id (pulled with `huggingface_hub.snapshot_download`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from xformer_cli.bundles.shortlist import SHORTLIST_FILE, Shortlist, load_shortlist, save_shortlist
from xformer_cli.config import DecodeConfig, from_dict, to_dict
from xformer_cli.errors import ModelLoadError
from xformer_cli.model.config import ModelConfig
from xformer_cli.model.transformer import Transformer, build_model
from xformer_cli.text.tokenizer import TAG_PIECE, AnyTokenizer, load_tokenizer

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "README.md"


@dataclass
class Bundle:
    """A loaded model with everything needed to translate."""

    model: Transformer
    tokenizer: AnyTokenizer
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    src_lang: str = "de"
    tgt_lang: str = "en"
    path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # other config.json entries (e.g. training info)
    shortlist: Shortlist | None = None  # the target pieces each sentence may choose, where the bundle has them


def save_bundle(bundle: Bundle, directory: str | Path, dtype: torch.dtype = torch.float32, card: str | None = None) -> Path:
    """Write `bundle` to `directory` (weights cast to `dtype`; fp16 halves the size)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().to("cpu", dtype).contiguous() for name, t in bundle.model.state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    for name, data in bundle.tokenizer.files().items():
        (directory / name).write_bytes(data)
    config = {
        "format_version": FORMAT_VERSION,
        "library_name": "xformer",
        "src_lang": bundle.src_lang,
        "tgt_lang": bundle.tgt_lang,
        "model": to_dict(bundle.model.config),
        "decode": to_dict(bundle.decode),
        **bundle.extra,
    }
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    if card is not None:
        (directory / CARD_FILE).write_text(card, encoding="utf-8")
    if bundle.shortlist is not None:
        save_shortlist(bundle.shortlist, directory / SHORTLIST_FILE)
    return directory


def is_hub_id(ref: str) -> bool:
    """`name` or `owner/name` that is not an existing path and does not look like one."""
    if os.path.exists(ref) or ref.startswith((".", "/", "~")) or ref.endswith("/") or os.sep != "/" and os.sep in ref:
        return False
    return ref.count("/") <= 1


def resolve(ref: str, revision: str | None = None, allow_patterns: list[str] | None = None) -> Path:
    """The local folder of a model given as a path or a Hub id (downloaded or found in the cache;
    only the files matching `allow_patterns`, where given)."""
    if not is_hub_id(ref):
        path = Path(ref).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"model not found: {ref} is not a folder")
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError

    try:
        return Path(snapshot_download(ref, revision=revision, library_name="xformer", allow_patterns=allow_patterns))
    except HFValidationError:
        raise ModelLoadError(f"model not found: {ref!r} is neither a folder nor a valid Hub id") from None
    except Exception as err:  # the Hub client's many network and cache errors
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = "not in the local Hub cache and HF_HUB_OFFLINE is set" if offline else type(err).__name__
        raise ModelLoadError(f"cannot get model {ref!r} from the Hugging Face Hub ({why})") from None


def read_config(directory: Path) -> dict[str, Any]:
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"not a model bundle: {directory} has no {CONFIG_FILE}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelLoadError(f"corrupt {CONFIG_FILE} in {directory}: {err}") from None
    if not isinstance(config, dict) or config.get("format_version") not in READABLE_VERSIONS:
        raise ModelLoadError(f"unsupported bundle format in {directory} (expected format_version 1 to {FORMAT_VERSION})")
    return config


def load_weights(model: Transformer, path: Path) -> None:
    """Strictly load safetensors weights into `model` (float32 whatever the stored dtype)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except FileNotFoundError:
        raise ModelLoadError(f"weights not found: {path}") from None
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelLoadError(f"corrupt weights file {path}: {err}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing:
        raise ModelLoadError(f"weights do not match the config: tensor {missing[0]!r} is missing from {path}")
    if unexpected:
        raise ModelLoadError(f"weights do not match the config: unexpected tensor {unexpected[0]!r} in {path}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise ModelLoadError(
                f"weights do not match the config: tensor {name!r} has shape {tuple(tensor.shape)}, expected {tuple(expected[name].shape)}"
            )
    model.load_state_dict({name: t.float() for name, t in tensors.items()}, strict=True)


def load_bundle(ref: str | Path, revision: str | None = None) -> Bundle:
    """Load a bundle from a folder or a Hub id. Only JSON, safetensors and SentencePiece are read."""
    directory = resolve(str(ref), revision)
    config = read_config(directory)
    try:
        model_config = from_dict(ModelConfig, config["model"], f"{CONFIG_FILE} of {directory}")
        decode = from_dict(DecodeConfig, config.get("decode", {}), f"{CONFIG_FILE} of {directory}")
    except KeyError:
        raise ModelLoadError(f"corrupt {CONFIG_FILE} in {directory}: no model config") from None
    except Exception as err:
        raise ModelLoadError(str(err)) from None
    tokenizer = load_tokenizer(directory)
    if tokenizer.vocab_size != model_config.vocab_size:
        raise ModelLoadError(
            f"tokenizer and model disagree: {tokenizer.vocab_size} pieces in {', '.join(tokenizer.files())}, "
            f"vocab_size {model_config.vocab_size} in {CONFIG_FILE}"
        )
    if model_config.tag_id != -1 and model_config.tag_id != tokenizer.tag_id:  # -1: a bundle made before the tag, or none
        raise ModelLoadError(
            f"tokenizer and model disagree: tag_id {model_config.tag_id} in {CONFIG_FILE}, but {', '.join(tokenizer.files())} "
            + (f"reserves {TAG_PIECE} as {tokenizer.tag_id}" if tokenizer.tag_id is not None else f"has no {TAG_PIECE} piece")
        )
    model = build_model(model_config, initialize=False)  # every weight is loaded below
    load_weights(model, directory / WEIGHTS_FILE)
    model.eval()
    shortlist_file = directory / SHORTLIST_FILE
    shortlist = load_shortlist(shortlist_file, model_config.vocab_size, model_config.vocab_size) if shortlist_file.exists() else None
    known = {"format_version", "library_name", "src_lang", "tgt_lang", "model", "decode"}
    return Bundle(
        model=model,
        tokenizer=tokenizer,
        decode=decode,
        src_lang=config.get("src_lang", "de"),
        tgt_lang=config.get("tgt_lang", "en"),
        path=directory,
        extra={k: v for k, v in config.items() if k not in known},
        shortlist=shortlist,
    )


def with_tag_piece(bundle: Bundle, seed: int = 0) -> Bundle:
    """The bundle with its joint tokenizer grown by the tag piece (`tokenizer.TAG_PIECE`) as one
    more id, and its model by one vocabulary row for it: an embedding row drawn as training
    initializes embeddings (seeded), a zero output bias. Every other id and weight is unchanged.
    It lets a bundle made before tagged corpora existed be fine-tuned on them."""
    tokenizer = bundle.tokenizer.with_tag()
    if tokenizer is bundle.tokenizer:
        return bundle
    config = replace(bundle.model.config, vocab_size=tokenizer.vocab_size, tag_id=tokenizer.tag_id)
    generator = torch.Generator().manual_seed(seed)
    state = bundle.model.state_dict()
    for name, tensor in state.items():
        if name in ("embedding.weight", "tgt_embedding.weight", "output_projection.weight"):  # (V, d_model) -> (V + 1, d_model)
            row = torch.randn(1, config.d_model, generator=generator) * config.d_model**-0.5
            state[name] = torch.cat([tensor, row.to(tensor.dtype)])
        elif name == "output_bias":  # (V,) -> (V + 1,)
            state[name] = torch.cat([tensor, tensor.new_zeros(1)])
    model = build_model(config, initialize=False)
    model.load_state_dict(state, strict=True)
    return replace(bundle, model=model.eval(), tokenizer=tokenizer, shortlist=None)  # a shortlist's table is by the old ids


def push_bundle(directory: str | Path, repo_id: str, private: bool = False, revision: str | None = None) -> str:
    """Upload a bundle folder to the Hub (creating the repo if needed); returns the commit URL."""
    from huggingface_hub import HfApi

    directory = Path(directory)
    read_config(directory)  # refuse to push something that is not a bundle
    api = HfApi(library_name="xformer")
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=directory, revision=revision, commit_message="Upload xformer model")
    except Exception as err:
        raise ModelLoadError(f"cannot push to {repo_id!r}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
    return str(getattr(info, "commit_url", info))

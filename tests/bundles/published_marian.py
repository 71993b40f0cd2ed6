"""Tiny Marian models built from OPUS-MT's published configurations and saved the ways real
checkpoints are (tests/fixtures/opus-mt-published/README.md says where each file comes from).

`make_published(name, out, saved)` reads the published config.json (and generation_config.json
and tokenizer_config.json where the model has them), shrinks the dimensions (width 32, 4 heads,
feed-forward 64, 2 + 2 layers, the vocabulary of the stored tiny SentencePiece models) and the
ids that depend on the vocabulary, keeps every other field as published, builds the model with
`transformers`, draws seeded weights (as tests/bundles/test_marian.py does, so that decisions
are clear-cut and outputs end on their own) and saves the checkpoint as `saved` says.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm
import torch
import transformers

FIXTURES = Path(__file__).parents[1] / "fixtures"
PUBLISHED = FIXTURES / "opus-mt-published"
SPM = FIXTURES / "tiny-marian-spm"  # source.spm cuts German, target.spm English
EOS_BIAS = 4.5
SHRUNK = {
    "d_model": 32,
    "encoder_attention_heads": 4,
    "decoder_attention_heads": 4,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "num_hidden_layers": 2,
}


@dataclass(frozen=True)
class Saved:
    """How a checkpoint is written."""

    dtype: torch.dtype = torch.float32
    stored_positions: bool = False  # the sinusoid tables in the file, as transformers saved them before v4
    lm_head: bool = True  # a tied copy of the embedding as lm_head.weight
    file: str = "safetensors"  # safetensors, bin (torch's zip format) or legacy-bin (torch's format before 1.6)
    eos_at: float = 0.0  # where </s> and <unk> sit in the vocabulary, as a share of its size:
    unk_at: float | None = None  # OPUS-MT's 0 and 1 (None: right after </s>); the tc-big models put them elsewhere
    tags: tuple[str, ...] = ()  # target-language tags (`>>nld<<`) of a multi-target model
    seed: int = 0  # of the weights: one whose outputs end on their own (many random models repeat a piece until the cap)


def vocabulary(saved: Saved, swap: bool) -> dict[str, int]:
    """The pieces of both SentencePiece models, </s> and <unk> where `saved` says, <pad> last."""
    pieces: list[str] = []
    for name in ("target.spm", "source.spm") if swap else ("source.spm", "target.spm"):
        sp = spm.SentencePieceProcessor(model_file=str(SPM / name))
        pieces += [p for p in map(sp.IdToPiece, range(sp.GetPieceSize())) if p not in ("<s>", "</s>", "<unk>")]
    pieces = list(dict.fromkeys(pieces)) + list(saved.tags)
    eos = round(saved.eos_at * len(pieces))
    pieces.insert(eos, "</s>")
    pieces.insert(eos + 1 if saved.unk_at is None else round(saved.unk_at * len(pieces)), "<unk>")
    return {piece: i for i, piece in enumerate([*pieces, "<pad>"])}


def shrunk(published: dict, vocab: dict[str, int]) -> dict:
    """A published config (or generation config) with the tiny dimensions and the tiny vocabulary's ids."""
    size, pad, eos = len(vocab), vocab["<pad>"], vocab["</s>"]
    ids = {
        "vocab_size": size,
        "decoder_vocab_size": size,
        "extra_pos_embeddings": size,
        "pad_token_id": pad,
        "decoder_start_token_id": pad,
        "eos_token_id": eos,
        "forced_eos_token_id": eos,
        "bad_words_ids": [[pad]],
    }
    return {key: SHRUNK.get(key, ids.get(key, value)) for key, value in published.items()}


def make_published(name: str, out: Path, saved: Saved = Saved()) -> Path:
    """The tiny model of OPUS-MT's `name` in `out` (a folder laid out as its Hub repo)."""
    source = PUBLISHED / name
    swap = name.startswith("opus-mt-en-")  # an English source: the stored models swap roles
    out.mkdir(parents=True)
    for ours, theirs in (("source.spm", "target.spm" if swap else "source.spm"), ("target.spm", "source.spm" if swap else "target.spm")):
        shutil.copyfile(SPM / theirs, out / ours)
    vocab = vocabulary(saved, swap)
    (out / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    config = shrunk(json.loads((source / "config.json").read_text()), vocab)
    (out / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    for extra in ("generation_config.json", "tokenizer_config.json"):
        if (source / extra).exists():
            values = json.loads((source / extra).read_text())
            values = shrunk(values, vocab) if extra == "generation_config.json" else values
            (out / extra).write_text(json.dumps(values, indent=2), encoding="utf-8")
    (out / "README.md").write_text(f"---\nlicense: cc-by-4.0\n---\n\n# {name} (tiny)\n\nA test model.\n", encoding="utf-8")
    save_weights(seeded_model(config, vocab, saved.seed), out, saved)
    return out


def seeded_model(config: dict, vocab: dict[str, int], seed: int = 0) -> transformers.MarianMTModel:
    """The model of `config` with seeded weights N(0, 0.2) and an EOS bias."""
    torch.manual_seed(seed)
    model = transformers.MarianMTModel(transformers.MarianConfig(**config)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "embed_positions" not in name:
                p.normal_(0.0, 0.2) if p.dim() > 1 else p.normal_(1.0 if "layer_norm.weight" in name else 0.0, 0.2)
        model.final_logits_bias.normal_(0.0, 1.0)
        model.final_logits_bias[0, vocab["</s>"]] += EOS_BIAS
    return model


def save_weights(model: transformers.MarianMTModel, out: Path, saved: Saved) -> None:
    """The model's tensors written as `saved` says (each its own copy: the tied ones share memory)."""
    state = {name: t.detach().clone().contiguous() for name, t in model.state_dict().items()}
    positions = [name for name in state if name.endswith("embed_positions.weight")]
    for name in positions:
        if saved.stored_positions:  # the table transformers computes, as it stored it
            state[name] = model.get_submodule(name.removesuffix(".weight")).create_weight()
        else:
            del state[name]
    if not saved.lm_head:
        del state["lm_head.weight"]
    state = {name: t.to(saved.dtype) if t.is_floating_point() else t for name, t in state.items()}
    if saved.file == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(state, out / "pytorch_model.bin", _use_new_zipfile_serialization=saved.file == "bin")


def reference(folder: Path) -> tuple[transformers.MarianMTModel, transformers.MarianTokenizer]:
    """transformers' model (float32) and tokenizer of a fixture folder, its sinusoid tables the
    ones transformers computes, not the rounded copies a float16 file holds (xformer computes the
    table too, as Marian does)."""
    model = transformers.MarianMTModel.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, transformers.models.marian.modeling_marian.MarianSinusoidalPositionalEmbedding):
                module.weight.copy_(module.create_weight())
    return model, transformers.MarianTokenizer.from_pretrained(folder)

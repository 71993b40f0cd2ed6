"""The end of a run: from its weights to a bundle with its model card.

`xformer train` ends here with the best, averaged or last weights; scripts/checkpoint_to_bundle.py
makes a bundle of any checkpoint of a run the same way, from what the run folder holds
(run.json, spm.model, the checkpoints).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from xformer_cli.bundles.bundle import Bundle, save_bundle
from xformer_cli.bundles.card import CardInfo, Score, render_card
from xformer_cli.config import DecodeConfig, TrainConfig, from_dict, to_dict
from xformer_cli.model.config import ModelConfig
from xformer_cli.model.transformer import Transformer, build_model, count_parameters
from xformer_cli.text.tokenizer import TAG_PIECE, AnyTokenizer, load_tokenizer
from xformer_cli.training.checkpoint import average_states, load_checkpoint, model_state
from xformer_cli.training.run_data import CorpusStats
from xformer_cli.training.run_folder import RunFolder


@dataclass
class RunInfo:
    """What a run folder says about its run: configs, tokenizer and training corpora."""

    model: ModelConfig  # with the tokenizer's vocabulary size
    train: TrainConfig
    decode: DecodeConfig
    tokenizer: AnyTokenizer
    corpora: list[CorpusStats]

    def build_model(self) -> Transformer:
        return build_model(self.model)


def run_info(run: RunFolder) -> RunInfo:
    """Read run.json and the tokenizer of a run folder."""
    saved = run.read_run()
    tokenizer = load_tokenizer(run.out)
    return RunInfo(
        model=replace(from_dict(ModelConfig, saved["model"], "run.json"), vocab_size=tokenizer.vocab_size),
        train=from_dict(TrainConfig, saved["train"], "run.json"),
        decode=from_dict(DecodeConfig, saved.get("decode", {}), "run.json"),
        tokenizer=tokenizer,
        corpora=[CorpusStats(**c) for c in saved.get("corpora", [])],
    )


def final_weights(run: RunFolder, average_last: int, current: dict[str, torch.Tensor], step: int) -> tuple[dict[str, torch.Tensor], str]:
    """The weights a finished run bundles, and which they are: the average of the last
    `average_last` checkpoints (when > 1), else the best validated ones, else `current`."""
    if average_last > 1:
        paths = run.checkpoint_paths()[-average_last:]
        states = [model_state(load_checkpoint(p)[0]) for p in paths]
        return average_states(states), f"average of the last {len(paths)} checkpoints ({', '.join(p.stem for p in paths)})"
    if run.best_path.exists():
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(run.best_path), framework="pt") as f:
            meta = f.metadata()
        return load_file(str(run.best_path)), f"best validation BLEU {meta['bleu']} at step {meta['step']}"
    return current, f"last step ({step})"


def corpora_text(corpora: list[CorpusStats]) -> str:
    """The model card's training-data section: one row per corpus, with a `tagged` column where
    any corpus is tagged (synthetic)."""
    tagged = any(c.tagged for c in corpora)
    rows = "\n".join(
        f"| {c.name} | `{c.src}` | `{c.tgt}` | {c.pairs:,} | {c.weight:g} |" + (f" {'yes' if c.tagged else 'no'} |" if tagged else "")
        for c in corpora
    )
    return (
        f"| corpus | source | target | pairs | weight |{' tagged |' if tagged else ''}\n"
        f"|---|---|---|---:|---:|{'---|' if tagged else ''}\n{rows}\n\n"
        "Pairs are counted after filtering (empty, over-long and length-mismatched pairs dropped). "
        "An epoch takes round(weight × pairs) pairs of each corpus."
        + (
            f" A tagged corpus is synthetic (machine-made sources, such as back-translations): each of its sources starts with "
            f"the reserved piece `{TAG_PIECE}` (tagged back-translation, Caswell et al. 2019), which text to translate never produces."
            if tagged
            else ""
        )
    )


def sampling_text(alpha: float) -> str:
    """The model card's sentence on subword sampling (TrainConfig.subword_alpha), or nothing when it was off."""
    if not alpha:
        return ""
    return (
        f"\n\nSubword regularization (subword_alpha {alpha:g}): every epoch trained on a fresh sampled segmentation of the corpora "
        "(BPE-dropout, each merge skipped with that probability), seeded by the run's seed and the epoch, and filtered anew: "
        "an epoch took round(weight × the pairs that fit in its segmentation), which can differ slightly from the pairs above. "
        "Those are counted in the plain segmentation, which validation and translation use."
    )


def corpus_summary(corpus: CorpusStats) -> dict:
    """One corpus as config.json's "training" lists it ("tagged" only where it is)."""
    return {"name": corpus.name, "pairs": corpus.pairs, "weight": corpus.weight, **({"tagged": True} if corpus.tagged else {})}


def write_run_bundle(
    out: Path, name: str, model: Transformer, info: RunInfo, training: str, recipe: str, scores: list[Score], extra: dict
) -> Path:
    """Save `model` (with the run's tokenizer and decoding defaults) as a bundle in `out`, with a
    model card titled `name` that lists the run's corpora, license and datasets; `training` says
    how it trained, `extra` goes into config.json's "training"."""
    cfg = info.train
    bundle = Bundle(model.cpu().eval(), info.tokenizer, info.decode, cfg.src_lang, cfg.tgt_lang, extra={"training": extra})
    card = render_card(
        CardInfo(
            name=name,
            license=cfg.license,
            datasets=list(cfg.datasets),
            src_lang=cfg.src_lang,
            tgt_lang=cfg.tgt_lang,
            parameters=count_parameters(model),
            data=corpora_text(info.corpora) + sampling_text(cfg.subword_alpha),
            training=training,
            recipe=recipe or json.dumps({"model": to_dict(info.model), "train": to_dict(cfg)}, indent=2),
            scores=scores,
        )
    )
    return save_bundle(bundle, out, card=card)

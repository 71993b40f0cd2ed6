"""Validation during training: loss and greedy BLEU on the valid set, the best weights kept,
validations without a better BLEU counted (for patience).

BLEU goes through `Translator`, the path `translate` and `evaluate` use. Under DDP rank 0
validates and tells the others the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from xformer_cli.batching import collate
from xformer_cli.bundles.bundle import Bundle
from xformer_cli.config import DecodeConfig, TrainConfig
from xformer_cli.model.transformer import Transformer
from xformer_cli.text.tokenizer import AnyTokenizer
from xformer_cli.training.checkpoint import TrainState, atomic_write
from xformer_cli.training.distributed import Distributed, autocast
from xformer_cli.training.loss import token_loss
from xformer_cli.training.run_folder import RunFolder


class Validator:
    """Validates `model` on `valid` (source and target texts), or does nothing without them."""

    def __init__(
        self,
        valid: tuple[list[str], list[str]] | None,
        model: Transformer,
        tokenizer: AnyTokenizer,
        cfg: TrainConfig,
        device: torch.device,
        run: RunFolder,
        dist: Distributed,
        log: Callable[[str], None],
    ) -> None:
        self.valid = valid
        self.model, self.tokenizer, self.cfg, self.device = model, tokenizer, cfg, device
        self.run, self.dist, self.log = run, dist, log
        self.last: dict[str, Any] = {}  # the latest validation record

    def __call__(self, state: TrainState) -> None:
        """Validate at `state.step`; a better BLEU saves best.safetensors and resets
        `state.bad_validations`, any other counts one more."""
        if self.valid is None:
            return
        if self.dist.main:
            record = {"step": state.step, **self.evaluate()}
            self.last = record
            self.run.metrics(record)
            self.log(f"step {state.step}: valid loss {record['valid_loss']:.3f}, valid BLEU {record['valid_bleu']:.2f}")
            if record["valid_bleu"] > state.best_bleu:
                state.best_bleu, state.bad_validations = record["valid_bleu"], 0
                self.save_best(state.step, record)
            else:
                state.bad_validations += 1
        else:
            self.last = {"step": state.step}
        state.best_bleu, state.bad_validations = self.dist.share((state.best_bleu, state.bad_validations))

    def done_at(self, step: int) -> bool:
        """Whether the latest validation was at `step` (so the end of a run need not repeat it)."""
        return self.last.get("step") == step

    def save_best(self, step: int, record: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        meta = {"step": str(step), "bleu": str(record["valid_bleu"]), "signature": record["bleu_signature"]}
        atomic_write(self.run.best_path, lambda tmp: save_file(state, tmp, metadata=meta))

    @torch.no_grad()
    def evaluate(self) -> dict[str, Any]:
        """Valid loss (teacher forcing, no label smoothing) and greedy BLEU."""
        from xformer_cli.decoding.translator import Translator
        from xformer_cli.evaluation.metrics import corpus_bleu

        c = self.model.config
        src, tgt = self.valid
        self.model.eval()
        pairs = [
            (s[: c.max_pieces], t[: c.max_pieces]) for s, t in zip(self.tokenizer.encode(src), self.tokenizer.encode_target(tgt)) if s and t
        ]
        total, tokens = 0.0, 0
        for start in range(0, len(pairs), 64):
            chunk = pairs[start : start + 64]
            batch = collate([p[0] for p in chunk], [p[1] for p in chunk], c.pad_id, c.bos_id, c.eos_id).to(self.device)
            with autocast(self.device, self.cfg.bf16):
                logits = self.model(batch.src, batch.tgt_in)  # (B, T, V)
            total += float(token_loss(logits, batch.tgt_out, c.pad_id))
            tokens += batch.n_tokens
        n = self.bleu_size()
        translator = Translator(Bundle(self.model, self.tokenizer, DecodeConfig(beam_size=1)), self.device)
        bleu = corpus_bleu(translator.translate(src[:n]), [tgt[:n]])
        self.model.train()
        return {"valid_loss": round(total / max(tokens, 1), 5), "valid_bleu": round(bleu.score, 2), "bleu_signature": bleu.signature}

    def bleu_size(self) -> int:
        """How many valid sentences (the first ones) greedy BLEU is computed on: 0 in the recipe means all."""
        total = len(self.valid[0])
        return min(self.cfg.valid_bleu_sentences or total, total)

    def scope(self) -> str:
        """The model card's sentence on what validation BLEU was computed over ("" without a valid set)."""
        if not self.valid:
            return ""
        n, total = self.bleu_size(), len(self.valid[0])
        which = f"all {total}" if n == total else f"the first {n} of {total}"
        return f" Validation BLEU is greedy on {which} valid sentences."

"""The training loop: label-smoothed cross-entropy, Adam with inverse-square-root warmup, token
batches, validation BLEU, atomic checkpoints, exact resume, Ctrl-C safety and DDP.

The run folder's layout is described in `run_folder.py`.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from xformer_cli.bundle import Bundle, load_bundle, save_bundle
from xformer_cli.card import CardInfo, Score, render_card
from xformer_cli.checkpoint import (
    atomic_write,
    average_states,
    load_checkpoint,
    model_state,
    restore_optimizer,
    save_checkpoint,
)
from xformer_cli.config import DecodeConfig, ModelConfig, TrainConfig, to_dict
from xformer_cli.data import Batch, collate, filter_pairs, make_batches, read_parallel
from xformer_cli.devices import resolve_device
from xformer_cli.errors import Interrupted, RunError
from xformer_cli.model.transformer import Transformer, build_model, count_parameters
from xformer_cli.run_folder import RunFolder
from xformer_cli.tokenizer import Tokenizer, train_tokenizer
from xformer_cli.translator import Translator


def inverse_sqrt_lr(step: int, peak: float, warmup: int) -> float:
    """Linear warmup to `peak` over `warmup` steps, then decay with 1/sqrt(step) (the paper's schedule, rescaled)."""
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step))


@dataclass
class Corpus:
    src_ids: list[list[int]]
    tgt_ids: list[list[int]]


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process gets here (nothing to wait for in a single process)."""
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def all_sum(self, value: int) -> int:
        """The sum of `value` over all processes."""
        if self.world == 1:
            return value
        import torch.distributed as dist

        total = torch.tensor([value], dtype=torch.long)
        dist.all_reduce(total)
        return int(total)


def setup_distributed(device: torch.device) -> Distributed:
    """Join the process group when started by torchrun (WORLD_SIZE > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size())


def config_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    diffs = [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return "; ".join(diffs)


def token_loss(logits: torch.Tensor, target: torch.Tensor, pad_id: int, label_smoothing: float = 0.0) -> torch.Tensor:
    """Summed cross-entropy of the target tokens, padding excluded (label-smoothed for training,
    plain for validation). Shapes: logits (B, T, V), target (B, T) -> a scalar."""
    return F.cross_entropy(
        logits.float().view(-1, logits.size(-1)),  # (B*T, V)
        target.reshape(-1),  # (B*T,)
        ignore_index=pad_id,
        label_smoothing=label_smoothing,
        reduction="sum",
    )


def prepare_tokenizer(cfg: TrainConfig, run: RunFolder, dist: Distributed, vocab_size: int, sentences, log, given: Tokenizer | None = None) -> Tokenizer:
    """The run's tokenizer, made once: rank 0 trains SentencePiece (seeded) or copies the `given`
    one or `cfg.spm_model` into the run folder, atomically; every other rank waits for the file
    and loads it.

    `sentences` is called (on rank 0 only) for the text to learn from.
    """
    spm_path = run.out / "spm.model"
    if dist.main and not spm_path.exists():
        if given is not None:
            tokenizer = given
        elif cfg.spm_model:
            tokenizer = Tokenizer.load(cfg.spm_model)
        else:
            text = sentences()
            log(f"training a {vocab_size}-piece SentencePiece model on {len(text)} sentences")
            tokenizer = train_tokenizer(text, vocab_size, max_sentences=cfg.spm_sample, seed=cfg.seed)
        atomic_write(spm_path, tokenizer.save)
    dist.barrier()
    return Tokenizer.load(spm_path)


def prepare_data(cfg: TrainConfig, run: RunFolder, dist: Distributed, vocab_size: int, max_pieces: int, log, tokenizer: Tokenizer | None = None) -> tuple[Tokenizer, Corpus, tuple[list[str], list[str]] | None]:
    """Read and filter the corpus; train (or load, or take the given) tokenizer."""
    if not cfg.src or not cfg.tgt:
        raise RunError("no training data: give --src and --tgt, or a --config recipe")
    src, tgt = read_parallel(cfg.src, cfg.tgt)
    valid = read_parallel(cfg.valid_src, cfg.valid_tgt) if cfg.valid_src else None
    tokenizer = prepare_tokenizer(cfg, run, dist, vocab_size, lambda: [*src, *tgt], log, given=tokenizer)
    src_ids, tgt_ids = tokenizer.encode(src), tokenizer.encode(tgt)
    kept, report = filter_pairs(src_ids, tgt_ids, min(cfg.max_tokens_per_sentence, max_pieces), cfg.max_length_ratio)
    log(f"training data: {report}")
    if not kept:
        raise RunError(f"no training pairs left after filtering ({report})")
    return tokenizer, Corpus([src_ids[i] for i in kept], [tgt_ids[i] for i in kept]), valid


def backward_accumulated(model: torch.nn.Module, batches: list[Batch], pad_id: int, label_smoothing: float, dist: Distributed, autocast=nullcontext) -> tuple[float, int]:
    """Forward and backward over the micro-batches of one update; returns the summed loss and the
    target tokens of this process.

    The loss is normalized by the target tokens of the whole update, over every micro-batch of
    every process (fairseq's rule), so accumulating micro-batches of B gives the gradient of one
    batch of 2B. Under DDP, which averages gradients over processes, each process scales by
    world / tokens, and the all-reduce runs once, after the last micro-batch (`no_sync` before it).
    """
    tokens = sum(b.n_tokens for b in batches)
    scale = dist.world / max(dist.all_sum(tokens), 1)
    total = 0.0
    for i, batch in enumerate(batches):
        last = i == len(batches) - 1
        with nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync():
            with autocast():
                logits = model(batch.src, batch.tgt_in)  # (B, T, V)
            loss = token_loss(logits, batch.tgt_out, pad_id, label_smoothing)
            (loss * scale).backward()
        total += float(loss.detach())
    return total, tokens


class Trainer:
    """One training run. `run()` trains until a stop condition and returns the bundle folder."""

    def __init__(self, model_config: ModelConfig, cfg: TrainConfig, out: Path, resume: bool = False, decode: DecodeConfig | None = None, recipe_text: str = "", console=None) -> None:
        self.cfg = cfg
        self.decode_config = decode or DecodeConfig()
        self.recipe_text = recipe_text
        self.console = console
        self.device = resolve_device(cfg.device)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.dist = setup_distributed(self.device)
        if self.dist.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        self.run_folder = RunFolder(out, self.dist.main)
        try:
            self.setup(model_config, out, resume)
        except BaseException:
            self.run_folder.release()
            raise

    def setup(self, model_config: ModelConfig, out: Path, resume: bool) -> None:
        """Check the folder, prepare the data, build the model and optimizer, restore a checkpoint."""
        cfg = self.cfg
        start = load_bundle(cfg.init_from) if cfg.init_from else None
        if start is not None:  # fine-tuning: the bundle's architecture, tokenizer and weights
            model_config = start.model.config
        self.check_run(out, model_config, resume)
        torch.manual_seed(cfg.seed)
        self.tokenizer, self.corpus, self.valid = prepare_data(
            cfg, self.run_folder, self.dist, model_config.vocab_size, model_config.max_pieces, self.log, start.tokenizer if start else None
        )
        self.model_config = replace(model_config, vocab_size=self.tokenizer.vocab_size)
        self.model: Transformer = build_model(self.model_config).to(self.device)
        if start is not None:
            self.model.load_state_dict(start.model.state_dict())
            self.log(f"initialized from {cfg.init_from}; fresh optimizer and learning-rate schedule (peak {cfg.lr:g} after {cfg.warmup} warmup steps)")
        self.ddp_model = self.model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp_model = DistributedDataParallel(self.model)
        self.optimizer = torch.optim.Adam(  # fused: one kernel for all parameters (about 4x faster on CPU)
            self.model.parameters(), lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )
        self.step = 0
        self.epoch = 0
        self.batch_index = 0  # next batch of this epoch
        self.elapsed = 0.0  # training seconds over all sessions of the run
        self.best_bleu = -1.0
        self.bad_validations = 0
        self.last_valid: dict[str, Any] = {}
        self._batches: tuple[int, list[list[int]]] | None = None  # (epoch, batches) cache
        if resume and self.run_folder.checkpoint_paths():
            self.restore(self.run_folder.checkpoint_paths()[-1])
        elif self.dist.main:
            state = {"model": to_dict(model_config), "train": to_dict(cfg)}
            atomic_write(out / "run.json", lambda tmp: Path(tmp).write_text(json.dumps(state, indent=2), encoding="utf-8"))

    # ----- setup -----
    def log(self, message: str) -> None:
        if self.dist.main and self.console is not None:
            self.console.print(message, highlight=False)

    def check_run(self, out: Path, model_config: ModelConfig, resume: bool) -> None:
        run_json = out / "run.json"
        if resume:
            if not run_json.exists():
                raise RunError(f"nothing to resume in {out}: no run.json")
            old = json.loads(run_json.read_text(encoding="utf-8"))["model"]
            old.pop("vocab_size", None)
            new = to_dict(model_config)
            new.pop("vocab_size", None)
            if old != new:
                raise RunError(f"--resume with a changed model config ({config_difference(old, new)})")
        elif self.run_folder.checkpoint_paths():
            raise RunError(f"{out} already holds checkpoints: pass --resume to continue, or choose another --out")

    def restore(self, path: Path) -> None:
        tensors, meta = load_checkpoint(path)
        self.model.load_state_dict(model_state(tensors), strict=True)
        restore_optimizer(self.optimizer, {k: v.to(self.device) if k.split(".")[-1] != "step" else v for k, v in tensors.items()}, meta["optimizer"])
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        for key in ("step", "epoch", "batch_index", "elapsed", "best_bleu", "bad_validations"):
            setattr(self, key, meta[key])
        self.run_folder.truncate_metrics(self.step)
        valid = [r for r in self.run_folder.records() if "valid_bleu" in r and r["step"] == self.step]
        self.last_valid = valid[-1] if valid else {}  # no second validation of the same step
        self.log(f"resumed from {path.name}: step {self.step}, epoch {self.epoch + 1}, batch {self.batch_index}")

    # ----- checkpoints -----
    def save(self) -> Path:
        path = self.run_folder.checkpoint_path(self.step)
        meta = {k: getattr(self, k) for k in ("step", "epoch", "batch_index", "elapsed", "best_bleu", "bad_validations")}
        save_checkpoint(path, self.model.state_dict(), self.optimizer, meta)
        keep = max(self.cfg.keep_last, self.cfg.average_last, 1)
        for old in self.run_folder.checkpoint_paths()[:-keep]:
            old.unlink()
        return path

    # ----- the loop -----
    def epoch_batches(self) -> list[list[int]]:
        """This epoch's batches (this rank's shard), computed once per epoch."""
        if self._batches is None or self._batches[0] != self.epoch:
            self._batches = (self.epoch, self.make_epoch_batches())
        return self._batches[1]

    def make_epoch_batches(self) -> list[list[int]]:
        src_lens = [len(s) + 1 for s in self.corpus.src_ids]
        tgt_lens = [len(t) + 1 for t in self.corpus.tgt_ids]
        batches = make_batches(src_lens, tgt_lens, self.cfg.batch_tokens, self.cfg.seed, self.epoch)
        if self.dist.world > 1:  # each rank its shard, all shards equally long
            usable = len(batches) // self.dist.world * self.dist.world
            batches = batches[self.dist.rank : usable : self.dist.world]
        return batches

    def autocast(self):
        if self.device.type == "cuda" and self.cfg.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def train_step(self, batches: list[list[int]]) -> tuple[float, int]:
        """One optimizer update over `batches` (gradient accumulation). Returns mean loss and target tokens."""
        c = self.model_config
        self.ddp_model.train()
        self.optimizer.zero_grad(set_to_none=True)
        micro = [collate([self.corpus.src_ids[i] for i in b], [self.corpus.tgt_ids[i] for i in b], c.pad_id, c.bos_id, c.eos_id).to(self.device) for b in batches]
        total_loss, total_tokens = backward_accumulated(self.ddp_model, micro, c.pad_id, self.cfg.label_smoothing, self.dist, self.autocast)
        if self.cfg.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        lr = inverse_sqrt_lr(self.step + 1, self.cfg.lr, self.cfg.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.step += 1
        return total_loss / max(total_tokens, 1), total_tokens

    def should_stop(self) -> str | None:
        """Why to stop now, or None. Under DDP all processes stop together (their clocks differ)."""
        reason = self.stop_reason()
        if self.dist.world > 1:
            import torch.distributed as dist

            flag = torch.tensor([0.0 if reason is None else 1.0])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            if flag.item() and reason is None:
                reason = "another process reached its limit"
        return reason

    def stop_reason(self) -> str | None:
        if self.step >= self.cfg.max_steps:
            return f"reached --max-steps {self.cfg.max_steps}"
        if self.cfg.max_epochs and self.epoch >= self.cfg.max_epochs:
            return f"reached --max-epochs {self.cfg.max_epochs}"
        if self.cfg.max_time and self.elapsed >= self.cfg.max_time:
            return f"reached --max-time {self.cfg.max_time:g} s"
        if self.cfg.patience and self.bad_validations >= self.cfg.patience:
            return f"no better validation BLEU in {self.cfg.patience} validations"
        return None

    def run(self) -> Path:
        """Train until a stop condition; returns the bundle folder. The folder's lock ends with it."""
        try:
            return self.train_loop()
        finally:
            self.run_folder.release()

    def train_loop(self) -> Path:
        from xformer_cli.progress import TrainProgress

        self.log(
            f"model: {count_parameters(self.model):,} parameters, {self.model_config.vocab_size} pieces; device {self.device}"
            + (f"; {self.dist.world} processes" if self.dist.world > 1 else "")
        )
        progress = TrainProgress(self.console if self.dist.main else None, self.cfg.max_steps, self.step)
        window_tokens, window_loss, window_start = 0, 0.0, time.perf_counter()
        try:
            with progress:
                while (reason := self.should_stop()) is None:
                    batches = self.epoch_batches()
                    if self.batch_index >= len(batches):
                        self.epoch, self.batch_index = self.epoch + 1, 0
                        continue
                    group = batches[self.batch_index : self.batch_index + self.cfg.accumulate]
                    started = time.perf_counter()
                    loss, tokens = self.train_step(group)
                    self.batch_index += len(group)
                    self.elapsed += time.perf_counter() - started
                    window_tokens += tokens
                    window_loss += loss * tokens
                    if self.step % self.cfg.log_every == 0:
                        now = time.perf_counter()
                        record = {
                            "step": self.step,
                            "epoch": self.epoch + 1,
                            "loss": round(window_loss / max(window_tokens, 1), 5),
                            "lr": inverse_sqrt_lr(self.step, self.cfg.lr, self.cfg.warmup),
                            "tokens_per_s": round(window_tokens * self.dist.world / (now - window_start), 1),
                            "elapsed": round(self.elapsed, 1),
                        }
                        self.run_folder.metrics(record)
                        progress.update(record)
                        window_tokens, window_loss, window_start = 0, 0.0, now
                    if self.cfg.valid_every and self.step % self.cfg.valid_every == 0:
                        self.validate()
                    if self.step % self.cfg.save_every == 0 and self.dist.main:
                        self.save()
        except KeyboardInterrupt:
            if self.dist.main:
                path = self.save()
                raise Interrupted(f"interrupted at step {self.step}; checkpoint saved to {path} (continue with --resume)") from None
            raise
        self.log(f"stopped at step {self.step}: {reason}")
        if self.valid and (not self.last_valid or self.last_valid["step"] != self.step):
            self.validate()
        if not self.dist.main:
            return self.run_folder.out / "bundle"
        if not self.run_folder.checkpoint_paths() or self.run_folder.checkpoint_paths()[-1] != self.run_folder.checkpoint_path(self.step):
            self.save()
        return self.finish()

    # ----- validation -----
    def validate(self) -> None:
        """Valid loss (teacher forcing, no smoothing) and greedy BLEU; keep the best weights."""
        if self.valid is None:
            return
        if self.dist.main:
            record = {"step": self.step, **self.evaluate_valid()}
            self.last_valid = record
            self.run_folder.metrics(record)
            self.log(f"step {self.step}: valid loss {record['valid_loss']:.3f}, valid BLEU {record['valid_bleu']:.2f}")
            if record["valid_bleu"] > self.best_bleu:
                self.best_bleu, self.bad_validations = record["valid_bleu"], 0
                from safetensors.torch import save_file

                state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
                meta = {"step": str(self.step), "bleu": str(record["valid_bleu"]), "signature": record["bleu_signature"]}
                atomic_write(self.run_folder.out / "best.safetensors", lambda tmp: save_file(state, tmp, metadata=meta))
            else:
                self.bad_validations += 1
        if self.dist.world > 1:
            import torch.distributed as dist

            flags = torch.tensor([self.best_bleu, float(self.bad_validations)])
            dist.broadcast(flags, 0)
            self.best_bleu, self.bad_validations = float(flags[0]), int(flags[1])

    @torch.no_grad()
    def evaluate_valid(self) -> dict[str, Any]:
        from xformer_cli.metrics import corpus_bleu

        c = self.model_config
        src, tgt = self.valid
        self.model.eval()
        src_ids, tgt_ids = self.tokenizer.encode(src), self.tokenizer.encode(tgt)
        limit = c.max_pieces
        pairs = [(s[:limit], t[:limit]) for s, t in zip(src_ids, tgt_ids) if s and t]
        total, tokens = 0.0, 0
        for start in range(0, len(pairs), 64):
            chunk = pairs[start : start + 64]
            batch = collate([p[0] for p in chunk], [p[1] for p in chunk], c.pad_id, c.bos_id, c.eos_id).to(self.device)
            with self.autocast():
                logits = self.model(batch.src, batch.tgt_in)
            total += float(token_loss(logits, batch.tgt_out, c.pad_id))
            tokens += batch.n_tokens
        n = self.valid_bleu_size()
        translator = Translator(Bundle(self.model, self.tokenizer, DecodeConfig(beam_size=1)), self.device)
        hyps = translator.translate(src[:n])
        bleu = corpus_bleu(hyps, [tgt[:n]])
        self.model.train()
        return {"valid_loss": round(total / max(tokens, 1), 5), "valid_bleu": round(bleu.score, 2), "bleu_signature": bleu.signature}

    def valid_bleu_size(self) -> int:
        """How many valid sentences (the first ones) greedy BLEU is computed on: 0 in the recipe means all."""
        total = len(self.valid[0])
        return min(self.cfg.valid_bleu_sentences or total, total)

    def valid_bleu_scope(self) -> str:
        """The model card's sentence on what validation BLEU was computed over ("" without a valid set)."""
        if not self.valid:
            return ""
        n, total = self.valid_bleu_size(), len(self.valid[0])
        which = f"all {total}" if n == total else f"the first {n} of {total}"
        return f" Validation BLEU is greedy on {which} valid sentences."

    # ----- the end -----
    def final_weights(self) -> tuple[dict[str, torch.Tensor], str]:
        if self.cfg.average_last > 1:
            paths = self.run_folder.checkpoint_paths()[-self.cfg.average_last :]
            states = [model_state(load_checkpoint(p)[0]) for p in paths]
            return average_states(states), f"average of the last {len(paths)} checkpoints ({', '.join(p.stem for p in paths)})"
        best = self.run_folder.out / "best.safetensors"
        if best.exists():
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(str(best), framework="pt") as f:
                meta = f.metadata()
            return load_file(str(best)), f"best validation BLEU {meta['bleu']} at step {meta['step']}"
        return self.model.state_dict(), f"last step ({self.step})"

    def finish(self) -> Path:
        state, which = self.final_weights()
        self.model.load_state_dict(state)
        bundle_dir = self.run_folder.out / "bundle"
        bundle = Bundle(self.model.cpu().eval(), self.tokenizer, self.decode_config, self.cfg.src_lang, self.cfg.tgt_lang,
                        extra={"training": {"steps": self.step, "weights": which, "train_pairs": len(self.corpus.src_ids)}})
        scores = []
        if self.best_bleu >= 0 and self.last_valid:
            scores.append(Score("valid", "bleu", self.best_bleu, self.last_valid.get("bleu_signature", "")))
        card = render_card(
            CardInfo(
                name=self.run_folder.out.name,
                license=self.cfg.license,
                datasets=list(self.cfg.datasets),
                src_lang=self.cfg.src_lang,
                tgt_lang=self.cfg.tgt_lang,
                parameters=count_parameters(self.model),
                data=f"- source: `{self.cfg.src}`\n- target: `{self.cfg.tgt}`\n- {len(self.corpus.src_ids)} pairs after filtering",
                training=f"{self.step} steps, {self.elapsed / 60:.1f} minutes; weights: {which}.{self.valid_bleu_scope()}",
                recipe=self.recipe_text or json.dumps({"model": to_dict(self.model_config), "train": to_dict(self.cfg)}, indent=2),
                scores=scores,
            )
        )
        save_bundle(bundle, bundle_dir, card=card)
        from xformer_cli.plot import plot_curves

        plot_curves(self.run_folder.out / "metrics.jsonl", self.run_folder.out / "curves.png", self.log)
        self.log(f"bundle written to {bundle_dir} ({which})")
        return bundle_dir

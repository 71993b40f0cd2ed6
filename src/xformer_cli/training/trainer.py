"""The training loop: label-smoothed cross-entropy, Adam with inverse-square-root warmup,
token-budget batches with gradient accumulation, exact resume, Ctrl-C safety and DDP.

Around the loop, each in its own room: the device and the process group (`distributed.py`), the
data (`run_data.py`, `run_tokenizer.py`, `corpus_cache.py`), the loss and its backward pass
(`loss.py`), the run folder with its lock, checkpoints and metrics (`run_folder.py`,
`checkpoint.py`), validation with the best weights and patience (`validation.py`), and the
final bundle with its model card (`final_bundle.py`).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xformer_cli.bundles.bundle import Bundle, load_bundle, with_tag_piece
from xformer_cli.bundles.card import Score
from xformer_cli.config import DecodeConfig, TrainConfig, to_dict
from xformer_cli.errors import Interrupted, RunError
from xformer_cli.model.config import ModelConfig
from xformer_cli.model.transformer import Transformer, build_model, count_parameters
from xformer_cli.text.tokenizer import TAG_PIECE, Tokenizer
from xformer_cli.training.checkpoint import TrainState, load_checkpoint, model_state, restore_optimizer
from xformer_cli.training.distributed import autocast, half_precision, training_device
from xformer_cli.training.final_bundle import RunInfo, corpus_summary, final_weights, write_run_bundle
from xformer_cli.training.grow import describe, grown_config, grown_state
from xformer_cli.training.loss import GuidedAlignment, backward_accumulated
from xformer_cli.training.run_data import EpochBatches, TrainingData, prepare_training_data
from xformer_cli.training.run_folder import RunFolder
from xformer_cli.training.validation import Validator


def inverse_sqrt_lr(step: int, peak: float, warmup: int) -> float:
    """Linear warmup to `peak` over `warmup` steps, then decay with 1/sqrt(step) (the paper's schedule, rescaled)."""
    step = max(step, 1)
    return peak * min(step / warmup, math.sqrt(warmup / step))


@contextmanager
def sigterm_as_ctrl_c() -> Iterator[None]:
    """Within the block, SIGTERM (what `kill`, systemd and batch schedulers send, and the way to
    stop a job started in the background, where the shell ignores Ctrl-C's SIGINT) acts as
    Ctrl-C. Signal handlers belong to the main thread; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class LogWindow:
    """Target tokens and summed loss since the last log line."""

    tokens: int = 0
    loss: float = 0.0
    alignment: float = 0.0  # the guided-alignment loss, summed
    start: float = field(default_factory=time.perf_counter)

    def add(self, mean_loss: float, tokens: int, alignment: float = 0.0) -> None:
        self.tokens += tokens
        self.loss += mean_loss * tokens
        self.alignment += alignment


@dataclass(frozen=True)
class EpochState:
    """One epoch's data (its own segmentation when sampling subwords) and its batches (this rank's)."""

    epoch: int
    data: TrainingData
    batches: EpochBatches


class Trainer:
    """One training run. `run()` trains until a stop condition and returns the bundle folder."""

    def __init__(
        self,
        model_config: ModelConfig,
        cfg: TrainConfig,
        out: Path,
        resume: bool = False,
        decode: DecodeConfig | None = None,
        recipe_text: str = "",
        console=None,
    ) -> None:
        self.cfg = cfg
        self.decode_config = decode or DecodeConfig()
        self.recipe_text = recipe_text
        self.console = console
        self.device, self.dist = training_device(cfg.device, cfg.threads, cfg.bf16)
        self.run_folder = RunFolder(out, self.dist.main)
        try:
            self.setup(model_config, resume)
        except BaseException:
            self.run_folder.release()
            raise

    def setup(self, model_config: ModelConfig, resume: bool) -> None:
        """Check the folder; prepare the data, the model, the optimizer and validation; restore the
        last checkpoint when resuming."""
        cfg = self.cfg
        start = self.starting_bundle()
        start_state = None
        identity = cfg.init_new_layers == "identity"
        if start is not None:  # fine-tuning: the bundle's architecture, tokenizer and weights, maybe grown
            model_config = grown_config(start.model.config, cfg.init_encoder_layers, cfg.init_decoder_layers)
            start_state = grown_state(start.model.state_dict(), start.model.config, model_config, identity)
        self.run_folder.check_start(to_dict(model_config), resume)
        torch.manual_seed(cfg.seed)
        self.data = prepare_training_data(
            cfg,
            self.run_folder,
            self.dist,
            model_config,
            self.log,
            self.console if self.dist.main else None,
            start.tokenizer if start else None,
        )
        tag_id = self.data.tokenizer.tag_id  # recorded so that search never emits it
        self.model_config = replace(model_config, vocab_size=self.data.tokenizer.vocab_size, tag_id=-1 if tag_id is None else tag_id)
        self.model: Transformer = build_model(self.model_config).to(self.device)
        if start is not None:
            self.model.load_state_dict(start_state)
            self.log(
                f"initialized from {cfg.init_from}; fresh optimizer and learning-rate schedule (peak {cfg.lr:g} after {cfg.warmup} "
                "warmup steps)"
            )
            if model_config != start.model.config:
                self.log(f"grew {cfg.init_from}: {describe(start.model.config, model_config, identity)}")
        self.ddp_model = self.model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.ddp_model = DistributedDataParallel(self.model)
        self.optimizer = self.make_optimizer()
        # float16 (a GPU without bfloat16) needs its loss scaled; elsewhere the scaler passes through.
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=half_precision(self.device, cfg.bf16) == torch.float16)
        self.validator = Validator(self.data.valid, self.model, self.data.tokenizer, cfg, self.device, self.run_folder, self.dist, self.log)
        self.state = TrainState()
        self._epoch: EpochState | None = None  # this epoch's data and batches, made once
        if resume and self.run_folder.checkpoint_paths():
            self.restore(self.run_folder.checkpoint_paths()[-1])
        else:
            self.run_folder.write_run(
                {
                    "model": to_dict(self.model_config),
                    "train": to_dict(cfg),
                    "decode": to_dict(self.decode_config),
                    "corpora": [asdict(s) for s in self.data.stats()],
                }
            )

    def starting_bundle(self) -> Bundle | None:
        """The bundle of --init-from (fine-tuning), grown by the tag piece when a tagged corpus
        needs one it lacks; None for a model trained from scratch."""
        cfg = self.cfg
        start = load_bundle(cfg.init_from) if cfg.init_from else None
        if (
            start is not None
            and any(c.tag for c in cfg.training_corpora())
            and start.tokenizer.tag_id is None
            and isinstance(start.tokenizer, Tokenizer)
        ):
            start = with_tag_piece(start, cfg.seed)  # a bundle from before tagging: grow its vocabulary by the tag
            self.log(
                f"{cfg.init_from} reserves no {TAG_PIECE}: added it as piece {start.tokenizer.tag_id}, with an embedding row of its "
                "own, for the tagged corpora"
            )
        return start

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam with the run's settings; fused, one kernel for all parameters (about 4x faster on CPU)."""
        cfg = self.cfg
        return torch.optim.Adam(
            self.model.parameters(),
            lr=cfg.lr,
            betas=cfg.adam_betas,
            eps=cfg.adam_eps,
            weight_decay=cfg.weight_decay,
            fused=self.device.type in ("cpu", "cuda"),
        )

    def log(self, message: str) -> None:
        if self.dist.main and self.console is not None:
            self.console.print(message, highlight=False)

    # ----- the loop -----
    def run(self) -> Path:
        """Train until a stop condition; returns the bundle folder. Ctrl-C or SIGTERM saves a
        checkpoint first. The folder's lock ends with it."""
        try:
            try:
                with sigterm_as_ctrl_c():
                    reason = self.train_loop()
            except KeyboardInterrupt:
                if self.dist.main:
                    path = self.save()
                    raise Interrupted(
                        f"interrupted at step {self.state.step}; checkpoint saved to {path} (continue with --resume)"
                    ) from None
                raise
            return self.finish(reason)
        finally:
            self.run_folder.release()

    def train_loop(self) -> str:
        """Update until a stop condition; returns why it stopped."""
        from xformer_cli.progress import TrainProgress

        s, cfg = self.state, self.cfg
        dtype = half_precision(self.device, cfg.bf16)
        self.log(
            f"model: {count_parameters(self.model):,} parameters, {self.model_config.vocab_size} pieces; device {self.device}"
            + (f", {str(dtype).removeprefix('torch.')} autocast" if dtype is not None else ", float32")
            + (f"; {self.dist.world} processes" if self.dist.world > 1 else "")
        )
        window = LogWindow()
        with TrainProgress(self.console if self.dist.main else None, cfg.max_steps, s.step) as progress:
            while (reason := self.should_stop()) is None:
                batches = self.epoch_batches()
                if s.batch_index >= len(batches):
                    s.epoch, s.batch_index = s.epoch + 1, 0
                    continue
                group = [batches[k] for k in range(s.batch_index, min(s.batch_index + cfg.accumulate, len(batches)))]
                started = time.perf_counter()
                loss, tokens, alignment = self.train_step(group)
                s.batch_index += len(group)
                s.elapsed += time.perf_counter() - started
                window.add(loss, tokens, alignment)
                if s.step % cfg.log_every == 0:
                    progress.update(self.log_metrics(window))
                    window = LogWindow()
                if cfg.valid_every and s.step % cfg.valid_every == 0:
                    self.validator(s)
                if s.step % cfg.save_every == 0 and self.dist.main:
                    self.save()
        return reason

    def epoch_batches(self) -> EpochBatches:
        """This epoch's batches (this rank's share), made once per epoch, with its data: with
        subword sampling, the epoch's own segmentation (encoded as the epoch starts)."""
        if self._epoch is None or self._epoch.epoch != self.state.epoch:
            self._epoch = None  # the previous epoch's data goes before the next is made
            data = self.data.for_epoch(self.state.epoch, self.dist, self.log)
            batches = data.epoch_batches(self.cfg.batch_tokens, self.cfg.seed, self.state.epoch, self.dist)
            if not len(batches):
                raise RunError(
                    f"epoch {self.state.epoch + 1} has {len(batches.order)} pairs, too few for a batch in each of {self.dist.world} "
                    "processes"
                )
            self._epoch = EpochState(self.state.epoch, data, batches)
        return self._epoch.batches

    def train_step(self, batches: list[np.ndarray]) -> tuple[float, int, float]:
        """One optimizer update over `batches` (each an array of pair ids; gradient accumulation).
        Returns the mean loss, the target tokens and the summed guided-alignment loss."""
        self.ddp_model.train()
        self.optimizer.zero_grad(set_to_none=True)
        data = self._epoch.data if self._epoch is not None else self.data
        guided = GuidedAlignment.of(self.cfg.guided_alignment, self.decode_config.alignment_heads)
        micro = [data.batch(ids, self.model_config, links=guided is not None).to(self.device) for ids in batches]
        total_loss, total_tokens, alignment = backward_accumulated(
            self.ddp_model,
            micro,
            self.model_config.pad_id,
            self.cfg.label_smoothing,
            self.dist,
            lambda: autocast(self.device, self.cfg.bf16),
            self.grad_scaler,
            guided,
        )
        self.grad_scaler.unscale_(self.optimizer)  # true gradients before clipping (a no-op unless float16)
        if self.cfg.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        for param_group in self.optimizer.param_groups:
            param_group["lr"] = inverse_sqrt_lr(self.state.step + 1, self.cfg.lr, self.cfg.warmup)
        self.grad_scaler.step(self.optimizer)  # skips the update if float16 gradients overflowed
        self.grad_scaler.update()
        self.state.step += 1
        return total_loss / max(total_tokens, 1), total_tokens, alignment

    def log_metrics(self, window: LogWindow) -> dict[str, Any]:
        s = self.state
        record = {
            "step": s.step,
            "epoch": s.epoch + 1,
            "loss": round(window.loss / max(window.tokens, 1), 5),
            **({"alignment_loss": round(window.alignment / max(window.tokens, 1), 5)} if self.cfg.guided_alignment > 0 else {}),
            "lr": inverse_sqrt_lr(s.step, self.cfg.lr, self.cfg.warmup),
            "tokens_per_s": round(window.tokens * self.dist.world / (time.perf_counter() - window.start), 1),
            "elapsed": round(s.elapsed, 1),
        }
        self.run_folder.metrics(record)
        return record

    def should_stop(self) -> str | None:
        """Why to stop now, or None. Under DDP all processes stop together (their clocks differ)."""
        reason = self.stop_reason()
        if self.dist.any(reason is not None) and reason is None:
            reason = "another process reached its limit"
        return reason

    def stop_reason(self) -> str | None:
        s, cfg = self.state, self.cfg
        if s.step >= cfg.max_steps:
            return f"reached --max-steps {cfg.max_steps}"
        if cfg.max_epochs and s.epoch >= cfg.max_epochs:
            return f"reached --max-epochs {cfg.max_epochs}"
        if cfg.max_time and s.elapsed >= cfg.max_time:
            return f"reached --max-time {cfg.max_time:g} s"
        if cfg.patience and s.bad_validations >= cfg.patience:
            return f"no better validation BLEU in {cfg.patience} validations"
        return None

    # ----- checkpoints -----
    def save(self) -> Path:
        self.state.grad_scaler = self.grad_scaler.state_dict()
        return self.run_folder.save(
            self.state, self.model.state_dict(), self.optimizer, keep=max(self.cfg.keep_last, self.cfg.average_last)
        )

    def restore(self, path: Path) -> None:
        tensors, meta = load_checkpoint(path)
        self.model.load_state_dict(model_state(tensors), strict=True)
        restore_optimizer(
            self.optimizer, {k: v.to(self.device) if k.split(".")[-1] != "step" else v for k, v in tensors.items()}, meta["optimizer"]
        )
        torch.set_rng_state(tensors["rng.torch"])
        if "rng.cuda" in tensors and self.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        self.state = TrainState.from_meta(meta)
        if self.state.grad_scaler and self.grad_scaler.is_enabled():
            self.grad_scaler.load_state_dict(self.state.grad_scaler)
        self.run_folder.truncate_metrics(self.state.step)
        valid = [r for r in self.run_folder.records() if "valid_bleu" in r and r["step"] == self.state.step]
        self.validator.last = valid[-1] if valid else {}  # no second validation of the same step
        self.log(f"resumed from {path.name}: step {self.state.step}, epoch {self.state.epoch + 1}, batch {self.state.batch_index}")

    # ----- the end -----
    def finish(self, reason: str) -> Path:
        """Validate the last step, checkpoint it, and write the bundle (rank 0)."""
        s = self.state
        self.log(f"stopped at step {s.step}: {reason}")
        if self.data.valid and not self.validator.done_at(s.step):
            self.validator(s)
        bundle_dir = self.run_folder.out / "bundle"
        if not self.dist.main:
            return bundle_dir
        if self.run_folder.checkpoint_paths()[-1:] != [self.run_folder.checkpoint_path(s.step)]:
            self.save()
        weights, which = final_weights(self.run_folder, self.cfg.average_last, self.model.state_dict(), s.step)
        self.model.load_state_dict(weights)
        last = self.validator.last
        scores = [Score("valid", "bleu", s.best_bleu, last.get("bleu_signature", ""))] if s.best_bleu >= 0 and last else []
        info = RunInfo(self.model_config, self.cfg, self.decode_config, self.data.tokenizer, self.data.stats())
        write_run_bundle(
            bundle_dir,
            self.run_folder.out.name,
            self.model,
            info,
            training=f"{s.step} steps, {s.elapsed / 60:.1f} minutes; weights: {which}.{self.validator.scope()}",
            recipe=self.recipe_text,
            scores=scores,
            extra={
                "steps": s.step,
                "seconds": round(s.elapsed),
                "weights": which,
                "train_pairs": self.data.pairs,
                "corpora": [corpus_summary(c) for c in self.data.stats()],
            },
        )
        from xformer_cli.training.curves import plot_curves

        plot_curves(self.run_folder.out / "metrics.jsonl", self.run_folder.out / "curves.png", self.log)
        self.log(f"bundle written to {bundle_dir} ({which})")
        self.data.remove_sampled(range(s.epoch + 1))  # a finished run leaves no sampled segmentation in the cache
        return bundle_dir

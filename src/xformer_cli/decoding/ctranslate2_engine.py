"""`--engine ctranslate2`: the search done by CTranslate2 on the bundle exported for it, everything
around it (sentence splitting, spans, batching order, output) xformer's own.

`Translator` hands this engine the piece ids of every segment at once; CTranslate2 sorts and
batches them itself (by `batch_tokens`, or `batch_size` sentences where that is set) and runs
`workers` batches at once (its inter_threads) on threads // workers threads each. The bundle is
exported once (`xformer export`, float32) into a cache folder keyed by the bundle's contents;
`--quantize int8` becomes CTranslate2's int8 compute type on load.

Two differences from the own engine, both at the edges: CTranslate2 caps all outputs of a call
at one length (the longest cap of the call), so an output that runs past its own cap (`max_len_a`
* source + `max_len_b`) is cut there afterwards, as the own engine would have ended it; and its
scores are CTranslate2's (length-normalised log-probabilities, the same formula). An imported
model's transformers rules (`early_stopping` false, `renormalize`, `banned_ids`) are the own
engine's only: CTranslate2 searches by its own rules, with <unk> allowed where the model allows it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from xformer_cli.bundles.bundle import Bundle
from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.penalties import max_output_length
from xformer_cli.decoding.search import Hypothesis
from xformer_cli.errors import ConfigError

ENGINES = ("xformer", "ctranslate2")


def cache_folder(bundle: Bundle) -> Path:
    """Where the bundle's CTranslate2 export is kept: under $XDG_CACHE_HOME (or ~/.cache)/xformer,
    named by a digest of the bundle's weights and tokenizer, so that a changed bundle is exported again."""
    digest = hashlib.sha256()
    for name, data in sorted(bundle.tokenizer.files().items()):
        digest.update(name.encode() + data)
    for name, tensor in sorted(bundle.model.state_dict().items()):
        digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "xformer" / "ctranslate2" / digest.hexdigest()[:24]


class CTranslate2Engine:
    """A bundle's model in CTranslate2, searching lists of piece ids as `decoding.search` does."""

    def __init__(self, bundle: Bundle, workers: int, threads: int, compute_type: str = "default") -> None:
        try:
            import ctranslate2
        except ImportError:
            raise ConfigError("--engine ctranslate2 needs the ctranslate2 package: pip install 'xformer-cli[ctranslate2]'") from None
        from xformer_cli.bundles.ctranslate2_export import export_ctranslate2

        folder = cache_folder(bundle)
        if not (folder / "model.bin").exists():
            try:
                export_ctranslate2(bundle, folder)
            except ConfigError:
                if not (folder / "model.bin").exists():  # not another process that exported it meanwhile
                    raise
        self.bundle = bundle
        self.model = ctranslate2.Translator(
            str(folder), device="cpu", compute_type=compute_type, inter_threads=workers, intra_threads=max(1, threads // workers)
        )

    def search(self, segments: Sequence[list[int]], config: DecodeConfig) -> list[list[Hypothesis]]:
        """The config's n best hypotheses of every segment, in order."""
        tokenizer, limit = self.bundle.tokenizer, self.bundle.model.config.max_pieces
        caps = [max_output_length(len(s), config.max_len_a, config.max_len_b, limit) - 1 for s in segments]  # pieces before EOS
        options = dict(
            beam_size=config.beam_size,
            num_hypotheses=config.n_best,
            length_penalty=config.length_penalty,
            max_decoding_length=max(caps, default=1),
            min_decoding_length=0,
            disable_unk=config.ban_unk,
            no_repeat_ngram_size=config.no_repeat_ngram,
            return_scores=True,
            max_batch_size=config.batch_size or config.batch_tokens,
            batch_type="examples" if config.batch_size else "tokens",
        )
        if config.sample:
            options |= dict(sampling_topk=config.sample_topk or 0, sampling_temperature=config.temperature, beam_size=1)
        results = self.model.translate_batch([tokenizer.pieces(s) for s in segments], **options)
        return [
            [Hypothesis(tuple(tokenizer.piece_ids(h)[:cap]), float(score), float(score)) for h, score in zip(r.hypotheses, r.scores)]
            for r, cap in zip(results, caps)
        ]

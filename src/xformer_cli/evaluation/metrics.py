"""sacreBLEU metrics: BLEU, chrF and TER, each with its signature."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricResult:
    name: str  # bleu | chrf | ter
    score: float
    signature: str
    text: str  # sacrebleu's own one-line rendering, e.g. "BLEU = 34.12 65.1/..."


def _score(metric, hyps: Sequence[str], refs: Sequence[Sequence[str]], name: str) -> MetricResult:
    result = metric.corpus_score(list(hyps), [list(r) for r in refs])
    return MetricResult(name, result.score, str(metric.get_signature()), str(result))


def corpus_bleu(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> MetricResult:
    """Corpus BLEU with sacreBLEU's defaults (13a tokenization, exp smoothing), as the `sacrebleu` command."""
    from sacrebleu.metrics import BLEU

    return _score(BLEU(), hyps, refs, "bleu")


def corpus_chrf(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> MetricResult:
    from sacrebleu.metrics import CHRF

    return _score(CHRF(), hyps, refs, "chrf")


def corpus_ter(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> MetricResult:
    from sacrebleu.metrics import TER

    return _score(TER(), hyps, refs, "ter")


METRICS = {"bleu": corpus_bleu, "chrf": corpus_chrf, "ter": corpus_ter}

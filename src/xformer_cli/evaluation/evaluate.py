"""A model on a test set: translate it (or take translations made elsewhere) and score them
with sacreBLEU, exactly as the `sacrebleu` command would."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from xformer_cli.errors import DataError
from xformer_cli.evaluation.metrics import METRICS, MetricResult
from xformer_cli.evaluation.test_sets import TestSet


@dataclass
class Report:
    model: str
    testset: str
    sentences: int
    results: list[MetricResult]
    decoding: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def sentences_per_second(self) -> float | None:
        return self.sentences / self.seconds if self.seconds else None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "testset": self.testset,
            "sentences": self.sentences,
            **{r.name: round(r.score, 4) for r in self.results},
            "signatures": {r.name: r.signature for r in self.results},
            "decoding": self.decoding,
            "seconds": round(self.seconds, 3),
            "sentences_per_second": round(self.sentences_per_second, 2) if self.sentences_per_second else None,
        }


def score(hyps: Sequence[str], refs: Sequence[Sequence[str]], metrics: Sequence[str]) -> list[MetricResult]:
    """Each metric of hypotheses against reference streams (counts must match)."""
    if any(len(r) != len(hyps) for r in refs):
        raise DataError(f"line counts differ: {len(hyps)} hypotheses, {', '.join(str(len(r)) for r in refs)} references")
    return [METRICS[m](hyps, refs) for m in metrics]


def evaluate_model(translator, testset: TestSet, config, metrics: Sequence[str], model_name: str) -> tuple[Report, list[str]]:
    """Translate the test set's sources with `translator` and score them."""
    started = time.perf_counter()
    hyps = [nbest[0].text for nbest in translator.translate_nbest(testset.sources, config)]
    seconds = time.perf_counter() - started
    from xformer_cli.config import to_dict

    decoding = {k: v for k, v in to_dict(config).items() if k != "n_best"}
    return Report(model_name, testset.name, len(hyps), score(hyps, testset.references, metrics), decoding, seconds), hyps

"""`xformer evaluate`: translate a test set (or take translations made elsewhere) and score them
with sacreBLEU, exactly as the `sacrebleu` command would."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xformer_cli.batching import read_lines
from xformer_cli.errors import DataError
from xformer_cli.evaluation.metrics import METRICS, MetricResult


@dataclass
class TestSet:
    name: str
    sources: list[str] | None  # None when only hypotheses are scored
    references: list[list[str]]  # one list per reference stream


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


def read_nonempty(path: str | Path, what: str) -> list[str]:
    lines = read_lines(path)
    if not lines:
        raise DataError(f"empty {what} file: {path}")
    return lines


def load_testset(name: str, sources: str | Path | None, references: Sequence[str | Path]) -> TestSet:
    """Source and reference lines, with every count checked."""
    if not references:
        raise DataError("no references: give --ref or --testset")
    refs = [read_nonempty(r, "reference") for r in references]
    src = read_nonempty(sources, "source") if sources is not None else None
    counts = {str(p): len(r) for p, r in zip(references, refs)}
    if src is not None:
        counts = {str(sources): len(src), **counts}
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{n} in {p}" for p, n in counts.items())
        raise DataError(f"line counts differ: {detail}")
    return TestSet(name, src, refs)


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

"""Named test sets (`--testset wmt14/full`) and reading a test set's sources and references."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from xformer_cli.errors import DataError
from xformer_cli.text.files import read_lines

# Named test sets: name -> (source, reference) paths relative to a data folder laid out like
# shared/data. The shipped Tatoeba test split is found inside the package without a data folder.
STANDARD_TESTSETS = {
    "tatoeba/test": ("tatoeba/test.de", "tatoeba/test.en"),
    "tatoeba/valid": ("tatoeba/valid.de", "tatoeba/valid.en"),
    "multi30k/test2016": ("multi30k/test2016.de", "multi30k/test2016.en"),
    "multi30k/test2017": ("multi30k/test2017.de", "multi30k/test2017.en"),
    "multi30k/test2018": ("multi30k/test2018.de", "multi30k/test2018.en"),
    "multi30k/mscoco2017": ("multi30k/test2017mscoco.de", "multi30k/test2017mscoco.en"),
    "multi30k/valid": ("multi30k/valid.de", "multi30k/valid.en"),
    **{f"wmt{y}": (f"wmt/newstest20{y}.de", f"wmt/newstest20{y}.en") for y in (13, 15, 16, 17, 18, 19, 20)},
    "wmt14/full": ("wmt/newstest2014.de", "wmt/newstest2014.en"),
}
DATA_DIR_ENV = "XFORMER_DATA_DIR"


def shipped_data_dir() -> Path:
    """The corpus that ships in models/corpus (the Tatoeba splits)."""
    from xformer_cli.shipped import models_dir

    return models_dir() / "corpus"


def data_dirs(data_dir: str | None) -> list[Path]:
    dirs = [Path(d) for d in (data_dir, os.environ.get(DATA_DIR_ENV)) if d]
    return [*dirs, shipped_data_dir()]


def available_testsets(data_dir: str | None = None) -> dict[str, tuple[Path, Path]]:
    """Every named test set whose files exist, in the data folders (first match wins)."""
    found: dict[str, tuple[Path, Path]] = {}
    for name, (src, ref) in STANDARD_TESTSETS.items():
        for folder in data_dirs(data_dir):
            for s, r in ((folder / src, folder / ref), (folder / (src + ".gz"), folder / (ref + ".gz"))):
                if s.exists() and r.exists():
                    found.setdefault(name, (s, r))
    return found


def find_testset(name: str, data_dir: str | None = None) -> tuple[Path, Path]:
    found = available_testsets(data_dir)
    if name not in found:
        known = ", ".join(found) or "none"
        raise DataError(f"unknown test set {name!r} (available: {known}; set --data-dir or {DATA_DIR_ENV} for more)")
    return found[name]


@dataclass
class TestSet:
    name: str
    sources: list[str] | None  # None when only hypotheses are scored
    references: list[list[str]]  # one list per reference stream


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

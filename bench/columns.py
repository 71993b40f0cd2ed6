"""What the translation benchmarks share (speed/translate.py, speed/translate_cores.py,
speed/decode_profile.py, the peers' engine scripts, and the repeated-word counts of
speed/newstest_side_by_side.py and quality/no_repeat_ngram.py): the three decoding columns (greedy
batch 30, beam 5 batch 30, beam 5 one sentence at a time), the test set they run on and the CPU's
name. Standard library only, so each engine's script can import it from its own environment:
a script in a subfolder puts bench/ first on sys.path and imports `columns`."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

# (name, beam size, sentences per batch): greedy and beam 5 with batches of 30, beam 5 one sentence at a time
COLUMNS = (("greedy_batch30", 1, 30), ("beam5_batch30", 5, 30), ("beam5_batch1", 5, 1))
DATA_DIR = str(Path(__file__).resolve().parents[2] / "shared" / "data")


def test2016(data_dir: str) -> tuple[list[str], list[str]]:
    """Multi30k test2016: 1,000 German sources and their English references."""
    data = Path(data_dir) / "multi30k"
    return tuple((data / f"test2016.{lang}").read_text(encoding="utf-8").splitlines() for lang in ("de", "en"))


REPEATED_WORD = re.compile(r"\b(\w+) \1\b", re.IGNORECASE)


def repeated_word_lines(lines: list[str]) -> int:
    """Lines holding a word repeated right after itself ("federal federal"; case-insensitive)."""
    return sum(bool(REPEATED_WORD.search(line)) for line in lines)


def cpu_name() -> str:
    """The CPU's model name, as /proc/cpuinfo gives it."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def baseline_arguments(description: str) -> argparse.ArgumentParser:
    """The options of a peer engine's script: the bundle to convert, the data folder, the threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, help="an xformer bundle folder")
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--threads", type=int, default=2)
    return parser

"""What the three translation benchmarks share (translate_speed, opennmt_baseline,
ctranslate2_baseline): issue 4's columns and the test set they run on. Standard library only,
so each engine's script can import it from its own environment."""

from __future__ import annotations

import argparse
from pathlib import Path

# (name, beam size, sentences per batch): greedy and beam 5 with batches of 30, beam 5 one sentence at a time
COLUMNS = (("greedy_batch30", 1, 30), ("beam5_batch30", 5, 30), ("beam5_batch1", 5, 1))
DATA_DIR = str(Path(__file__).resolve().parents[2] / "shared" / "data")


def test2016(data_dir: str) -> tuple[list[str], list[str]]:
    """Multi30k test2016: 1,000 German sources and their English references."""
    data = Path(data_dir) / "multi30k"
    return tuple((data / f"test2016.{lang}").read_text(encoding="utf-8").splitlines() for lang in ("de", "en"))


def baseline_arguments(description: str) -> argparse.ArgumentParser:
    """The options of a baseline script: the bundle to convert, the data folder, the threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, help="an xformer bundle folder")
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--threads", type=int, default=2)
    return parser

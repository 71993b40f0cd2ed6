"""scripts/teacher_gpu.sh rehearsed on the CPU: the teacher trains, translates the training
sources in shards, and the distilled pairs come out line by line beside the logs."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "teacher_gpu.sh"


def test_the_rehearsal_writes_distilled_pairs_of_real_sources(tiny_corpus, tmp_path, script):
    src, tgt = tiny_corpus
    out = tmp_path / "out"
    env = os.environ | {
        "REHEARSAL": "1",
        "PYTHON": sys.executable,
        "RUNS": str(tmp_path / "runs"),
        "OUT": str(out),
        "TRAIN_SRC": str(src),
        "TRAIN_TGT": str(tgt),
        "VALID_SRC": str(src),
        "VALID_TGT": str(tgt),
        "TRAIN_SECONDS": "3",
        "DISTILL_LINES": "200",
    }
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    german = gzip.open(out / "distilled.de.gz", "rt", encoding="utf-8").read().splitlines()
    english = gzip.open(out / "distilled.en.gz", "rt", encoding="utf-8").read().splitlines()
    # The teacher trains for 3 seconds, so its English differs from CPU to CPU: what is checked is
    # that all 200 sources were translated, and that the distilled pairs are exactly the shards'
    # pairs whose English looks English (scripts/backtranslate.py's filter), in order.
    shards = sorted((tmp_path / "runs" / "distill").glob("shard-*.en"))
    pairs = [p for shard in shards for p in zip(*(shard.with_suffix(f".{lang}").read_text().splitlines() for lang in ("de", "en")))]
    assert len(pairs) == 200
    looks_english = script("backtranslate").looks_english
    assert list(zip(german, english)) == [(de, en) for de, en in pairs if looks_english(en)]
    assert set(german) <= set(src.read_text(encoding="utf-8").splitlines())  # real sources, not the teacher's
    assert "bundle written to" in (out / "train.log").read_text() and "shard 2/2" in (out / "distill.log").read_text()


def test_missing_data_is_named_before_anything_runs(tmp_path):
    env = os.environ | {"REHEARSAL": "1", "PYTHON": sys.executable, "RUNS": str(tmp_path), "TRAIN_SRC": str(tmp_path / "none.de")}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "none.de is missing" in done.stderr

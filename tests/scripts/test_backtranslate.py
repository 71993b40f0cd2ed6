"""scripts/backtranslate.py: shards that survive a stop, in either direction, collected into a corpus."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "backtranslate.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


@pytest.fixture
def forward(trained_bundle_dir, tiny_corpus, tmp_path):
    """German lines forward-translated by the tiny German->English bundle, in shards of 10."""
    mono = tmp_path / "mono.de"
    mono.write_text("".join(tiny_corpus[0].read_text(encoding="utf-8").splitlines(keepends=True)[:25]), encoding="utf-8")
    out = tmp_path / "ft"
    args = ["--model", str(trained_bundle_dir), "--mono", str(mono), "--src-lang", "de", "--tgt-lang", "en"]
    args += ["--out", str(out), "--shard-lines", "10", "--search", "greedy", "--workers", "1"]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    return mono, out, args


def test_forward_translation_writes_one_translation_per_line_in_shards(forward):
    mono, out, _ = forward
    shards = sorted(out.glob("shard-*.de"))
    assert [p.name for p in shards] == ["shard-00000.de", "shard-00001.de", "shard-00002.de"]
    sources = [p.read_text(encoding="utf-8").splitlines() for p in shards]
    translations = [p.with_suffix(".en").read_text(encoding="utf-8").splitlines() for p in shards]
    assert [len(s) for s in sources] == [len(t) for t in translations] == [10, 10, 5]
    assert sorted(sum(sources, [])) == sorted(mono.read_text(encoding="utf-8").splitlines())  # each line once, shuffled


def test_a_rerun_translates_only_the_shards_without_a_translation(forward):
    _, out, args = forward
    kept = out / "shard-00000.en"
    kept_mtime = kept.stat().st_mtime_ns
    lost = out / "shard-00001.en"
    before = lost.read_text(encoding="utf-8")
    lost.unlink()
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert "shard 2/3" in result.stdout and "shard 1/3" not in result.stdout and "shard 3/3" not in result.stdout
    assert lost.read_text(encoding="utf-8") == before  # greedy: the same translation again
    assert kept.stat().st_mtime_ns == kept_mtime


def test_collect_writes_the_pairs_whose_english_looks_english(forward, script):
    _, out, _ = forward
    result = run("--out", str(out), "--collect", "--src-lang", "de", "--tgt-lang", "en")
    assert result.returncode == 0, result.stderr
    read = {lang: gzip.open(out / f"bt.{lang}.gz", "rt", encoding="utf-8").read().splitlines() for lang in ("de", "en")}
    shards = sorted(out.glob("shard-*.de"))
    expected = script("backtranslate").finished_pairs(shards, ("de", "en"))
    assert read == {"de": [p["de"] for p in expected], "en": [p["en"] for p in expected]}
    assert expected, "the tiny model's English passes the check"


def test_the_english_check_reads_the_english_side_whichever_it_is(tmp_path, script):
    (tmp_path / "shard-00000.en").write_text("A fine day.\nDzień dobry, świecie.\n", encoding="utf-8")
    (tmp_path / "shard-00000.de").write_text("Ein schöner Tag.\nGuten Tag, Welt.\n", encoding="utf-8")
    backtranslate = script("backtranslate")
    for langs in (("en", "de"), ("de", "en")):
        assert backtranslate.finished_pairs([tmp_path / f"shard-00000.{langs[1]}"], langs) == [
            {"en": "A fine day.", "de": "Ein schöner Tag."}
        ]


def test_the_same_language_on_both_sides_is_a_usage_error(tmp_path):
    result = run("--out", str(tmp_path), "--collect", "--src-lang", "de", "--tgt-lang", "de")
    assert result.returncode == 2 and "must differ" in result.stderr

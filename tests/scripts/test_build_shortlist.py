"""scripts/build_shortlist.py: a bundle's lexical shortlist from a word-aligned corpus."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.bundles.shortlist import NONE, SHORTLIST_FILE
from xformer_cli.text.files import read_lines

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_shortlist.py"


def diagonal_links(tmp_path: Path, src: Path, tgt: Path) -> Path:
    """Word i linked to word i: links any corpus can have without an aligner."""
    lines = [" ".join(f"{i}-{i}" for i in range(min(len(s.split()), len(t.split())))) for s, t in zip(read_lines(src), read_lines(tgt))]
    path = tmp_path / "tiny.links"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_counts_are_the_piece_links_of_every_pair(script, trained_bundle_dir):
    build = script("build_shortlist")
    tokenizer = load_bundle(trained_bundle_dir).tokenizer
    vocab = tokenizer.vocab_size
    counts, frequency, linked = build.link_counts(["Tom ist hier."], ["Tom is here."], ["0-0 1-1 2-2"], tokenizer, vocab)
    src, tgt = tokenizer.encode(["Tom ist hier."])[0], tokenizer.encode_target(["Tom is here."])[0]
    assert linked == 1
    assert frequency.tolist() == np.bincount(tgt, minlength=vocab).tolist()
    first_src, first_tgt = tokenizer.pieces(src)[0], tokenizer.pieces(tgt)[0]
    assert first_src == first_tgt == "▁Tom"  # one piece each: linked once to each other
    assert counts[src[0], tgt[0]] == 1
    assert counts.sum() > 0 and counts[src[0]].sum() == 1  # "Tom" is linked to nothing else


def test_the_script_writes_a_shortlist_the_bundle_then_uses(trained_bundle_dir, tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    folder = tmp_path / "bundle"
    shutil.copytree(trained_bundle_dir, folder)
    links = diagonal_links(tmp_path, src, tgt)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--bundle", str(folder), "--src", str(src), "--tgt", str(tgt), "--links", str(links)]
        + ["--per-piece", "6", "--frequent", "30"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "30 frequent pieces" in result.stdout
    bundle = load_bundle(folder)
    table, frequent = bundle.shortlist.table, bundle.shortlist.frequent
    assert table.shape == (bundle.model.config.vocab_size, 6) and len(frequent) == 30
    assert table[:, 0].tolist() == list(range(len(table)))  # each piece may be copied, first
    tom = bundle.tokenizer.encode(["Tom"])[0][0]
    assert tom in table[tom].tolist() and (table[tom] != NONE).sum() >= 2  # itself, and what it was linked to
    assert (folder / SHORTLIST_FILE).exists() and not list(folder.glob("*.partial"))


def test_a_links_file_of_another_length_is_a_one_line_error(trained_bundle_dir, tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    short = tmp_path / "short.links"
    short.write_text("0-0\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--bundle", str(trained_bundle_dir), "--src", str(src), "--tgt", str(tgt), "--links", str(short)],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0 and "differ in lines" in result.stderr
    assert not (trained_bundle_dir / SHORTLIST_FILE).exists()


def test_a_word_and_its_capitalized_form_count_together(script, trained_bundle_dir):
    build = script("build_shortlist")
    tokenizer = load_bundle(trained_bundle_dir).tokenizer
    partners = build.case_partners(tokenizer, tokenizer.vocab_size)
    tom, lower = tokenizer.sp.PieceToId("▁Tom"), tokenizer.sp.PieceToId("▁tom")
    pieces = tokenizer.pieces(list(range(tokenizer.vocab_size)))
    pairs = [(i, int(p)) for i, p in enumerate(partners) if p >= 0]
    assert pairs and all(pieces[p] == "▁" + pieces[i][1].swapcase() + pieces[i][2:] for i, p in pairs)
    assert all(partners[p] == i for i, p in pairs)  # partners both ways
    assert partners[tom] == (lower if pieces[lower] == "▁tom" else -1)
    counts = np.zeros((2, tokenizer.vocab_size), dtype=np.int64)
    i, p = pairs[0]
    counts[0, i], counts[1, p] = 3, 5
    merged = build.merged_by_case(counts, partners)
    assert merged[0, i] == merged[0, p] == 3 and merged[1, i] == merged[1, p] == 5
    assert merged.sum() == 16  # nothing else moved

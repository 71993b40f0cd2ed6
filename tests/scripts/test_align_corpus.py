"""scripts/align_corpus.py: word links of a corpus by eflomal, both directions joined, one Pharaoh line a pair."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

from xformer_cli.text.files import read_lines
from xformer_cli.training.guided_alignment import parse_links

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "align_corpus.py"


def test_words_split_into_tokens_that_remember_their_word(script):
    align = script("align_corpus")
    assert align.tokens("Am Flughafen, heute.") == (["am", "flughafen", ",", "heute", "."], [0, 1, 1, 2, 2])
    assert align.word_links({(1, 0), (2, 1), (4, 1)}, [0, 1, 1, 2, 2], [0, 1]) == "1-0 1-1 2-1"


def test_grow_diag_final_and_joins_the_two_directions(script):
    align = script("align_corpus")
    forward = {(0, 0), (1, 1), (2, 3), (3, 2)}
    reverse = {(0, 0), (1, 1), (1, 2), (3, 3), (4, 4)}
    # The intersection 0-0, 1-1 grows by union links beside it that align a word not yet aligned:
    # 1-2 (beside 1-1: target 2 new), 2-3 (a corner of 1-2: source 2 new), 3-3 (beside 2-3), 4-4 (a
    # corner of 3-3); 3-2 stays out, both its words being aligned by then, so final-and adds nothing.
    assert align.grow_diag_final_and(forward, reverse) == {(0, 0), (1, 1), (1, 2), (2, 3), (3, 3), (4, 4)}
    # final-and: a link of one direction whose two words nothing else aligns.
    assert align.grow_diag_final_and({(0, 0), (5, 7)}, {(0, 0)}) == {(0, 0), (5, 7)}
    assert align.grow_diag_final_and({(0, 0), (0, 7)}, {(0, 0)}) == {(0, 0)}


def test_the_script_aligns_a_corpus_line_by_line(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    out = tmp_path / "tiny.links.gz"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--src", str(src), "--tgt", str(tgt), "--out", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    with gzip.open(out, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    sources, targets = read_lines(src), read_lines(tgt)
    assert len(lines) == len(sources)
    for line, s, t in zip(lines, sources, targets):
        assert all(i < len(s.split()) and j < len(t.split()) for i, j in parse_links(line))
    # "Tom" is the commonest word on both sides: where both lines have it once, the two are linked.
    both = [
        (s.split(), t.split(), line) for s, t, line in zip(sources, targets, lines) if s.split().count("Tom") == 1 == t.split().count("Tom")
    ]
    linked = sum((words_s.index("Tom"), words_t.index("Tom")) in parse_links(line) for words_s, words_t, line in both)
    assert len(both) > 20 and linked >= 0.9 * len(both)

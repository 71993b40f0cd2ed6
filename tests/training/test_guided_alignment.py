"""Guided alignment: word links read beside a corpus, kept as piece links in its cache entry, and a
loss that trains the alignment heads to follow them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from xformer_cli.batching import collate
from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.cli.app import app
from xformer_cli.decoding.source_attention import Recorder
from xformer_cli.errors import DataError
from xformer_cli.text.files import read_lines
from xformer_cli.training.corpus_cache import cached_corpus, corpus_key, file_digest
from xformer_cli.training.corpus_encoding import CorpusEncoding
from xformer_cli.training.guided_alignment import alignment_loss, alignment_targets, parse_links, piece_links

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("corpus_cache")  # a cache of each test's own (tests/conftest.py)


def diagonal_links(src: Path, tgt: Path, out: Path) -> Path:
    """Word i linked to word i, as far as the shorter line goes: a stand-in for an aligner's file."""
    lines = [" ".join(f"{i}-{i}" for i in range(min(len(s.split()), len(t.split())))) for s, t in zip(read_lines(src), read_lines(tgt))]
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def test_pharaoh_lines_are_read_and_anything_else_is_named():
    assert parse_links("0-0 2-1  1-3\n") == [(0, 0), (2, 1), (1, 3)]
    assert parse_links("") == []
    with pytest.raises(DataError, match=r"links\.txt, line 7: '1:2' is not a word link"):
        parse_links("0-0 1:2", "links.txt, line 7")


def test_word_links_become_links_between_every_piece_of_the_two_words():
    src = ["▁Haus", "▁Tür", "klinke"]  # words 0, 1, 1
    tgt = ["▁the", "▁house", "▁door", "▁hand", "le"]  # words 0, 1, 2, 3, 3
    pairs = piece_links([(0, 1), (1, 2), (1, 3)], src, tgt, src_words=2, tgt_words=4)
    assert sorted(map(tuple, pairs.tolist())) == [(1, 0), (2, 1), (2, 2), (3, 1), (3, 2), (4, 1), (4, 2)]  # (target piece, source piece)
    # Pieces that do not spell the line's words, or a link past its words: no links for the pair.
    assert len(piece_links([(0, 1)], src, tgt, src_words=3, tgt_words=4)) == 0
    assert len(piece_links([(2, 1)], src, tgt, src_words=2, tgt_words=4)) == 0


def test_the_loss_is_the_cross_entropy_of_the_attention_against_uniform_rows_over_the_links():
    links = [np.array([[0, 0], [1, 1], [1, 2]]), np.zeros((0, 2), dtype=np.int64)]
    targets = alignment_targets(links, batch=2, tgt_len=3, src_len=3)  # (B, T, S)
    assert targets[0].tolist() == [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 0.0]]
    assert targets[1].sum() == 0
    attention = torch.tensor([[[0.5, 0.25, 0.25], [0.2, 0.4, 0.4], [1 / 3, 1 / 3, 1 / 3]]] * 2)
    expected = -(math.log(0.5) + 0.5 * math.log(0.4) + 0.5 * math.log(0.4))  # rows without links add nothing
    assert float(alignment_loss(attention, targets)) == pytest.approx(expected, rel=1e-5)
    perfect = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [1.0, 0.0, 0.0]], [[1.0, 0.0, 0.0]] * 3])
    assert float(alignment_loss(perfect, targets)) < float(alignment_loss(attention, targets))


def test_a_corpus_with_links_keeps_each_kept_pairs_piece_links_in_an_entry_of_its_own(tokenizer, tiny_corpus, tmp_path, corpus_cache):
    src, tgt = tiny_corpus
    links = diagonal_links(src, tgt, tmp_path / "tiny.links")
    digests = (file_digest(src), file_digest(tgt))
    plain, linked = CorpusEncoding(tokenizer, 20, 3.0), CorpusEncoding(tokenizer, 20, 3.0, links=str(links))
    assert corpus_key(digests, plain) != corpus_key(digests, linked)
    corpus = cached_corpus(corpus_cache, "tiny", str(src), str(tgt), digests, linked, 1, lambda _: None)
    assert cached_corpus(corpus_cache, "tiny", str(src), str(tgt), digests, plain, 1, lambda _: None).links is None
    kept = [(s, t, line) for s, t, line in zip(read_lines(src), read_lines(tgt), read_lines(links))]
    expected_by_ids = {  # (source ids, -1, target ids) -> (word links, source words, target words)
        (*tokenizer.encode([s])[0], -1, *tokenizer.encode_target([t])[0]): (parse_links(line), len(s.split()), len(t.split()))
        for s, t, line in kept
    }
    linked_pairs = 0
    for i in range(len(corpus)):
        s_ids, t_ids = (list(map(int, a)) for a in corpus.pair(i))
        key = tuple(s_ids) + (-1,) + tuple(t_ids)
        word_links, src_words, tgt_words = expected_by_ids[key]
        expected = piece_links(word_links, tokenizer.pieces(s_ids), tokenizer.pieces(t_ids), src_words, tgt_words)
        assert corpus.pair_links(i).tolist() == expected.tolist()
        linked_pairs += bool(len(expected))
    assert linked_pairs > 0.9 * len(corpus)  # the fixture's words are spelled by their pieces


def test_a_links_file_that_does_not_fit_its_corpus_is_an_error_naming_it(tokenizer, tiny_corpus, tmp_path, corpus_cache):
    src, tgt = tiny_corpus
    digests = (file_digest(src), file_digest(tgt))
    short = tmp_path / "short.links"
    short.write_text("0-0\n" * 10, encoding="utf-8")
    with pytest.raises(DataError, match="short.links has 10 lines, fewer than the corpus"):
        cached_corpus(
            corpus_cache, "tiny", str(src), str(tgt), digests, CorpusEncoding(tokenizer, 20, 3.0, links=str(short)), 1, lambda _: None
        )
    bad = tmp_path / "bad.links"
    bad.write_text("0-0\n" * 4 + "0-0 x\n" + "0-0\n" * 395, encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.links, line 5: 'x' is not a word link"):
        cached_corpus(
            corpus_cache, "tiny", str(src), str(tgt), digests, CorpusEncoding(tokenizer, 20, 3.0, links=str(bad)), 1, lambda _: None
        )
    assert not list((corpus_cache / "corpora").glob("*/meta.json"))  # nothing half-written was kept


def recipe(tmp_path: Path, src: Path, tgt: Path, links: Path, weight: float) -> Path:
    path = tmp_path / f"guided-{weight}.toml"
    path.write_text(
        f"""preset = "tiny"
[model]
vocab_size = 500
[train]
batch_tokens = 600
max_steps = 200
lr = 3e-3
warmup = 20
log_every = 40
valid_every = 0
save_every = 200
threads = 1
seed = 3
guided_alignment = {weight}
[[train.corpora]]
src = "{src}"
tgt = "{tgt}"
alignment = "{links}"
[decode]
alignment_heads = [[1, 0], [1, 1]]
""",
        encoding="utf-8",
    )
    return path


def mean_alignment_loss(bundle_dir: Path, src: Path, tgt: Path, links: Path) -> float:
    """The alignment loss per linked target piece of a trained bundle's alignment heads on the corpus."""
    bundle = load_bundle(bundle_dir)
    model, tok, c = bundle.model.eval(), bundle.tokenizer, bundle.model.config
    s_lines, t_lines, l_lines = read_lines(src)[:200], read_lines(tgt)[:200], read_lines(links)[:200]
    s_ids, t_ids = tok.encode(s_lines), tok.encode_target(t_lines)
    pairs = [
        piece_links(parse_links(li), tok.pieces(s), tok.pieces(t), len(a.split()), len(b.split()))
        for s, t, li, a, b in zip(s_ids, t_ids, l_lines, s_lines, t_lines)
    ]
    batch = collate(s_ids, t_ids, c.pad_id, c.bos_id, c.eos_id)
    targets = alignment_targets(pairs, len(pairs), batch.tgt_out.size(1), batch.src.size(1))
    with torch.no_grad(), Recorder(model, bundle.decode.alignment_heads) as recorder:
        model(batch.src, batch.tgt_in)
        loss = alignment_loss(recorder.read(), targets)
    return float(loss) / float(targets.sum())


def test_guided_alignment_trains_the_alignment_heads_to_follow_the_links(tiny_corpus, tmp_path):
    src, tgt = tiny_corpus
    links = diagonal_links(src, tgt, tmp_path / "tiny.links")
    results = {}
    for weight in (0.0, 1.0):
        out = tmp_path / f"run-{weight}"
        result = runner.invoke(app, ["train", "--config", str(recipe(tmp_path, src, tgt, links, weight)), "--out", str(out)])
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        results[weight] = (records, mean_alignment_loss(out / "bundle", src, tgt, links))
    unguided, guided = results[0.0], results[1.0]
    assert all("alignment_loss" not in r for r in unguided[0])
    logged = [r["alignment_loss"] for r in guided[0] if "alignment_loss" in r]
    assert len(logged) == 5 and logged[-1] < 0.9 * logged[0]  # measured 0.78 (AMD EPYC)
    assert guided[1] < 0.8 * unguided[1]  # the heads follow the links, where unguided heads do not (measured 0.68)

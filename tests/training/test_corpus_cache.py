"""The encoded-corpus cache: built once, reused by content, rebuilt when anything it was made
from changes or when it is damaged, never left half-written."""

import errno
import io
import json
import shutil

import numpy as np
import pytest
from rich.console import Console

from xformer_cli.errors import DataError
from xformer_cli.text.files import read_parallel
from xformer_cli.text.tokenizer import Tokenizer, train_tokenizer
from xformer_cli.training import corpus_encoding
from xformer_cli.training.corpus_cache import cached_corpus, content_key, corpus_key, entry_folder, file_digest, remove_entry
from xformer_cli.training.corpus_encoding import CorpusEncoding, Sampling
from xformer_cli.training.filtering import filter_pairs

MAX_TOKENS, MAX_RATIO = 12, 3.0  # small enough that the tiny corpus loses some pairs to the filter


@pytest.fixture
def encodes(monkeypatch) -> list[int]:
    """Counts Tokenizer.encode calls (the work a cache hit must not do)."""
    calls: list[int] = []
    real = Tokenizer.encode

    def counting(self, texts, threads=1):
        calls.append(len(texts))
        return real(self, texts, threads)

    monkeypatch.setattr(Tokenizer, "encode", counting)
    return calls


def encode(root, src, tgt, tokenizer, logs=None, console=None, tag=None, sampling=None):
    log = logs.append if logs is not None else lambda _: None
    return cached_corpus(
        root,
        "tiny",
        str(src),
        str(tgt),
        (file_digest(src), file_digest(tgt)),
        CorpusEncoding(tokenizer, MAX_TOKENS, MAX_RATIO, tag, sampling),
        2,
        log,
        console,
    )


def entries(root):
    """The folders under corpora/ (entries and any temporary ones), lock files aside."""
    return sorted(p.name for p in (root / "corpora").iterdir() if p.is_dir())


def test_the_cache_holds_exactly_the_filtered_encoded_pairs(tiny_corpus, tokenizer, tmp_path):
    src, tgt = tiny_corpus
    corpus = encode(tmp_path, src, tgt, tokenizer)
    s_ids, t_ids = (tokenizer.encode(lines) for lines in read_parallel(src, tgt))
    keep, report = filter_pairs(np.array([len(s) for s in s_ids]), np.array([len(t) for t in t_ids]), MAX_TOKENS, MAX_RATIO)
    kept = np.flatnonzero(keep)
    assert 0 < len(kept) < len(s_ids)  # the filter did drop pairs, so the test checks it was applied
    assert len(corpus) == len(kept) and corpus.report == report
    for row, i in enumerate(kept):
        s, t = corpus.pair(row)
        assert s.tolist() == s_ids[i] and t.tolist() == t_ids[i]
    assert corpus.src_tokens.dtype == np.uint16 and corpus.src_lengths.tolist() == [len(s_ids[i]) for i in kept]


def test_a_tagged_corpus_has_its_own_entry_with_the_tag_in_front_of_every_source(tiny_corpus, tokenizer, tmp_path, encodes):
    src, tgt = tiny_corpus
    tag = tokenizer.tag_id
    plain = encode(tmp_path, src, tgt, tokenizer)
    encodes.clear()
    tagged = encode(tmp_path, src, tgt, tokenizer, tag=tag)
    assert encodes and tagged.folder != plain.folder  # the tag is part of the key
    s_ids, t_ids = (tokenizer.encode(lines) for lines in read_parallel(src, tgt))
    keep, report = filter_pairs(np.array([len(s) for s in s_ids]), np.array([len(t) for t in t_ids]), MAX_TOKENS, MAX_RATIO, src_extra=1)
    assert report.too_long > plain.report.too_long  # sources of exactly MAX_TOKENS pieces no longer fit
    assert len(tagged) == report.kept
    for row, i in enumerate(np.flatnonzero(keep)):
        s, t = tagged.pair(row)
        assert s.tolist() == [tag, *s_ids[i]] and t.tolist() == t_ids[i]
    assert tagged.src_lengths.max() <= MAX_TOKENS and tagged.src_lengths.tolist() == [len(s_ids[i]) + 1 for i in np.flatnonzero(keep)]
    assert tag not in plain.src_tokens and tag not in plain.tgt_tokens and tag not in tagged.tgt_tokens
    encodes.clear()
    assert encode(tmp_path, src, tgt, tokenizer, tag=tag).folder == tagged.folder and encodes == []  # and is kept


def test_a_second_use_maps_the_cache_without_encoding(tiny_corpus, tokenizer, tmp_path, encodes):
    src, tgt = tiny_corpus
    first = encode(tmp_path, src, tgt, tokenizer)
    assert encodes  # the first use encoded
    encodes.clear()
    logs = []
    second = encode(tmp_path, src, tgt, tokenizer, logs)
    assert encodes == [] and "encoded before" in logs[0]
    assert second.folder == first.folder and isinstance(second.src_tokens, np.memmap)
    assert np.array_equal(second.tgt_tokens, first.tgt_tokens)


def test_the_key_is_the_content_not_the_file_name(tiny_corpus, tokenizer, tmp_path, encodes):
    src, tgt = tiny_corpus
    first = encode(tmp_path / "cache", src, tgt, tokenizer)
    copies = [shutil.copy(p, tmp_path / f"renamed{p.suffix}") for p in (src, tgt)]
    encodes.clear()
    assert encode(tmp_path / "cache", *copies, tokenizer).folder == first.folder and encodes == []
    changed = tmp_path / "renamed.en"
    changed.write_text(changed.read_text().replace("Tom", "Tim", 1))  # one word of one line
    rebuilt = encode(tmp_path / "cache", copies[0], changed, tokenizer)
    assert encodes and rebuilt.folder != first.folder
    assert len(entries(tmp_path / "cache")) == 2


def test_another_tokenizer_gets_its_own_entry(tiny_corpus, tokenizer, tmp_path, encodes):
    src, tgt = tiny_corpus
    first = encode(tmp_path, src, tgt, tokenizer)
    other = train_tokenizer([*src.read_text().splitlines(), *tgt.read_text().splitlines()], vocab_size=500)
    encodes.clear()
    second = encode(tmp_path, src, tgt, other)
    assert encodes and second.folder != first.folder
    assert len(second.src_tokens) != len(first.src_tokens)  # other pieces


def damage_truncated(folder):
    path = folder / "tgt.tokens"
    path.write_bytes(path.read_bytes()[:-6])


def damage_half_written(folder):
    (folder / "meta.json").unlink()  # meta.json is written last: a run that died before it


def damage_foreign(folder):
    meta = json.loads((folder / "meta.json").read_text())
    meta["key"] = "0" * 64  # an entry made for other data, copied here
    (folder / "meta.json").write_text(json.dumps(meta))


def damage_inconsistent(folder):
    lengths = np.fromfile(folder / "src.lengths", dtype=np.uint16)
    lengths[0] += 1  # same size, but the lengths no longer add up to the tokens
    lengths.tofile(folder / "src.lengths")


@pytest.mark.parametrize("damage", [damage_truncated, damage_half_written, damage_foreign, damage_inconsistent])
def test_a_damaged_entry_is_rebuilt_never_used(tiny_corpus, tokenizer, tmp_path, encodes, damage):
    src, tgt = tiny_corpus
    good = encode(tmp_path, src, tgt, tokenizer)
    expected = np.array(good.tgt_tokens), np.array(good.src_lengths)
    del good
    damage(tmp_path / "corpora" / entries(tmp_path)[0])
    encodes.clear()
    logs = []
    again = encode(tmp_path, src, tgt, tokenizer, logs)
    assert encodes, "a damaged entry was used"
    assert any("unusable" in line for line in logs)
    assert np.array_equal(again.tgt_tokens, expected[0]) and np.array_equal(again.src_lengths, expected[1])


def test_a_temporary_folder_left_by_a_killed_run_is_cleaned_up(tiny_corpus, tokenizer, tmp_path):
    src, tgt = tiny_corpus
    folder = encode(tmp_path, src, tgt, tokenizer).folder
    shutil.rmtree(folder)
    stale = folder.parent / f".{folder.name}.tmp-99999"
    stale.mkdir()
    (stale / "src.tokens").write_bytes(b"\0" * 10)
    encode(tmp_path, src, tgt, tokenizer)
    assert entries(tmp_path) == [folder.name]


def test_a_full_disk_while_encoding_is_a_data_error_and_leaves_nothing(tiny_corpus, tokenizer, tmp_path, monkeypatch):
    src, tgt = tiny_corpus
    real = corpus_encoding.ArrayWriter.write
    written = []

    def full_after_a_while(self, array):
        if len(written) > 20:  # in the fourth chunk of 50 pairs
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(1)
        real(self, array)

    monkeypatch.setattr(corpus_encoding.ArrayWriter, "write", full_after_a_while)
    monkeypatch.setattr(corpus_encoding, "CHUNK_PAIRS", 50)
    with pytest.raises(DataError, match="no space left on the device while encoding .*tiny.de"):
        encode(tmp_path, src, tgt, tokenizer)
    assert written and entries(tmp_path) == []


def test_encoding_shows_a_progress_bar_on_a_terminal_and_one_line_elsewhere(tiny_corpus, tokenizer, tmp_path):
    src, tgt = tiny_corpus
    terminal = Console(file=io.StringIO(), force_terminal=True, width=120)
    encode(tmp_path / "a", src, tgt, tokenizer, console=terminal)
    shown = terminal.file.getvalue()
    assert "encoding tiny" in shown and "pairs/s" in shown and "━" in shown  # the bar, its rate
    assert "encoded tiny: 400 pairs" in shown
    plain = Console(file=io.StringIO(), force_terminal=False, width=120)
    encode(tmp_path / "b", src, tgt, tokenizer, console=plain)
    assert "━" not in plain.file.getvalue() and plain.file.getvalue().count("\n") == 1


def test_plain_and_tagged_entries_keep_the_keys_of_earlier_versions(tiny_corpus, tokenizer, tmp_path):
    src, tgt = tiny_corpus
    digests = (file_digest(src), file_digest(tgt))
    earlier = dict(kind="corpus", src=digests[0], tgt=digests[1], tokenizer=tokenizer.digest(), max_tokens=MAX_TOKENS, max_ratio=MAX_RATIO)
    assert corpus_key(digests, CorpusEncoding(tokenizer, MAX_TOKENS, MAX_RATIO)) == content_key(**earlier)
    assert corpus_key(digests, CorpusEncoding(tokenizer, MAX_TOKENS, MAX_RATIO, tag=4)) == content_key(**earlier, tag=4)
    assert encode(tmp_path, src, tgt, tokenizer).folder == entry_folder(tmp_path, content_key(**earlier))


def decoded_pairs(corpus, tokenizer) -> list[tuple[str, str]]:
    return list(
        zip(
            tokenizer.decode([corpus.pair(i)[0] for i in range(len(corpus))]),
            tokenizer.decode([corpus.pair(i)[1] for i in range(len(corpus))]),
        )
    )


def test_a_sampled_segmentation_has_an_entry_of_its_own_that_its_seed_repeats(tiny_corpus, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_encoding, "CHUNK_PAIRS", 64)  # 7 chunks, the last of 16 pairs
    src, tgt = tiny_corpus
    plain = encode(tmp_path / "cache", src, tgt, tokenizer)
    logs = []
    sampled = encode(tmp_path / "cache", src, tgt, tokenizer, logs, sampling=Sampling(0.1, 7))
    assert sampled.folder != plain.folder and json.loads((sampled.folder / "meta.json").read_text())["sampling"] == {
        "alpha": 0.1,
        "seed": 7,
    }
    assert not np.array_equal(sampled.src_lengths[:50], plain.src_lengths[:50])
    # Filtered as it came out: longer segmentations, so more pairs over MAX_TOKENS than in the plain one.
    assert max(sampled.src_lengths.max(), sampled.tgt_lengths.max()) <= MAX_TOKENS
    assert sampled.report.too_long > plain.report.too_long and len(sampled) == sampled.report.kept < len(plain)
    # Each kept pair is a pair of the corpus, cut otherwise, in corpus order.
    lines = iter(zip(*(tokenizer.decode(tokenizer.encode(side)) for side in read_parallel(src, tgt))))
    assert all(pair in lines for pair in decoded_pairs(sampled, tokenizer))
    # The same sampling: the same entry, found; in another cache, encoded to the same ids.
    again = encode(tmp_path / "cache", src, tgt, tokenizer, logs, sampling=Sampling(0.1, 7))
    assert again.folder == sampled.folder and "encoded before" in logs[-1]
    elsewhere = encode(tmp_path / "other", src, tgt, tokenizer, sampling=Sampling(0.1, 7))
    for name in ("src_tokens", "tgt_tokens", "src_offsets", "tgt_offsets"):
        assert np.array_equal(getattr(elsewhere, name), getattr(sampled, name)), name
    # Another seed or alpha: another entry, other pieces.
    for other in (Sampling(0.1, 8), Sampling(0.2, 7)):
        corpus = encode(tmp_path / "cache", src, tgt, tokenizer, sampling=other)
        assert corpus.folder not in (plain.folder, sampled.folder) and not np.array_equal(corpus.src_tokens, sampled.src_tokens)
    assert len(entries(tmp_path / "cache")) == 4


def test_every_chunk_of_a_sampled_segmentation_draws_with_a_seed_of_its_own(tiny_corpus, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_encoding, "CHUNK_PAIRS", 50)
    src, tgt = read_parallel(*tiny_corpus)
    (tmp_path / "twice.de").write_text("\n".join(src[:50] * 2) + "\n", encoding="utf-8")  # two chunks of the same text
    (tmp_path / "twice.en").write_text("\n".join(tgt[:50] * 2) + "\n", encoding="utf-8")
    corpus = cached_corpus(
        tmp_path,
        "twice",
        str(tmp_path / "twice.de"),
        str(tmp_path / "twice.en"),
        ("a", "b"),
        CorpusEncoding(tokenizer, 200, 10.0, sampling=Sampling(0.1, 7)),
        2,
        lambda _: None,
    )
    assert len(corpus) == 100
    first, second = ([corpus.pair(i)[0].tolist() for i in rows] for rows in (range(50), range(50, 100)))
    assert first != second and tokenizer.decode(first) == tokenizer.decode(second)


def test_an_entry_is_removed_unless_a_run_holds_its_lock(tiny_corpus, tokenizer, tmp_path):
    from filelock import FileLock

    src, tgt = tiny_corpus
    corpus = encode(tmp_path, src, tgt, tokenizer, sampling=Sampling(0.1, 7))
    with FileLock(corpus.folder.parent / f".{corpus.folder.name}.lock"):  # another run encoding or opening it
        assert not remove_entry(tmp_path, corpus.key) and corpus.folder.exists()
    assert remove_entry(tmp_path, corpus.key) and not corpus.folder.exists()
    assert not remove_entry(tmp_path, corpus.key)  # nothing there


def test_worker_processes_sample_the_ids_one_process_does(tiny_corpus, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_encoding, "CHUNK_PAIRS", 50)  # 8 chunks: 2 workers, several chunks ahead
    src, tgt = tiny_corpus
    here = []  # chunks this process encoded itself
    real = corpus_encoding.encode_chunk
    monkeypatch.setattr(corpus_encoding, "encode_chunk", lambda *args: here.append(args[-1]) or real(*args))
    made = {}
    for threads in (1, 2):
        here.clear()
        made[threads] = cached_corpus(
            tmp_path / str(threads),
            "tiny",
            str(src),
            str(tgt),
            (file_digest(src), file_digest(tgt)),
            CorpusEncoding(tokenizer, MAX_TOKENS, MAX_RATIO, sampling=Sampling(0.1, 7)),
            threads,
            lambda _: None,
        )
        assert here == ([] if threads == 2 else list(range(8)))
    assert made[1].key == made[2].key
    for name in ("src_tokens", "tgt_tokens", "src_offsets", "tgt_offsets", "src_lengths"):
        assert np.array_equal(getattr(made[1], name), getattr(made[2], name)), name

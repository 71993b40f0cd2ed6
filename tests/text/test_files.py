"""Reading text files line by line (text/files.py)."""

import gzip

import pytest

from xformer_cli.errors import DataError
from xformer_cli.text.files import ParallelReader, read_lines, read_parallel


def test_a_stream_reads_plain_and_gzip_lines_stripped_in_chunks(tmp_path):
    (tmp_path / "a.de").write_text(" eins \nzwei\ndrei\n", encoding="utf-8")
    (tmp_path / "a.en.gz").write_bytes(gzip.compress("one\ntwo \nthree".encode()))  # no final newline
    reader = ParallelReader(tmp_path / "a.de", tmp_path / "a.en.gz")
    assert list(reader.chunks(2)) == [(["eins", "zwei"], ["one", "two"]), (["drei"], ["three"])]
    assert read_parallel(tmp_path / "a.de", tmp_path / "a.en.gz") == (["eins", "zwei", "drei"], ["one", "two", "three"])
    assert read_lines(tmp_path / "a.de") == ["eins", "zwei", "drei"]


def test_a_stream_names_the_bad_line_and_counts_every_line_when_counts_differ(tmp_path):
    (tmp_path / "a.de").write_bytes(b"gut\nauch gut\nkaputt \xff\n")
    (tmp_path / "a.en").write_text("fine\nfine too\nbroken\n")
    with pytest.raises(DataError, match=r"a\.de, line 3: not valid UTF-8"):
        list(ParallelReader(tmp_path / "a.de", tmp_path / "a.en").chunks(2))
    (tmp_path / "b.de").write_text("".join(f"{i}\n" for i in range(7)))
    with pytest.raises(DataError, match=r"line counts differ: 7 in .*b\.de, 3 in .*a\.en"):
        list(ParallelReader(tmp_path / "b.de", tmp_path / "a.en").chunks(2))

"""Reading text files line by line, plain or gzip, so a corpus is never held whole in memory."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from xformer_cli.errors import DataError


class LineReader:
    """The lines of a UTF-8 text file (plain or .gz), read a block at a time and stripped of
    surrounding whitespace. A line that is not UTF-8 is a DataError naming the file and the line.

    `size` and `bytes_read` are counted in the file's own bytes (compressed for .gz), for progress.
    """

    BLOCK = 1 << 20  # bytes decoded at a time

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.raw = open(self.path, "rb")
        except FileNotFoundError:
            raise DataError(f"file not found: {self.path}") from None
        except OSError as err:
            raise DataError(f"cannot read {self.path}: {err.strerror or err}") from None
        self.size = os.fstat(self.raw.fileno()).st_size
        # A buffered reader over gzip splits lines in C, not line by line in gzip's Python.
        self.file = io.BufferedReader(gzip.GzipFile(fileobj=self.raw, mode="rb"), self.BLOCK) if self.path.suffix == ".gz" else self.raw
        self.line = 0  # lines decoded so far
        self.pending: list[str] = []  # decoded lines not yet returned

    @property
    def bytes_read(self) -> int:
        return self.raw.tell() if not self.raw.closed else self.size

    def read(self, n: int) -> list[str]:
        """The next `n` lines, fewer only at the end of the file."""
        while len(self.pending) < n and not self.raw.closed:
            self.pending += self.decode_block()
        lines, self.pending = self.pending[:n], self.pending[n:]
        return lines

    def decode_block(self) -> list[str]:
        try:
            block = b"".join(self.file.readlines(self.BLOCK))
        except (OSError, EOFError, zlib.error) as err:
            self.close()
            raise DataError(f"cannot read {self.path}: {err}") from None
        if not block:
            self.close()
            return []
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as err:
            self.close()
            line = self.line + block.count(b"\n", 0, err.start) + 1
            raise DataError(f"{self.path}, line {line}: not valid UTF-8") from None
        lines = text.split("\n")
        if text.endswith("\n"):
            lines.pop()
        self.line += len(lines)
        return [line.strip() for line in lines]

    def close(self) -> None:
        self.file.close()
        self.raw.close()

    def __iter__(self) -> Iterator[str]:
        while lines := self.read(10_000):
            yield from lines


def read_lines(path: str | Path) -> list[str]:
    """All lines of a UTF-8 text file (plain or .gz), stripped: for small files (test sets)."""
    return list(LineReader(path))


class ParallelReader:
    """A source and a target file read together, in chunks of line-aligned pairs.

    The files must have equally many lines, and not zero; that is checked as the stream ends.
    """

    def __init__(self, src: str | Path, tgt: str | Path) -> None:
        self.src, self.tgt = LineReader(src), LineReader(tgt)

    @property
    def size(self) -> int:
        """Bytes of the source file: progress is measured in it."""
        return self.src.size

    @property
    def bytes_read(self) -> int:
        return self.src.bytes_read

    def chunks(self, size: int) -> Iterator[tuple[list[str], list[str]]]:
        """(source lines, target lines) of up to `size` pairs at a time."""
        pairs = 0
        while True:
            s, t = self.src.read(size), self.tgt.read(size)
            if len(s) != len(t):
                n_src = pairs + len(s) + sum(1 for _ in self.src)
                n_tgt = pairs + len(t) + sum(1 for _ in self.tgt)
                raise DataError(f"line counts differ: {n_src} in {self.src.path}, {n_tgt} in {self.tgt.path}")
            if not s:
                break
            pairs += len(s)
            yield s, t
        if not pairs:
            raise DataError(f"empty corpus: {self.src.path} and {self.tgt.path} have no lines")


def read_parallel(src: str | Path, tgt: str | Path) -> tuple[list[str], list[str]]:
    """All source and target lines (equally many, not zero): for small sets (validation)."""
    src_lines: list[str] = []
    tgt_lines: list[str] = []
    for s, t in ParallelReader(src, tgt).chunks(50_000):
        src_lines += s
        tgt_lines += t
    return src_lines, tgt_lines

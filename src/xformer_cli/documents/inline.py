"""Text with inline markup, as every format hands it to translation: plain text, the inline
elements around parts of it (tags), and atoms (markup that stands for a word and goes through as
it is: inline code, an image, a line break, a `%s` placeholder).

A format reads a block (a paragraph, a cue group, a table cell) into a `Marked` with
`MarkedBuilder`, the block is translated (`documents/blocks.py`), and the format writes the
translated `Marked` back from its `events`. What a tag or an atom is stays the format's own
business (an HTML start tag and end tag as written, a Word run's properties): `Tag.kind` and the
atoms are opaque here.

An atom is one character of the Unicode Supplementary Private Use Area-A in the text
(`atom_char(i)` for `atoms[i]`), a character no tokenizer knows and no real text holds; the
translation holds it back like a number (`text/spans.py`) and puts it back where the model put
its placeholder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

ATOM_BASE = 0xF0000  # atoms are U+F0000, U+F0001, ...


def atom_char(index: int) -> str:
    return chr(ATOM_BASE + index)


def atom_index(char: str) -> int | None:
    """The atom a character stands for, or None for a character of text."""
    code = ord(char)
    return code - ATOM_BASE if ATOM_BASE <= code < ATOM_BASE + 0xFFFE else None


@dataclass(frozen=True)
class Tag:
    """An inline element around `text[start:end]`; `kind` is the format's (opaque here)."""

    start: int
    end: int
    kind: Any


@dataclass(frozen=True)
class Marked:
    """A block of text with its inline markup. Tags are properly nested and ordered as they
    open (by start, an outer tag before the inner ones that start with it)."""

    text: str
    tags: tuple[Tag, ...] = ()
    atoms: tuple[Any, ...] = ()

    @property
    def plain(self) -> str:
        """The text without its atoms (what a reader sees of the words)."""
        return "".join(ch for ch in self.text if atom_index(ch) is None)

    def events(self) -> Iterator[tuple[str, Any]]:
        """The block in document order: ("text", str), ("open", Tag), ("close", Tag), ("atom", atom).
        A tag opens before and closes after the tags nested in it; empty tags come out too."""
        opens: dict[int, list[Tag]] = {}
        for tag in self.tags:
            opens.setdefault(tag.start, []).append(tag)
        stack: list[Tag] = []
        run: list[str] = []
        for position in range(len(self.text) + 1):
            if run and (opens.get(position) or (stack and stack[-1].end == position)):
                yield "text", "".join(run)
                run = []
            while stack and stack[-1].end <= position:
                yield "close", stack.pop()
            for tag in opens.get(position, []):
                yield "open", tag
                stack.append(tag)
                if tag.end <= position:  # an empty tag closes at once
                    yield "close", stack.pop()
            if position == len(self.text):
                break
            index = atom_index(self.text[position])
            if index is None:
                run.append(self.text[position])
                continue
            if run:
                yield "text", "".join(run)
                run = []
            yield "atom", self.atoms[index]
        if run:
            yield "text", "".join(run)
        while stack:
            yield "close", stack.pop()


@dataclass
class MarkedBuilder:
    """Builds a `Marked` from a format's reading: text, opening and closing tags, atoms, in order."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    tags: list[Tag] = field(default_factory=list)
    open_tags: list[tuple[int, int, Any]] = field(default_factory=list)  # (index in tags, start, kind)
    atoms: list[Any] = field(default_factory=list)

    def text(self, text: str) -> None:
        self.parts.append(text)
        self.length += len(text)

    def atom(self, atom: Any) -> None:
        self.text(atom_char(len(self.atoms)))
        self.atoms.append(atom)

    def open(self, kind: Any) -> None:
        self.open_tags.append((len(self.tags), self.length, kind))
        self.tags.append(Tag(self.length, self.length, kind))  # its end is set when it closes

    def close(self) -> None:
        index, start, kind = self.open_tags.pop()
        self.tags[index] = Tag(start, self.length, kind)

    def build(self) -> Marked:
        while self.open_tags:  # a format that leaves a tag open: it closes at the end
            self.close()
        return Marked("".join(self.parts), tuple(self.tags), tuple(self.atoms))

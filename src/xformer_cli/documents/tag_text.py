"""Inline tags written into the text the model reads, for a model trained to carry them.

A tag around some words goes to the model as words of its own: `<b>` before them and `</b>` after,
with a space on the inner side ("Das <b> rote </b> Haus." becomes "The <b> red </b> house."), so
the tagged words keep the pieces they have without the tag. Punctuation at a tag's edges stays
outside it. A model fine-tuned on pairs tagged this way (`scripts/tag_corpus.py`: spans of words
that eflomal's links tie to each other, Hanneman and Dinu 2020) writes the tags around the English
words itself. `render` writes a sentence with its tags, `parse` reads them back out of a
translation, or says the translation did not carry them all (each tag once, opened before it is
closed, nested properly, around a word); `marked` and `unmarked` do the same in two steps, so
that the translation can be tidied in between with each tag a character against its word.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

NAMES = ("b", "i", "u")  # the tags a sentence carries, in the order they open
TAG = re.compile(rf" ?<(/?)({'|'.join(NAMES)})> ?")


@dataclass(frozen=True)
class Span:
    """A tag over the characters start..end of a text."""

    start: int
    end: int
    name: str = "b"


def trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """The span start..end without the white space and punctuation at its edges (start == end
    where nothing is left)."""
    while start < end and not text[start].isalnum():
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end


def render(text: str, spans: Sequence[Span]) -> str:
    """`text` with each span's tag written in: "<name> " at its start, " </name>" at its end."""
    # (position, then closings before openings, the outer tag outside the inner, what to insert)
    marks: list[tuple[int, int, int, str]] = []
    for span in spans:
        marks.append((span.start, 1, -span.end, f"<{span.name}> "))
        marks.append((span.end, 0, -span.start, f" </{span.name}>"))
    out, last = "", 0
    for position, _, _, mark in sorted(marks):
        out += text[last:position]
        if mark.startswith("<") and out[-1:].isalnum():
            mark = " " + mark  # a tag opening right after a word is a word of its own
        if mark.startswith(" </") and text[position : position + 1].isalnum():
            mark = mark + " "  # and so is one closing right before a word
        out += mark
        last = position
    return out + text[last:]


def mark(index: int, closing: bool) -> str:
    """The character that stands for a tag's start (or end) in a translation while it is tidied:
    one of Unicode's private-use characters, which no text holds and no tidying moves."""
    return chr((0xE180 if closing else 0xE100) + index)


def marked(translation: str, count: int) -> str | None:
    """The translation with each of its first `count` tags (`NAMES`) as a mark character against
    the word it stands beside (`mark`), the tag's own spaces gone; None where a tag is missing,
    doubled, closed before it opens, or crosses another."""
    names, out, last = NAMES[:count], [], 0
    opened: set[str] = set()
    stack: list[str] = []
    for match in TAG.finditer(translation):
        out.append(translation[last : match.start()])
        closing, name = match.group(1) == "/", match.group(2)
        if name not in names or (not closing and name in opened) or (closing and (not stack or stack[-1] != name)):
            return None
        if closing:
            stack.pop()
            following = translation[match.end() : match.end() + 2]
            # the space after a closing tag is the text's, unless another closing tag comes next
            out.append(mark(names.index(name), True) + (" " if match.group().endswith(" ") and following not in ("", "</") else ""))
        else:
            opened.add(name)
            stack.append(name)
            out.append((" " if match.group().startswith(" ") else "") + mark(names.index(name), False))
        last = match.end()
    out.append(translation[last:])
    return "".join(out) if not stack and opened == set(names) else None


def parse(translation: str, count: int) -> tuple[str, list[Span]] | None:
    """The translation without its first `count` tags (`NAMES`) and the span of each, edges
    trimmed; None where a tag is missing, broken (as `marked`) or holds no word."""
    read = read_back(translation, count, lambda text: text)
    return None if read is None else (read[0], [Span(start, end, name) for (start, end), name in zip(read[1], NAMES)])


def unmarked(text: str, count: int) -> tuple[str, list[tuple[int, int]]] | None:
    """The text without its mark characters and each tag's characters in it, edges trimmed
    (`trimmed`); None where a tag holds no word."""
    plain, positions, index = [], {}, 0
    for char in text:
        if 0xE100 <= ord(char) < 0xE100 + count or 0xE180 <= ord(char) < 0xE180 + count:
            positions[char] = index
            continue
        plain.append(char)
        index += 1
    result = "".join(plain)
    if len(positions) != 2 * count:
        return None
    spans = [trimmed(result, positions[mark(i, False)], positions[mark(i, True)]) for i in range(count)]
    if any(start == end for start, end in spans):
        return None
    return result, spans


def spans_to_write(text: str, ranges: Sequence[tuple[int, int]]) -> list[Span] | None:
    """The tags over the characters `ranges` of a sentence as the model is to read them: kept
    within the sentence, edges trimmed, named in the order given; None where there are none, more
    than `NAMES`, or one over no word or over part of a word (a Word run that changes the font
    within "Einführung": written in, it would split the word)."""
    spans = [trimmed(text, max(start, 0), min(end, len(text))) for start, end in ranges]
    if not spans or len(spans) > len(NAMES) or any(start >= end for start, end in spans):
        return None
    if any(text[start - 1 : start].isalnum() or text[end : end + 1].isalnum() for start, end in spans):
        return None
    return [Span(start, end, name) for (start, end), name in zip(spans, NAMES)]


def read_back(translation: str, count: int, tidy: Callable[[str], str]) -> tuple[str, list[tuple[int, int]]] | None:
    """A translation's first `count` tags read out (`marked`), the text tidied by `tidy` with each
    tag a character against its word, then the characters of each tag (`unmarked`); None where the
    translation lost or broke one."""
    found = marked(translation, count)
    return unmarked(tidy(found), count) if found is not None else None

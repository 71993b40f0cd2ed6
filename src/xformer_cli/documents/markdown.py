"""Markdown: the words translated, every piece of syntax kept as written.

markdown-it-py (a CommonMark parser, with GitHub's tables and strikethrough) finds the
paragraphs, headings and table cells and, within them, the inline syntax. The file is then
changed only where their words stand: each text line of a block keeps its container markers
(`> `, `- `, `1. `, `| `, indentation) and its hard-break ending, and gets its share of the
block's translation (`share_out`, by length), so the line structure stays too. Code blocks,
HTML blocks and YAML front matter are not touched.

Inline: emphasis, strong, strikethrough and link text become tags (their markers as written, a
link's `](destination "title")` included), inline code, inline HTML and autolinks atoms; an
image is an atom whose alt text is translated in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.blocks import translate_blocks
from xformer_cli.documents.inline import Marked, MarkedBuilder
from xformer_cli.documents.text import decode_utf8, share_out
from xformer_cli.errors import DocumentError

FRONT_MATTER = re.compile(r"\A(?:\ufeff)?---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
HARD_BREAK = re.compile(r"(?: {2,}|\\)$")
TAGS = {"em_open": "em_close", "strong_open": "strong_close", "s_open": "s_close", "link_open": "link_close"}
ESCAPED = re.compile(r"([\\`*\[\]<]|(?<!\w)_|_(?!\w))")
LINE_START = re.compile(r"^(#{1,6}\s|[-+*]\s|\d{1,9}[.)]\s|>|=+\s*$|-+\s*$)")


@dataclass
class Slot:
    """Where a block's line of words stands in the file: line, start and end column."""

    line: int
    start: int
    end: int


class Unreadable(Exception):
    """The inline source did not match the parser's tokens (the block is left as it is)."""


def translate_markdown(data: bytes, translator: Translator, config: DecodeConfig, name: str = "<input>") -> bytes:
    """A Markdown file translated, its syntax kept."""
    try:
        from markdown_it import MarkdownIt  # the optional extra "documents"
    except ModuleNotFoundError:
        raise DocumentError(f"{name}: Markdown needs markdown-it-py: pip install 'xformer-cli[documents]'") from None

    text = decode_utf8(data, name)
    if "\x00" in text:
        raise DocumentError(f"{name}: line {text[: text.index(chr(0))].count(chr(10)) + 1}: a NUL byte: this is no Markdown text")
    newline = "\r\n" if "\r\n" in text else "\n"
    text = text.replace("\r\n", "\n")
    front = FRONT_MATTER.match(text)
    parsed = "\n" * front.group().count("\n") + text[front.end() :] if front else text  # the same line numbers
    lines = text.split("\n")
    tokens = MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(parsed)
    found = [block for block in (read_block(tokens, i, lines) for i in range(len(tokens))) if block is not None]
    images = sorted({alt for _, marked, _ in found for atom in marked.atoms if isinstance(atom, Image) for alt in [atom.alt] if alt})
    translated = translate_blocks([marked for _, marked, _ in found] + [Marked(alt) for alt in images], translator, config)
    alts = dict(zip(images, (m.text for m in translated[len(found) :])))
    for (slots, _, widths), marked in sorted(zip(found, translated), key=lambda pair: (-pair[0][0][0].line, -pair[0][0][0].start)):
        for slot, piece in reversed(list(zip(slots, share_out(marked, widths)))):
            line = lines[slot.line]
            lines[slot.line] = line[: slot.start] + render(piece, alts) + line[slot.end :]
    return "\n".join(lines).replace("\n", newline).encode("utf-8")


def read_block(tokens: list, index: int, lines: list[str]) -> tuple[list[Slot], Marked, list[int]] | None:
    """An inline token of a paragraph, heading or table cell as (its slots, its marked text, the
    width of each slot); None for anything else, or where its source cannot be matched."""
    token = tokens[index]
    if token.type != "inline" or index == 0 or tokens[index - 1].type not in ("paragraph_open", "heading_open", "th_open", "td_open"):
        return None
    if token.map is None or not any(ch.isalpha() for ch in token.content):
        return None
    cell = cells_before(tokens, index) if tokens[index - 1].type in ("th_open", "td_open") else None
    slots = locate(token.content, token.map[0], lines, cell)
    if slots is None:
        return None
    try:
        marked = read_inline(token.children or [], token.content)
    except Unreadable:
        return None
    return slots, marked, [max(s.end - s.start, 1) for s in slots]


def cells_before(tokens: list, index: int) -> int:
    """How many cells of the same table row come before this inline token's cell."""
    count = 0
    for token in reversed(tokens[:index]):
        if token.type == "tr_open":
            return count - 1
        if token.type in ("th_open", "td_open"):
            count += 1
    return 0


def locate(content: str, first: int, lines: list[str], cell: int | None) -> list[Slot] | None:
    """Where each line of an inline token's content stands in the file (its words, without a
    hard break's trailing spaces or backslash); a table cell (`cell` its number in the row)
    within its part of the row."""
    slots = []
    for k, part in enumerate(content.split("\n")):
        words = HARD_BREAK.sub("", part).strip()
        line = lines[first + k] if first + k < len(lines) else ""
        start, end = cell_bounds(line, cell) if cell is not None else (0, len(line))
        at = line.find(words, start, end)
        if at < 0 and cell is not None:  # a pipe in a cell is written escaped
            words = words.replace("|", "\\|")
            at = line.find(words, start, end)
        if at < 0 or not words:
            return None
        slots.append(Slot(first + k, at, at + len(words)))
    return slots


def cell_bounds(line: str, cell: int) -> tuple[int, int]:
    """The columns of a table row's cell number `cell` (between its unescaped pipes)."""
    pipes = [m.start() for m in re.finditer(r"(?<!\\)\|", line)]
    if line.strip().startswith("|"):
        pipes = pipes[1:]
    edges = [line.index("|") + 1 if line.strip().startswith("|") else 0, *[p + 1 for p in pipes]]
    start = edges[cell] if cell < len(edges) else len(line)
    end = pipes[cell] if cell < len(pipes) else len(line)
    return start, end


@dataclass(frozen=True)
class Image:
    """An image: its source text, split around the alt text that is translated."""

    before: str  # "!["
    alt: str
    after: str  # "](src \"title\")"


def read_inline(children: list, source: str) -> Marked:
    """The inline tokens of a block into marked text, each piece of syntax as written in `source`."""
    builder, p = MarkedBuilder(), 0
    opened: list[list[str]] = []
    i = 0
    while i < len(children):
        child = children[i]
        if child.type in ("text", "softbreak", "hardbreak"):
            p = read_text(builder, child, source, p)
        elif child.type == "html_inline":
            if not source.startswith(child.content, p):
                raise Unreadable(child.content)
            builder.atom(child.content)
            p += len(child.content)
        elif child.type == "code_inline":
            end = code_end(source, p, child.markup)
            builder.atom(source[p:end])
            p = end
        elif child.type == "image":
            end = link_end(source, bracket_end(source, p + 1))
            close = bracket_end(source, p + 1)
            builder.atom(Image(source[p : p + 2], source[p + 2 : close], source[close:end]))
            p = end
        elif child.type == "link_open" and child.markup == "autolink":
            end = source.index(">", p) + 1
            builder.atom(source[p:end])
            p = end
            i = next(j for j in range(i, len(children)) if children[j].type == "link_close")
        elif child.type in TAGS:
            width = 1 if child.type == "link_open" else len(child.markup)
            kind = [source[p : p + width], ""]
            builder.open(kind)
            opened.append(kind)
            p += width
        elif child.type in TAGS.values():
            end = link_end(source, p) if child.type == "link_close" else p + len(child.markup)
            opened.pop()[1] = source[p:end]
            builder.close()
            p = end
        else:
            raise Unreadable(child.type)
        i += 1
    return builder.build()


def read_text(builder: MarkedBuilder, child, source: str, p: int) -> int:
    """A text token (or a line break, as a space): its characters matched in the source through
    backslash escapes and entities; the position after it."""
    if child.type != "text":
        end = source.index("\n", p) + 1
        builder.text(" ")
        return end
    for ch in child.content:
        if source.startswith(ch, p):
            p += 1
        elif source.startswith("\\" + ch, p):
            p += 2
        elif source.startswith("&", p) and ";" in source[p : p + 33]:
            p = source.index(";", p) + 1
        else:
            raise Unreadable(child.content)
    builder.text(child.content)
    return p


def code_end(source: str, p: int, markup: str) -> int:
    """The end of the code span whose backtick run `markup` starts at `p`."""
    closing = re.compile(rf"(?<!`){markup}(?!`)").search(source, p + len(markup)) if source.startswith(markup, p) else None
    if closing is None:
        raise Unreadable(markup)
    return closing.end()


def bracket_end(source: str, p: int) -> int:
    """The position of the "]" that closes the "[" at `p`."""
    depth = 0
    for i in range(p, len(source)):
        if source[i] == "\\":
            continue
        depth += source[i] == "["
        depth -= source[i] == "]"
        if depth == 0:
            return i
    raise Unreadable("[")


def link_end(source: str, p: int) -> int:
    """The end of a link's "](destination)", "][label]", "][]" or a lone "]" starting at `p`."""
    if source.startswith("](", p):
        depth = 0
        for i in range(p + 1, len(source)):
            depth += source[i] == "("
            depth -= source[i] == ")"
            if depth == 0:
                return i + 1
        raise Unreadable("(")
    if source.startswith("][", p):
        return source.index("]", p + 1) + 1
    return p + 1


def render(marked: Marked, alts: dict[str, str]) -> str:
    """A line of translated Markdown: text escaped where it would read as syntax, markup as written."""
    out = []
    for kind, value in marked.events():
        if kind == "text":
            out.append(ESCAPED.sub(r"\\\1", value))
        elif kind == "atom":
            out.append(
                value.before + ESCAPED.sub(r"\\\1", alts.get(value.alt, value.alt)) + value.after if isinstance(value, Image) else value
            )
        else:
            out.append(value.kind[0] if kind == "open" else value.kind[1])
    line = "".join(out)
    start = LINE_START.match(line)
    if start and line[0].isdigit():  # "1. " would start a list: "1\. "
        marker = start.end() - 2
        return line[:marker] + "\\" + line[marker:]
    return "\\" + line if start else line

"""gettext catalogs (.po) with German msgids: the untranslated messages translated into English.

An entry is translated only when it has no translation at all: not the header, not obsolete
(`#~`), not fuzzy, and every msgstr empty. Entries that have a msgstr, fuzzy ones included, are a
translator's work and stay exactly as they are; so does the header, whose Language and
Plural-Forms belong to the catalog (the file may be a template or another language's catalog;
changing them is the translator's decision, and nplurals must match the plural formula).

A new translation is flagged `fuzzy`, so that gettext does not use it before a translator has
read it. A plural entry gets msgstr[0] from msgid and msgstr[1..n-1] from msgid_plural, n being
the header's nplurals (2 without one).

The output is the input with only the translated entries rewritten by polib; every other byte
stays (line ends and a byte-order mark included), so a diff shows just the new translations.
polib wraps them at its 78 columns, or not at all where the input has string lines longer than
gettext's 79 (an input written unwrapped, as `msgcat --no-wrap` does).

In a message, printf placeholders (`%s`, `%5.2f`, `%(name)s`, `%%`), Python braces (`{name}`,
`{0}`, `{{`, `}}`) and HTML entities are atoms; HTML elements (`<b>…</b>`, `<a href="…">…</a>`)
are tags, their start and end tags as written; void and unmatched tags are atoms. Each comes back
exactly once. A message of several lines is translated line by line, its line breaks where they
were, and so is a line broken by `<br>` tags (an element across a break keeps its start and end
tags as atoms): lines are often list items or columns, and the model should not move a break.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.blocks import translate_blocks
from xformer_cli.documents.inline import Marked, MarkedBuilder
from xformer_cli.errors import DocumentError

PRINTF = r"%(?:\d+\$)?(?:\([^()\s]*\))?[-+#0']*(?:\d+|\*)?(?:\.(?:\d+|\*))?(?:hh|h|ll|l|L|q|j|z|t)?[diouxXeEfFgGaAcsrp%]"
BRACE = r"\{\{|\}\}|\{[\w.\[\]]*(?:![rsa])?(?::[^{}\s]*)?\}"
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
WIDE = 79  # a string line longer than this: the input is not wrapped


@dataclass(frozen=True, eq=False)
class Element:
    """A tag's kind: an HTML element's start and end tag as written."""

    start: str
    end: str


class Tokens(HTMLParser):
    """A line of a message cut into HTML tokens: (kind, tag name, where it starts). The text of
    each token runs to the next one's start, so the pieces always give back the line exactly."""

    def __init__(self, line: str) -> None:
        super().__init__(convert_charrefs=False)  # entities stay as written
        self.found: list[tuple[str, str, int]] = []
        self.feed(line)
        self.close()

    def note(self, kind: str, name: str = "") -> None:
        self.found.append((kind, name, self.getpos()[1]))  # a line has no newline: the column is the offset

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.note("void" if tag in VOID else "start", tag)

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        self.note("void", tag)

    def handle_endtag(self, tag: str) -> None:
        self.note("end", tag)

    def handle_data(self, data: str) -> None:
        self.note("data")

    def handle_entityref(self, name: str) -> None:
        self.note("void")

    handle_charref = handle_comment = handle_decl = handle_pi = unknown_decl = handle_entityref


def pieces(line: str) -> list[tuple[str, str, str]]:
    """(kind, text, end) of a line: "data", "start" (with its end tag's text), "end" or "void";
    consecutive data joined; start and end tags that do not pair up (no partner, or crossing
    another element) are "void"."""
    found = Tokens(line).found
    if not found or found[0][2] > 0:
        found.insert(0, ("data", "", 0))
    bounds = [start for _, _, start in found[1:]] + [len(line)]
    tokens: list[tuple[str, str, str]] = []  # (kind, name, text)
    for (kind, name, start), end in zip(found, bounds):
        if kind == "data" and tokens and tokens[-1][0] == "data":
            tokens[-1] = ("data", "", tokens[-1][2] + line[start:end])
        elif end > start:
            tokens.append((kind, name, line[start:end]))
    stack: list[int] = []
    partner: dict[int, int] = {}
    for i, (kind, name, _) in enumerate(tokens):
        if kind == "start":
            stack.append(i)
        elif kind == "end" and any(tokens[j][1] == name for j in stack):
            while tokens[stack[-1]][1] != name:
                stack.pop()
            partner[stack.pop()] = i
    paired = set(partner) | set(partner.values())
    return [
        (kind if kind == "data" or i in paired else "void", text, tokens[partner[i]][2] if i in partner else "")
        for i, (kind, _, text) in enumerate(tokens)
    ]


def read_line(line: str, placeholders: re.Pattern[str] | None) -> Marked:
    """A line of a message as a block: its HTML elements tags, its placeholders and void tags atoms."""
    builder = MarkedBuilder()
    for kind, text, end in pieces(line):
        if kind == "start":
            builder.open(Element(text, end))
        elif kind == "end":
            builder.close()
        elif kind == "void":
            builder.atom(text)
        else:
            cursor = 0
            for match in placeholders.finditer(text) if placeholders else ():
                builder.text(text[cursor : match.start()])
                builder.atom(match.group())
                cursor = match.end()
            builder.text(text[cursor:])
    return builder.build()


def render(block: Marked) -> str:
    """A translated line: its text with each tag's start and end and each atom as written."""
    out = []
    for event, value in block.events():
        out.append(value if event in ("text", "atom") else value.kind.start if event == "open" else value.kind.end)
    return "".join(out)


def placeholder_pattern(flags: list[str]) -> re.Pattern[str] | None:
    """The placeholders of an entry: printf unless flagged no-c-format or no-python-format, braces
    unless no-python-brace-format (a "%" in prose, as in "50 % der", is then left to the model)."""
    kinds = [] if {"no-c-format", "no-python-format"} & set(flags) else [PRINTF]
    kinds += [] if "no-python-brace-format" in flags else [BRACE]
    return re.compile("|".join(kinds)) if kinds else None


def segments(line: str) -> list[str]:
    """A line cut at its line-break tags (`<br>`, `<br/>`): the texts between, and the breaks.
    What a break separates reads as separate lines, so each part is translated on its own."""
    parts, current = [], ""
    for kind, text, _ in pieces(line):
        if kind == "void" and re.match(r"<br\b", text, re.IGNORECASE):
            parts += [current, text]
            current = ""
        else:
            current += text
    return [*parts, current]


@dataclass
class Lines:
    """The distinct lines (and parts of lines between `<br>` tags) of all messages to translate,
    each read once into a block."""

    blocks: list[Marked] = field(default_factory=list)
    index: dict[tuple[str, tuple[str, ...]], int] = field(default_factory=dict)

    def add(self, message: str, flags: list[str]) -> list[int | str]:
        """A message as block numbers and the line breaks between them (as written)."""
        parts: list[int | str] = []
        for n, line in enumerate(message.split("\n")):
            parts += ["\n"] if n else []
            for i, text in enumerate(segments(line)):
                if i % 2:  # a <br>
                    parts.append(text)
                    continue
                key = (text, tuple(f for f in flags if "format" in f))
                if key not in self.index:
                    self.index[key] = len(self.blocks)
                    self.blocks.append(read_line(text, placeholder_pattern(flags)))
                parts.append(self.index[key])
        return parts


def nplurals(metadata: dict[str, str]) -> int:
    """The number of plural forms the header's Plural-Forms names (2 without one, or in a template)."""
    found = re.search(r"nplurals\s*=\s*(\d+)", metadata.get("Plural-Forms", ""))
    return max(int(found.group(1)), 1) if found else 2


def untranslated(entry: Any) -> bool:
    """Whether an entry gets a translation: no translation yet, not the header, obsolete or fuzzy."""
    empty = not entry.msgstr and not any(entry.msgstr_plural.values())
    return empty and bool(entry.msgid) and not entry.obsolete and "fuzzy" not in entry.flags


def wrap_width(lines: list[str]) -> int:
    """polib's wrapwidth that matches the input: 0 (no wrapping) where a string line is longer
    than gettext's 79 columns, else polib's 78."""
    strings = [line.rstrip("\r\n") for line in lines if line.lstrip("#~ ").startswith(("msg", '"'))]
    return 0 if any(len(line) > WIDE for line in strings) else 78


def entry_spans(lines: list[str], entries: list[Any]) -> dict[int, tuple[int, int]]:
    """For each entry (by id), its lines: from its first line (polib's linenum, counted from 1)
    to the next entry's, less the blank lines between them."""
    first_entry = next((i for i, line in enumerate(lines) if line.startswith(("#.", "#:", "#,", "#|", "#~", "msg"))), 0)
    starts = sorted({(e.linenum - 1 if e.linenum else first_entry) for e in entries} | {len(lines)})
    spans = {}
    for entry in entries:
        start = entry.linenum - 1 if entry.linenum else first_entry
        end = starts[starts.index(start) + 1]
        while end > start + 1 and not lines[end - 1].strip():
            end -= 1
        spans[id(entry)] = (start, end)
    return spans


def parse(text: str, name: str) -> Any:
    """The polib catalog of a .po text, or a DocumentError naming the file and line."""
    try:
        import polib
    except ImportError:
        raise DocumentError(f"{name}: gettext catalogs need polib: pip install 'xformer-cli[documents]'") from None
    try:
        return polib.pofile(text if "\n" in text else text + "\n")  # with a newline it is never taken for a path
    except (OSError, ValueError) as error:
        message = " ".join(str(error).split())
        found = re.search(r"\(line (\d+)\):?\s*(.*)", message)
        if found:
            detail = found.group(2) or "syntax error"
            raise DocumentError(f"{name}: line {found.group(1)}: {detail}") from None
        raise DocumentError(f"{name}: not a gettext catalog ({message})") from None


def decode(data: bytes, name: str) -> str:
    """The text of a .po file, which must be UTF-8 (a byte-order mark is kept)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DocumentError(f"{name}: not valid UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start})") from None


def translate_po(data: bytes, translator: Translator, config: DecodeConfig, name: str = "<input>") -> bytes:
    """The catalog with every untranslated entry translated and flagged fuzzy (see the module's
    docstring for which entries and how), as UTF-8 bytes."""
    text = decode(data, name)
    bom = "\ufeff" if text.startswith("\ufeff") else ""
    text = text[len(bom) :]
    catalog = parse(text, name)
    todo = [entry for entry in catalog if untranslated(entry)]
    if not todo:
        return data
    lines, forms = Lines(), nplurals(catalog.metadata)
    wanted = [(lines.add(e.msgid, e.flags), lines.add(e.msgid_plural, e.flags) if e.msgid_plural else None) for e in todo]
    translated = [render(block) for block in translate_blocks(lines.blocks, translator, config)]
    english = lambda parts: "".join(translated[p] if isinstance(p, int) else p for p in parts)
    for entry, (singular, plural) in zip(todo, wanted):
        if plural is None:
            entry.msgstr = english(singular)
        else:
            entry.msgstr_plural = {i: english(singular if i == 0 else plural) for i in range(forms)}
        entry.flags.insert(0, "fuzzy")
    source = text.splitlines(keepends=True)  # as polib splits them, so its line numbers match
    spans, width = entry_spans(source, list(catalog)), wrap_width(source)
    out, cursor = [], 0
    for entry in sorted(todo, key=lambda e: spans[id(e)][0]):
        start, end = spans[id(entry)]
        newline = "\r\n" if source[start].endswith("\r\n") else "\n"
        rewritten = entry.__unicode__(width).replace("\n", newline)
        out += [*source[cursor:start], rewritten if source[end - 1].endswith(("\n", "\r")) else rewritten.rstrip("\r\n")]
        cursor = end
    return (bom + "".join(out + source[cursor:])).encode("utf-8")

"""Subtitles: SubRip (`.srt`) and WebVTT (`.vtt`), cue numbers, timecodes, settings and styling kept.

A subtitle sentence often runs over two or three cues. Cues are grouped until one ends a
sentence (or a dialogue dash starts the next), each group is translated as one text, and its
translation is shared out over the group's cues by the length of their German text, at word
boundaries, so that no cue comes back empty and no word is lost. Within a cue the translation is
cut into as many lines as the cue had, by length.

Markup: a tag or `{\\an8}` that wraps a whole line (`<i>…</i>`, SRT's usual italics) is taken
off the line and put back around its translated line; tags inside a line (`<b>`, `<c.yellow>`,
`<v Anna>`) go through the translation as tags, VTT's timestamps inside a cue as atoms.
Everything outside the cue text (the WEBVTT header, NOTE, STYLE and REGION blocks, identifiers,
timing lines) is written back as it was, byte for byte, line endings included.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.blocks import translate_blocks
from xformer_cli.documents.inline import Marked, MarkedBuilder
from xformer_cli.documents.text import decode_utf8, share_out
from xformer_cli.errors import DocumentError

SRT_TIMING = re.compile(r"\d{1,3}:\d{2}:\d{2}[,.]\d{1,3} +--> +\d{1,3}:\d{2}:\d{2}[,.]\d{1,3}(?: .*)?")
VTT_TIMING = re.compile(r"(?:\d{1,3}:)?\d{2}:\d{2}\.\d{3} +--> +(?:\d{1,3}:)?\d{2}:\d{2}\.\d{3}(?:[ \t].*)?")
WRAPPER = re.compile(r"^(\{\\[^}]*\}|<(\w+)(?:[ .][^>]*)?>)(.*)$", re.S)  # a line's leading {\an8} or opening tag
MARKUP = re.compile(r"<(/?)([\w.]+|\d[\d:.]*)([^>]*)>|\{\\[^}]*\}")  # an inline tag, a timestamp, an {\...} override
SENTENCE_END = re.compile(r"[.!?…♪]['\"”’»)\]]*$")
MAX_GROUP = 4  # cues translated together at most


@dataclass
class Cue:
    """A cue: its lines in the file (header lines kept as they are) and its text lines."""

    head: list[str]  # number or identifier, and the timing line
    lines: list[str]  # the text lines, as written
    line_number: int  # of the first text line, for messages


def translate_subtitles(data: bytes, translator: Translator, config: DecodeConfig, name: str = "<input>", vtt: bool = False) -> bytes:
    """A SubRip or WebVTT file translated, its structure kept byte for byte."""
    text = decode_utf8(data, name)
    newline = "\r\n" if "\r\n" in text else "\n"
    blocks = parse(text.replace("\r\n", "\n"), name, vtt)
    cues = [block for block in blocks if isinstance(block, Cue)]
    translated = translate_cues(cues, translator, config, vtt)
    out = []
    for block in blocks:
        out.append("\n".join(block.head + translated[id(block)]) if isinstance(block, Cue) else block)
    return "\n".join(out).replace("\n", newline).encode("utf-8")


def parse(text: str, name: str, vtt: bool) -> list[str | Cue]:
    """The file as a list of blocks: cues, and text kept as it is (blank lines, headers, notes)."""
    lines = text.split("\n")
    if vtt and not lines[0].lstrip("\ufeff").startswith("WEBVTT"):
        raise DocumentError(f"{name}: line 1: a WebVTT file starts with 'WEBVTT', not {lines[0][:40]!r}")
    blocks: list[str | Cue] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            blocks.append(lines[i])
            i += 1
            continue
        end = next((j for j in range(i, len(lines)) if not lines[j].strip()), len(lines))
        blocks.append(cue_or_block(lines[i:end], i + 1, name, vtt))
        i = end
    return [b for block in blocks for b in ([block] if isinstance(block, (str, Cue)) else block)]


def cue_or_block(lines: list[str], number: int, name: str, vtt: bool) -> Cue | list[str]:
    """One block of non-blank lines: a cue, or (in WebVTT) a header, NOTE, STYLE or REGION block."""
    timing = VTT_TIMING if vtt else SRT_TIMING
    at = next((k for k, line in enumerate(lines[:2]) if "-->" in line), None)
    if vtt and (at is None or lines[0].startswith(("WEBVTT", "NOTE", "STYLE", "REGION"))):
        return lines
    if at is None or not timing.fullmatch(lines[at].strip()):
        at = at if at is not None else min(1, len(lines) - 1)  # where the timecode should be
        where, got = number + at, lines[at]
        form = "HH:MM:SS.mmm --> HH:MM:SS.mmm" if vtt else "a cue number, then HH:MM:SS,mmm --> HH:MM:SS,mmm"
        raise DocumentError(f"{name}: line {where}: expected {form}, got {got[:60]!r}")
    if not vtt and (at != 1 or not lines[0].strip().lstrip("\ufeff").isdigit()):
        raise DocumentError(f"{name}: line {number}: expected a cue number before the timecode, got {lines[0][:60]!r}")
    return Cue(lines[: at + 1], lines[at + 1 :], number + at + 1)


def unwrap(line: str) -> tuple[list[str], str, list[str]]:
    """A line's wrapping markup taken off: (what opens it, the inside, what closes it)."""
    opening, closing = [], []
    while True:
        match = WRAPPER.match(line)
        if not match:
            return opening, line, closing
        head, tag, rest = match.groups()
        if tag is None:  # {\an8}: it opens the line, nothing closes it
            opening.append(head)
            line = rest
            continue
        close = f"</{tag}>"
        if tag == "v" and not rest.endswith(close):  # <v Anna>: the voice of the line, never closed
            opening.append(head)
            line = rest
            continue
        if not rest.endswith(close) or rest.count(f"<{tag}") != rest.count(close) - 1:
            return opening, line, closing
        opening.append(head)
        closing.insert(0, close)
        line = rest[: -len(close)]


def read_inline(builder: MarkedBuilder, text: str, vtt: bool) -> None:
    """A line's inside into a builder: inline tags as tags, timestamps and overrides as atoms."""
    cursor, depth = 0, 0
    for match in MARKUP.finditer(text):
        builder.text(html.unescape(text[cursor : match.start()]) if vtt else text[cursor : match.start()])
        cursor = match.end()
        closing, tag = match.group(1), match.group(2)
        if tag is None or tag[0].isdigit() or (not closing and tag == "v"):
            builder.atom(match.group())  # {\an8}, <00:01.000>, <v Anna> (never closed): where they stand
        elif closing and depth:
            builder.close()
            depth -= 1
        elif closing:
            builder.atom(match.group())
        else:
            builder.open((match.group(), f"</{tag.split('.')[0]}>"))
            depth += 1
    builder.text(html.unescape(text[cursor:]) if vtt else text[cursor:])


def groups(cues: list[Cue]) -> list[list[Cue]]:
    """Cues that make up one sentence (or a few), in order."""
    found: list[list[Cue]] = []
    for cue in cues:
        inside = " ".join(unwrap(line)[1] for line in cue.lines).strip()
        starts_turn = inside.startswith(("-", "–"))
        if found and not starts_turn and len(found[-1]) < MAX_GROUP and not ends_sentence(found[-1][-1]):
            found[-1].append(cue)
        else:
            found.append([cue])
    return found


def ends_sentence(cue: Cue) -> bool:
    inside = " ".join(unwrap(line)[1] for line in cue.lines).strip()
    return not inside or bool(SENTENCE_END.search(MARKUP.sub("", inside)))


def translate_cues(cues: list[Cue], translator: Translator, config: DecodeConfig, vtt: bool) -> dict[int, list[str]]:
    """The translated text lines of every cue (by id), the cues of a sentence translated together."""
    grouped = groups(cues)
    blocks = []
    for group in grouped:
        parts = [cue_block(cue, vtt) for cue in group]
        builder = MarkedBuilder()
        for part in parts:  # the cues' blocks joined by spaces, their tags and atoms shifted
            if builder.length and part.text:
                builder.text(" ")
            for kind, value in part.events():
                builder.text(value) if kind == "text" else builder.atom(value) if kind == "atom" else builder.open(
                    value.kind
                ) if kind == "open" else builder.close()
        blocks.append(builder.build())
    translated = translate_blocks(blocks, translator, config)
    # A group whose translation has fewer words than it has cues: its cues one by one instead.
    short = [k for k, (group, t) in enumerate(zip(grouped, translated)) if len(group) > 1 and len(t.text.split()) < len(group)]
    alone = iter(translate_blocks([cue_block(cue, vtt) for k in short for cue in grouped[k]], translator, config))
    result: dict[int, list[str]] = {}
    for k, (group, translation) in enumerate(zip(grouped, translated)):
        weights = [sum(len(unwrap(line)[1]) for line in cue.lines) for cue in group]
        parts = [next(alone) for _ in group] if k in short else share_out(translation, weights)
        for cue, part in zip(group, parts):
            result[id(cue)] = cue_lines(cue, part, vtt)
    return result


def cue_block(cue: Cue, vtt: bool) -> Marked:
    """A cue's text lines as one block of marked text."""
    builder = MarkedBuilder()
    for line in cue.lines:
        if builder.length:
            builder.text(" ")
        read_inline(builder, unwrap(line)[1], vtt)
    return builder.build()


def cue_lines(cue: Cue, part: Marked, vtt: bool) -> list[str]:
    """A cue's share of the translation cut into its number of lines, each line's wrapping put back."""
    if not cue.lines:
        return []
    wrappers = [unwrap(line) for line in cue.lines]
    words = len(part.text.split())
    if words < len(wrappers):  # fewer words than lines: fewer lines (an empty line would end the cue)
        wrappers = wrappers[: max(words, 1)]
    pieces = share_out(part, [max(len(inside), 1) for _, inside, _ in wrappers])
    return ["".join(opening) + render(piece, vtt) + "".join(closing) for (opening, _, closing), piece in zip(wrappers, pieces)]


def render(marked: Marked, vtt: bool) -> str:
    """A cue line from its marked translation: tags as written, text escaped in WebVTT."""
    out = []
    for kind, value in marked.events():
        if kind == "text":
            out.append(html.escape(value, quote=False) if vtt else value)
        elif kind == "atom":
            out.append(value)
        else:
            out.append(value.kind[0] if kind == "open" else value.kind[1])
    return "".join(out)

"""What the formats share: reading UTF-8 with a clear error, and cutting a marked translation into
parts by length at word boundaries (a sentence shared out over subtitle cues, a cue over lines)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from xformer_cli.documents.inline import Marked, Tag
from xformer_cli.errors import DocumentError

WORD_START = re.compile(r"(?<=\s)\S")
SENTENCE_END = re.compile(r"[.!?…:]['\"”’»)\]]*$")


def decode_utf8(data: bytes, name: str) -> str:
    """The text of a file; a DocumentError naming the first bad byte if it is not UTF-8 (a BOM is kept)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DocumentError(f"{name}: line {line}: not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})") from None


def share_out(marked: Marked, weights: Sequence[int]) -> list[Marked]:
    """`marked` cut at word boundaries into len(weights) parts whose lengths follow the weights;
    no part is empty while there are words enough, and no word is lost. A cut avoids the inside
    of a tag where a boundary outside one is as near; a tag cut anyway is split in two."""
    if len(weights) <= 1:
        return [marked] * len(weights)
    starts = [m.start() for m in WORD_START.finditer(marked.text)]  # where a cut may go
    total = max(sum(weights), 1)
    cuts, used = [], 0
    for k in range(1, len(weights)):
        target = len(marked.text) * sum(weights[:k]) / total
        free = [p for p in starts if p > used and len(starts) - starts.index(p) >= len(weights) - k]
        if not free:
            cuts.append(len(marked.text))
            continue
        best = min(free, key=lambda p: (cost(marked.text, p, target) + (len(marked.text) / 4 if inside_tag(marked, p) else 0), p))
        cuts.append(best)
        used = best
    bounds = [0, *cuts, len(marked.text)]
    return [cut(marked, bounds[k], bounds[k + 1]) for k in range(len(weights))]


def cost(text: str, position: int, target: float) -> float:
    """How far a cut is from where the lengths put it, less for a cut after a sentence's end."""
    after_sentence = SENTENCE_END.search(text[:position].rstrip()) is not None
    return abs(position - target) - (len(text) / 3 if after_sentence else 0)


def inside_tag(marked: Marked, position: int) -> bool:
    return any(tag.start < position < tag.end for tag in marked.tags)


def cut(marked: Marked, start: int, end: int) -> Marked:
    """The part of `marked` from `start` to `end`, stripped; tags clipped to it (a tag outside it left out)."""
    text = marked.text[start:end]
    lead = len(text) - len(text.lstrip())
    text = text.strip()
    begin = start + lead
    tags = tuple(
        Tag(max(tag.start, begin) - begin, min(tag.end, begin + len(text)) - begin, tag.kind)
        for tag in marked.tags
        if tag.start < begin + len(text) and tag.end > begin or (tag.start == tag.end and begin <= tag.start < begin + max(len(text), 1))
    )
    return Marked(text, tuple(Tag(max(t.start, 0), max(t.end, max(t.start, 0)), t.kind) for t in tags), marked.atoms)


def translate_text(data: bytes, translator, config, name: str = "<input>") -> bytes:
    """Plain text: one translated line per line, line endings kept (the command line's plain path
    streams instead; this one is for a whole file at once, as the server's)."""
    text = decode_utf8(data, name)
    if "\x00" in text or data.startswith(b"PK\x03\x04"):
        raise DocumentError(f"{name}: a binary file, not text lines")
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.replace("\r\n", "\n").split("\n")
    end = lines.pop() if lines and lines[-1] == "" else None
    translated = [nbest[0].text for nbest in translator.translate_nbest([line.strip() for line in lines], config)]
    return newline.join(translated + ([""] if end is not None else [])).encode("utf-8")

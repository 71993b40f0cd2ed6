"""Word documents (.docx) translated with their layout and inline formatting kept.

Every paragraph (`w:p`) of every story is one block: the body with its tables (nested ones too)
and text boxes, the headers and footers of every section, footnotes, endnotes and comments. A
paragraph is rewritten only in its runs; its properties (`w:pPr`), the tables, sections, styles,
images and relationships around it are never touched, so the document keeps its layout.

Within a paragraph, the formatting of most characters is the paragraph's own; each stretch of
text in runs formatted otherwise (bold, italic, a character style) becomes a tag whose kind is
that run's `w:rPr`, and a hyperlink (or a tracked insertion, a smart tag) becomes a tag whose kind
is that element without its runs. Tabs, breaks, note references, images and whole fields (from
their `begin` to their `end`, result included: a page number or a date must not be reworded)
are atoms, their XML moved into the translation where the model put them. Atoms before the
first word or after the last (a footnote's own number, a trailing note reference) stay at the
edges without going through the model. Bookmarks and comment ranges cannot be aligned to words:
those before the text stay before it, the others follow it. Proofing marks and Word's cached
page breaks are dropped, as they describe the German text.

python-docx is the optional extra `documents`; it is imported only when a .docx is translated.
"""

from __future__ import annotations

import copy
import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.blocks import translate_blocks
from xformer_cli.documents.inline import Marked, MarkedBuilder
from xformer_cli.errors import DocumentError

W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"
# The parts that hold paragraphs, by the end of their content type.
STORY_TYPES = (
    ".document.main+xml",
    ".template.main+xml",
    ".document.macroEnabled.main+xml",
    ".template.macroEnabledTemplate.main+xml",
    ".header+xml",
    ".footer+xml",
    ".footnotes+xml",
    ".endnotes+xml",
    ".comments+xml",
)
WRAPPERS = {W + name for name in ("hyperlink", "ins", "moveTo", "smartTag", "customXml")}  # hold runs: tags
MARKERS = ("bookmarkStart", "bookmarkEnd", "Range", "permStart", "permEnd")  # zero-width, by local name
DROPPED = {W + "proofErr", W + "lastRenderedPageBreak", W + "softHyphen"}  # stale once the text is English
SPACING = {W + name for name in ("tab", "br", "cr", "ptab")}  # atoms that are white space themselves
NOISE = {W + "lang", W + "noProof"}  # run properties that do not make formatting differ


@dataclass(frozen=True, eq=False)
class RunStyle:
    """A tag's kind: text formatted as this run's properties (None: no `w:rPr`)."""

    rpr: Any


@dataclass(frozen=True, eq=False)
class Wrapper:
    """A tag's kind: an element around runs (a hyperlink), kept without its runs."""

    element: Any


@dataclass(frozen=True, eq=False)
class Item:
    """One thing of a paragraph in reading order: "text", "atom" (`value`: a list of
    (rPr, run child) pairs or of whole elements), "open" (a Wrapper), "close", or "marker"."""

    kind: str
    value: Any = None
    rpr: Any = None
    key: bytes = b""


@dataclass
class ParagraphReader:
    """Reads one paragraph into items; holds the field being collected (fields span runs)."""

    items: list[Item] = field(default_factory=list)
    field_parts: list[Any] = field(default_factory=list)
    depth: int = 0

    def container(self, element: Any) -> None:
        for child in element:
            tag = child.tag
            if tag == W + "pPr" or tag in DROPPED or not isinstance(tag, str):
                continue
            if tag == W + "r":
                self.run(child)
            elif tag in WRAPPERS:
                self.items.append(Item("open", Wrapper(without_runs(child))))
                self.container(child)
                self.items.append(Item("close"))
            elif any(marker in tag for marker in MARKERS):
                self.items.append(Item("marker", child))
            else:  # a simple field, a deletion, a content control, math: kept whole
                self.items.append(Item("atom", [child]))

    def run(self, run: Any) -> None:
        rpr = run.find(W + "rPr")
        key = style_key(rpr)
        for child in run:
            tag = child.tag
            if tag == W + "rPr" or tag in DROPPED or not isinstance(tag, str):
                continue
            if tag == W + "fldChar" or self.depth > 0:
                self.field(rpr, child)
            elif tag == W + "t":
                self.items.append(Item("text", child.text or "", rpr, key))
            elif tag == W + "noBreakHyphen":
                self.items.append(Item("text", "-", rpr, key))
            else:
                self.items.append(Item("atom", [(rpr, child)], rpr, key))

    def field(self, rpr: Any, child: Any) -> None:
        """A field from its `begin` to its matching `end` is one atom."""
        kind = child.get(W + "fldCharType")
        self.depth += (kind == "begin") - (kind == "end")
        self.field_parts.append((rpr, child))
        if self.depth <= 0:
            self.finish()

    def finish(self) -> None:
        if self.field_parts:
            self.items.append(Item("atom", self.field_parts))
        self.field_parts, self.depth = [], 0


def without_runs(element: Any) -> Any:
    """A copy of a wrapper element without its content (its runs come from the translation)."""
    template = copy.deepcopy(element)
    for child in list(template):
        if child.tag == W + "r" or child.tag in WRAPPERS:
            template.remove(child)
    return template


def style_key(rpr: Any) -> bytes:
    """What makes two runs' formatting the same: their properties, less the language and proofing."""
    if rpr is None:
        return b""
    from lxml import etree

    trimmed = copy.deepcopy(rpr)
    for child in list(trimmed):
        if child.tag in NOISE:
            trimmed.remove(child)
    fonts = trimmed.find(W + "rFonts")
    if fonts is not None:
        fonts.attrib.pop(W + "hint", None)
        if not fonts.attrib:
            trimmed.remove(fonts)
    return etree.tostring(trimmed, method="c14n") if len(trimmed) else b""


@dataclass
class Paragraph:
    """A paragraph read for translation: its block, its main formatting, what stays at its edges."""

    element: Any
    block: Marked
    main: Any  # the w:rPr of the text outside tags
    before: list[Item]
    after: list[Item]


def read_paragraph(element: Any) -> Paragraph | None:
    """A paragraph's block, or None for one without words (left exactly as it is)."""
    reader = ParagraphReader()
    reader.container(element)
    reader.finish()
    items = reader.items
    texts = [i for i, item in enumerate(items) if item.kind == "text" and item.value.strip()]
    if not texts:
        return None
    first = next(i for i, item in enumerate(items) if item.kind in ("text", "open"))
    last = max(i for i, item in enumerate(items) if item.kind in ("text", "close"))
    middle = items[first : last + 1]
    lengths: dict[bytes, int] = {}
    for item in middle:
        if item.kind == "text":
            lengths[item.key] = lengths.get(item.key, 0) + len(item.value)
    main_key = max(lengths, key=lengths.__getitem__)
    main = next(item.rpr for item in middle if item.kind == "text" and item.key == main_key)
    markers = [item for item in middle if item.kind == "marker"]
    return Paragraph(element, build_block(middle, main_key), main, items[:first], markers + items[last + 1 :])


def build_block(items: list[Item], main_key: bytes) -> Marked:
    """The block of a paragraph's items: text formatted otherwise than `main_key` inside a tag."""
    builder = MarkedBuilder()
    style: bytes | None = None  # the key of the open RunStyle tag

    def close_style() -> None:
        nonlocal style
        if style is not None:
            builder.close()
            style = None

    for item in items:
        if item.kind == "text":
            if item.key != style:
                close_style()
                if item.key != main_key:
                    builder.open(RunStyle(item.rpr))
                    style = item.key
            builder.text(item.value)
        elif item.kind == "atom":
            if item.key != style:
                close_style()
            builder.atom(item.value)
        elif item.kind in ("open", "close"):
            close_style()
            builder.open(item.value) if item.kind == "open" else builder.close()
    return builder.build()


def write_paragraph(paragraph: Paragraph, block: Marked) -> None:
    """The paragraph's runs rebuilt from the translated block; `w:pPr` kept."""
    element = paragraph.element
    for child in list(element):
        if child.tag != W + "pPr":
            element.remove(child)
    append_items(element, paragraph.before)
    containers, styles, kinds, made = [element], [paragraph.main], [], []
    for event, value in tidy(list(block.events())):
        if event == "open":
            kinds.append(value.kind)
            if isinstance(value.kind, Wrapper):
                wrapper = copy.deepcopy(value.kind.element)
                containers[-1].append(wrapper)
                containers.append(wrapper)
            else:
                styles.append(value.kind.rpr)
        elif event == "close":
            (containers if isinstance(kinds.pop(), Wrapper) else styles).pop()
        elif event == "text":
            add_text(containers[-1], styles[-1], value, made)
        else:
            containers[-1].extend(atom_elements(value))
    append_items(element, paragraph.after)


def tidy(events: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Events without the spaces the translation puts around a tab or a break (the model writes
    its placeholder as a word between spaces; beside a tab or a line end a space is noise)."""
    spacing = [event == "atom" and all(isinstance(p, tuple) and p[1].tag in SPACING for p in value) for event, value in events]
    result = []
    for i, (event, value) in enumerate(events):
        if event == "text":
            value = value.rstrip(" ") if i + 1 < len(events) and spacing[i + 1] else value
            value = value.lstrip(" ") if i and spacing[i - 1] else value
        if value or event != "text":
            result.append((event, value))
    return result


def append_items(element: Any, items: list[Item]) -> None:
    for item in items:
        element.extend([item.value] if item.kind == "marker" else atom_elements(item.value))


def atom_elements(parts: list[Any]) -> Iterator[Any]:
    """An atom's elements: whole elements as they are, run children in runs of their own
    properties (consecutive children of the same run properties in one run)."""
    from docx.oxml import OxmlElement

    run, run_rpr = None, None
    for part in parts:
        if not isinstance(part, tuple):
            run = None
            yield part
            continue
        rpr, child = part
        if run is None or rpr is not run_rpr:
            run, run_rpr = OxmlElement("w:r"), rpr
            if rpr is not None:
                run.append(copy.deepcopy(rpr))
            yield run
        run.append(child)


def add_text(container: Any, rpr: Any, text: str, made: list[tuple[Any, Any]]) -> None:
    """Text appended as a run with a copy of `rpr`, or to the text run made just before in the
    same container with the same `rpr` (an empty tag between two stretches does not split them)."""
    last = container[-1] if len(container) else None
    if made and last is made[-1][0] and made[-1][1] is rpr:
        last[-1].text += text
    else:
        made.append((text_run(rpr, text), rpr))
        container.append(made[-1][0])


def text_run(rpr: Any, text: str) -> Any:
    """A run of text with a copy of `rpr`; its spaces kept (`xml:space="preserve"`)."""
    from docx.oxml import OxmlElement

    run = OxmlElement("w:r")
    if rpr is not None:
        run.append(copy.deepcopy(rpr))
    t = OxmlElement("w:t")
    t.text = text
    t.set(XML_SPACE, "preserve")
    run.append(t)
    return run


def stories(document: Any) -> Iterator[tuple[Any, Any]]:
    """(part, root element) of every part that holds paragraphs. python-docx parses the body,
    headers, footers and comments; footnotes and endnotes come as plain parts, parsed here."""
    from docx.oxml import parse_xml

    for part in document.part.package.iter_parts():
        if part.content_type.endswith(STORY_TYPES):
            yield part, part.element if hasattr(part, "element") else parse_xml(part.blob)


def open_document(data: bytes, name: str) -> Any:
    """The python-docx Document of `data`, or a DocumentError naming the file."""
    try:
        import docx
    except ImportError:
        raise DocumentError(f"{name}: Word documents need python-docx: pip install 'xformer-cli[documents]'") from None
    try:
        return docx.Document(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise DocumentError(f"{name}: not a Word document (not a zip file)") from None
    except (KeyError, ValueError, SyntaxError) as error:  # no content types, not a document part, bad XML
        raise DocumentError(f"{name}: not a Word document ({reason(error)})") from None


def reason(error: Exception) -> str:
    """An exception's message on one line (a KeyError's without the quotes its str adds)."""
    return " ".join(str(error.args[0] if error.args else error).split())


def translate_docx(data: bytes, translator: Translator, config: DecodeConfig, name: str = "<input>") -> bytes:
    """A .docx with every paragraph translated (all blocks in one batched search), as bytes."""
    document = open_document(data, name)
    try:
        parts = list(stories(document))
    except SyntaxError as error:  # a footnotes or endnotes part that is not XML
        raise DocumentError(f"{name}: not a Word document ({reason(error)})") from None
    paragraphs = [p for _, root in parts for p in map(read_paragraph, root.iter(W + "p")) if p is not None]
    for paragraph, block in zip(paragraphs, translate_blocks([p.block for p in paragraphs], translator, config)):
        write_paragraph(paragraph, block)
    from docx.opc.oxml import serialize_part_xml

    for part, root in parts:
        if not hasattr(part, "element"):
            part._blob = serialize_part_xml(root)  # a plain Part: python-docx saves its blob
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()

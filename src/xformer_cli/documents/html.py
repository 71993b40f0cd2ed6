"""HTML: text translated sentence by sentence across inline tags, everything else byte for byte.

The standard library's HTML parser (`html.parser`, the tokenizer of the HTML standard's rules
that Python keeps) cuts the page into tokens; each token's source text is kept, so tags,
attributes, comments and whitespace outside the text come back exactly as written.

A block is the text between two block-level tags (`<p>`, `<li>`, `<td>`, `<h1>`, `<div>`, …).
Inline elements (`<a>`, `<b>`, `<em>`, `<span>`, …) in it become tags that the translation
carries to the aligned English words (`documents/blocks.py`); `<br>`, `<img>`, inline `<code>`
and anything marked `translate="no"` are atoms, kept whole. `script`, `style`, `pre`, `code`,
`textarea` and elements with `translate="no"` are not translated at all. The `alt`, `title`,
`placeholder` and `aria-label` attributes are translated in place; a `lang` attribute naming
German becomes `en`.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.blocks import translate_blocks
from xformer_cli.documents.inline import Marked, MarkedBuilder
from xformer_cli.documents.text import decode_utf8
from xformer_cli.errors import DocumentError

INLINE = frozenset(
    "a abbr b bdi bdo big cite data del dfn em font i ins kbd label mark q s samp small span strike strong sub sup time tt u var".split()
)
ATOMS = frozenset("br img wbr input button select svg math object".split())  # inline, kept whole
SKIPPED = frozenset("script style pre code textarea noscript template kbd samp var".split())
VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
TRANSLATED_ATTRIBUTES = ("alt", "title", "placeholder", "aria-label")
ATTRIBUTE = re.compile(r"""(\s(?P<name>[\w:-]+)\s*=\s*)("(?P<d>[^"]*)"|'(?P<s>[^']*)'|(?P<u>[^\s"'>]+))""")


@dataclass(frozen=True)
class Token:
    """One piece of the page: its kind ("start", "end", "startend", "data", "ref", "other"),
    its source text, and for tags the tag's name and attributes."""

    kind: str
    raw: str
    tag: str = ""
    attrs: tuple[tuple[str, str | None], ...] = ()


class Tokenizer(HTMLParser):
    """The page as tokens whose source texts, concatenated, are the page byte for byte."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self.source = text
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.found: list[tuple[int, str, str, tuple]] = []  # (offset, kind, tag, attrs)
        self.feed(text)
        self.close()

    def position(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag, attrs):
        self.found.append((self.position(), "start", tag, tuple(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.found.append((self.position(), "startend", tag, tuple(attrs)))

    def handle_endtag(self, tag):
        self.found.append((self.position(), "end", tag, ()))

    def handle_data(self, data):
        self.found.append((self.position(), "data", "", ()))

    def handle_entityref(self, name):
        self.found.append((self.position(), "ref", "", ()))

    def handle_charref(self, name):
        self.found.append((self.position(), "ref", "", ()))

    def handle_comment(self, data):
        self.found.append((self.position(), "other", "", ()))

    handle_decl = handle_pi = unknown_decl = handle_comment

    def tokens(self) -> list[Token]:
        ends = [offset for offset, *_ in self.found[1:]] + [len(self.source)]
        head = [Token("other", self.source[: self.found[0][0]])] if self.found and self.found[0][0] else []
        return head + [Token(kind, self.source[start:end], tag, attrs) for (start, kind, tag, attrs), end in zip(self.found, ends)]


@dataclass
class Page:
    """The page read: output pieces in order, each a string or the index of a translated block."""

    pieces: list[str | int] = field(default_factory=list)
    blocks: list[Marked] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)  # attribute values to translate


def translate_html(data: bytes, translator: Translator, config: DecodeConfig, name: str = "<input>") -> bytes:
    """An HTML page (or fragment) translated, its markup kept byte for byte."""
    text = decode_utf8(data, name)
    if "\x00" in text:
        raise DocumentError(f"{name}: line {text[: text.index(chr(0))].count(chr(10)) + 1}: a NUL byte: this is no HTML text")
    page = read(Tokenizer(text).tokens())
    plain = [Marked(value) for value in page.attributes]
    translated = translate_blocks(page.blocks + plain, translator, config)
    blocks, attributes = translated[: len(page.blocks)], [m.text for m in translated[len(page.blocks) :]]
    values = dict(zip(page.attributes, attributes))
    out = [
        render(blocks[piece], values)
        if isinstance(piece, int)
        else render(piece, values, translated=False)
        if isinstance(piece, Marked)
        else with_attributes(piece, values)
        for piece in page.pieces
    ]
    return "".join(out).encode("utf-8")


def skipped(token: Token) -> bool:
    """Whether an element is left untranslated, with all it holds."""
    return token.tag in SKIPPED or dict(token.attrs).get("translate") == "no"


def read(tokens: list[Token]) -> Page:
    """Tokens into output pieces and blocks of marked text."""
    page = Page()
    builder, opened, raw = MarkedBuilder(), [], []  # the block being read, its open inline tags (name, kind), its source
    i = 0
    while i < len(tokens):
        token = tokens[i]
        collect(token, page)
        if token.kind == "start" and skipped(token) and token.tag not in VOID:
            end = closing(tokens, i)
            whole = "".join(t.raw for t in tokens[i : end + 1])
            for inner in tokens[i + 1 : end + 1]:
                collect(inner, page)
            if token.tag in INLINE or token.tag == "code":  # inline, untranslated: kept whole where it stands
                builder.atom(whole)
                raw.append(whole)
            else:
                flush(page, builder, raw)
                builder, opened, raw = MarkedBuilder(), [], []
                page.pieces.append(whole)
            i = end + 1
            continue
        if ends_block(token, builder):
            flush(page, builder, raw)
            builder, opened, raw = MarkedBuilder(), [], []
            page.pieces.append(token.raw)
        else:
            raw.append(token.raw)
            read_inline(token, builder, opened)
        i += 1
    flush(page, builder, raw)
    return page


def ends_block(token: Token, builder: MarkedBuilder) -> bool:
    """Whether a token ends the block being read: a block-level tag, a comment or declaration
    between blocks."""
    if token.kind in ("data", "ref"):
        return False
    if token.kind == "other":
        return not builder.length
    return token.tag not in INLINE and token.tag not in ATOMS


def read_inline(token: Token, builder: MarkedBuilder, opened: list) -> None:
    """A token inside a block into the block: text, an inline tag opened or closed, an atom."""
    if token.kind == "data":
        builder.text(token.raw)
    elif token.kind == "ref":
        builder.text(html.unescape(token.raw))
    elif token.kind in ("start", "startend") and (token.tag in ATOMS or token.tag in VOID):
        builder.atom(token.raw)
    elif token.kind == "start":
        kind = [token.raw, ""]
        builder.open(kind)
        opened.append((token.tag, kind))
    elif token.kind == "end" and any(tag == token.tag for tag, _ in opened):
        while opened:
            tag, kind = opened.pop()
            builder.close()
            if tag == token.tag:
                kind[1] = token.raw
                break
    else:  # an end tag of nothing open here, a comment: kept where it stands
        builder.atom(token.raw)


def closing(tokens: list[Token], start: int) -> int:
    """The index of the end tag that closes the element started at `start` (or the last token)."""
    depth, tag = 0, tokens[start].tag
    for i in range(start, len(tokens)):
        if tokens[i].tag == tag and tokens[i].kind == "start":
            depth += 1
        elif tokens[i].tag == tag and tokens[i].kind == "end":
            depth -= 1
            if depth == 0:
                return i
    return len(tokens) - 1


def flush(page: Page, builder: MarkedBuilder, raw: list[str]) -> None:
    """The block read so far into the page: as a block to translate if it has words, else as written.
    Whitespace at its edges stays outside it, as written."""
    marked = builder.build()
    if not any(ch.isalpha() for ch in marked.plain):
        page.pieces.extend(raw)
        return
    page.blocks.append(collapse(marked))
    page.pieces.append(len(page.blocks) - 1)


def collapse(marked: Marked) -> Marked:
    """Runs of whitespace inside a block as one space (HTML shows them so); the edges kept."""
    keep, text, mapping = [], marked.text, []
    lead, trail = len(text) - len(text.lstrip()), len(text.rstrip())
    for i, ch in enumerate(text):
        mapping.append(len(keep))
        if lead <= i < trail and ch.isspace() and (i > lead and text[i - 1].isspace()):
            continue
        keep.append(" " if lead <= i < trail and ch.isspace() else ch)
    mapping.append(len(keep))
    tags = tuple(type(t)(mapping[t.start], mapping[t.end], t.kind) for t in marked.tags)
    return Marked("".join(keep), tags, marked.atoms)


def collect(token: Token, page: Page) -> None:
    """The translatable attribute values of a tag, to translate with the text."""
    if token.kind in ("start", "startend"):
        for name, value in token.attrs:
            if name in TRANSLATED_ATTRIBUTES and value and any(ch.isalpha() for ch in value) and value not in page.attributes:
                page.attributes.append(value)


def with_attributes(raw: str, values: dict[str, str]) -> str:
    """A tag's source text with its translatable attributes translated and a German `lang` made `en`."""
    if not raw.startswith("<") or raw.startswith(("<!", "</", "<?")):
        return raw

    def replace(match: re.Match[str]) -> str:
        name = match.group("name").lower()
        value = next(v for v in (match.group("d"), match.group("s"), match.group("u")) if v is not None)
        if name in ("lang", "xml:lang") and value.lower().split("-")[0] == "de":
            new = "en"
        elif name in TRANSLATED_ATTRIBUTES and html.unescape(value) in values:
            new = html.escape(values[html.unescape(value)], quote=True)
        else:
            return match.group()
        quote = '"' if match.group("d") is not None else "'" if match.group("s") is not None else '"'
        return f"{match.group(1)}{quote}{new}{quote}"

    return ATTRIBUTE.sub(replace, raw)


def render(marked: Marked, values: dict[str, str]) -> str:
    """A translated block as HTML: text escaped, tags and atoms as written (attributes translated)."""
    out = []
    for kind, value in marked.events():
        if kind == "text":
            out.append(html.escape(value, quote=False))
        elif kind == "atom":
            out.append(value if value.startswith("<!--") else "".join(with_attributes(t.raw, values) for t in Tokenizer(value).tokens()))
        else:
            out.append(with_attributes(value.kind[0], values) if kind == "open" else value.kind[1])
    return "".join(out)

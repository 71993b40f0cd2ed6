from html.parser import HTMLParser
from pathlib import Path

import pytest

from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.html import translate_html
from xformer_cli.errors import DocumentError


@pytest.fixture(scope="module")
def translator(trained_bundle_dir):
    """The tiny stored bundle: its English is poor but the same on every run."""
    return Translator.load(str(trained_bundle_dir), device="cpu")


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "documents"
PAGE = """<!DOCTYPE html>
<html lang="de">
<head><meta charset="utf-8"><title>Willkommen</title>
<style>p { color: red; }</style></head>
<body>
  <h1 class="x">Das neue Rathaus</h1>
  <p>Das <a href="/haus.html" title="Mehr über das Haus">rote Haus</a> steht in <b>Berlin</b>.
     Es ist <em>sehr <i>alt</i></em> &amp; schön.</p>
  <p>Klicken Sie auf <code>speichern()</code>, um die Datei zu sichern.<br>Danke!</p>
  <img src="a.png" alt="Ein Hund im Park">
  <p translate="no">Nicht übersetzen</p>
  <ul><li>Erster Punkt</li><li>Zweiter <span class="k">Punkt</span></li></ul>
  <pre>Hallo   Welt</pre>
  <script>var x = "<b>Hallo</b>";</script>
  <!-- ein Kommentar -->
</body>
</html>
"""


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}  # no end tags


class Tags(HTMLParser):
    """Every tag of a page with its attributes, in order, and whether they nest properly."""

    def __init__(self, text):
        super().__init__()
        self.found, self.stack, self.nested = [], [], True
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.found.append(("start", tag, [(k, v) for k, v in attrs if k not in ("alt", "title", "lang")]))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):  # <br/>, <input ... />: no end tag follows
        self.found.append(("start", tag, [(k, v) for k, v in attrs if k not in ("alt", "title", "lang")]))

    def handle_endtag(self, tag):
        self.found.append(("end", tag))
        self.nested = self.nested and bool(self.stack) and self.stack.pop() == tag


def test_tags_and_attributes_stay_nested_and_the_text_changes(translator):
    out = translate_html(PAGE.encode(), translator, translator.config(), "t.html").decode()
    # the same tags with the same attributes (inline ones may change order with the words), nested
    assert sorted(map(str, Tags(out).found)) == sorted(map(str, Tags(PAGE).found)) and Tags(out).nested
    block_level = [t for t in Tags(PAGE).found if t[1] not in ("a", "b", "em", "i", "span", "code", "br")]
    assert [t for t in Tags(out).found if t[1] not in ("a", "b", "em", "i", "span", "code", "br")] == block_level
    assert '<html lang="en">' in out and "Rathaus" not in out and "Ein Hund im Park" not in out
    for kept in (
        "<code>speichern()</code>",
        '<p translate="no">Nicht übersetzen</p>',
        "<pre>Hallo   Welt</pre>",
        '<script>var x = "<b>Hallo</b>";</script>',
        "<!-- ein Kommentar -->",
        '<a href="/haus.html" title="',
    ):
        assert kept in out


def test_a_block_is_the_translation_of_its_text(translator):
    out = translate_html(b"<p>Ich habe <b>Hunger</b>.</p>", translator, translator.config(), "t.html").decode()
    inner = out.removeprefix("<p>").removesuffix("</p>").replace("<b>", "").replace("</b>", "")
    assert inner == translator.translate(["Ich habe Hunger."])[0].replace("&", "&amp;").replace("<", "&lt;")


def test_binary_and_bad_utf8_are_one_line_errors(translator):
    with pytest.raises(DocumentError, match=r"page.html: line 2: not valid UTF-8 \(byte 0xff"):
        translate_html(b"<p>a</p>\n\xff", translator, translator.config(), "page.html")
    with pytest.raises(DocumentError, match="NUL byte"):
        translate_html(b"<p>a\x00</p>", translator, translator.config(), "page.html")


def test_a_real_german_web_page_keeps_its_structure(translator):
    """A page of the Ada & Zangemann book's site (tests/fixtures/documents/SOURCES.md): menus, a
    select, inline links with nested strong, a bare `&`, meta tags and a script."""
    source = (FIXTURES / "ada-zangemann-fsfe.de.html").read_text(encoding="utf-8")
    out = translate_html(source.encode(), translator, translator.config(), "fsfe.html").decode()
    assert sorted(map(str, Tags(out).found)) == sorted(map(str, Tags(source).found)) and Tags(out).nested
    inline = ("a", "strong", "span", "label", "input")
    assert [t for t in Tags(out).found if t[1] not in inline] == [t for t in Tags(source).found if t[1] not in inline]

    def head(page: str) -> str:  # the head without its title, the one text of it that is translated
        start, end = page.index("<title>"), page.index("</title>")
        return page[:start] + page[end : page.index("</head>")]

    assert head(out) == head(source).replace('<html lang="de">', '<html lang="en">')
    assert out[out.index("<script") :] == source[source.index("<script") :]
    assert "gemeinnütziger Verein" not in out and "Schreiben Sie uns" not in out

"""Word documents: every story's paragraphs translated, formatting, links, fields and structure kept.

The document is built here with python-docx (a footnote added to its zip by hand, as python-docx
cannot make one), so the test shows everything it holds.
"""

from __future__ import annotations

import io
import re
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("docx")

import docx  # noqa: E402
from docx.opc.constants import RELATIONSHIP_TYPE as RT  # noqa: E402
from docx.oxml import OxmlElement, parse_xml  # noqa: E402
from docx.oxml.ns import qn  # noqa: E402
from lxml import etree  # noqa: E402

from xformer_cli.decoding.translator import Translator  # noqa: E402
from xformer_cli.documents.blocks import translate_blocks  # noqa: E402
from xformer_cli.documents.docx import W, read_paragraph, translate_docx  # noqa: E402
from xformer_cli.documents.inline import MarkedBuilder  # noqa: E402
from xformer_cli.errors import DocumentError  # noqa: E402

URL = "https://example.org/tom"
NOTES = (
    '<w:footnotes xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
    '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
    '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p></w:footnote>'
    '<w:footnote w:id="1"><w:p><w:r><w:footnoteRef/></w:r><w:r><w:t xml:space="preserve"> Das ist unser Haus.</w:t></w:r></w:p>'
    "</w:footnote></w:footnotes>"
)
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "documents"
FOOTNOTES_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml"


def hyperlink(paragraph, text: str, url: str) -> None:
    """A w:hyperlink around one run (python-docx has no API for it)."""
    link = OxmlElement("w:hyperlink")
    link.set(qn("r:id"), paragraph.part.relate_to(url, RT.HYPERLINK, is_external=True))
    run = OxmlElement("w:r")
    run.append(parse_xml(f'<w:rPr xmlns:w="{W[1:-1]}"><w:rStyle w:val="Hyperlink"/><w:u w:val="single"/></w:rPr>'))
    t = OxmlElement("w:t")
    t.text = text
    run.append(t)
    link.append(run)
    paragraph._p.append(link)


def field(paragraph, instruction: str, result: str) -> None:
    """A complex field (begin, instruction, separate, result, end) in runs of its own."""
    for xml in (
        '<w:fldChar w:fldCharType="begin"/>',
        f'<w:instrText xml:space="preserve"> {instruction} </w:instrText>',
        '<w:fldChar w:fldCharType="separate"/>',
        f"<w:t>{result}</w:t>",
        '<w:fldChar w:fldCharType="end"/>',
    ):
        paragraph._p.append(parse_xml(f'<w:r xmlns:w="{W[1:-1]}">{xml}</w:r>'))


def with_footnote(data: bytes) -> bytes:
    """The document with word/footnotes.xml, its relationship and content type, and a reference
    to footnote 1 at the end of the paragraph that holds the text "Fußnote"."""
    source, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == "[Content_Types].xml":
                override = f'<Override PartName="/word/footnotes.xml" ContentType="{FOOTNOTES_TYPE}"/>'
                content = content.replace(b"</Types>", override.encode() + b"</Types>")
            elif item.filename == "word/_rels/document.xml.rels":
                rel = '<Relationship Id="rIdNotes" Type="{}" Target="footnotes.xml"/>'.format(RT.FOOTNOTES)
                content = content.replace(b"</Relationships>", rel.encode() + b"</Relationships>")
            elif item.filename == "word/document.xml":
                reference = '<w:r><w:rPr><w:vertAlign w:val="superscript"/></w:rPr><w:footnoteReference w:id="1"/></w:r>'
                content = re.sub(rb"(Fu\xc3\x9fnote\.</w:t></w:r>)", rb"\1" + reference.encode(), content)
            target.writestr(item, content)
        target.writestr("word/footnotes.xml", NOTES)
    return out.getvalue()


def make_document() -> bytes:
    document = docx.Document()
    document.add_heading("Das klingt einfach.", level=1)
    paragraph = document.add_paragraph("Ich bin ")
    paragraph.add_run("im Netz").bold = True
    paragraph.add_run(". Gehe Tom ")
    paragraph.add_run("suchen").italic = True
    paragraph.add_run("!")
    paragraph = document.add_paragraph("Sagen Sie mir bitte, ")
    hyperlink(paragraph, "mit welchem Bus", URL)
    paragraph.add_run(" ich in die Stadt fahren kann.")
    paragraph = document.add_paragraph("Tom:")
    paragraph.add_run().add_tab()
    paragraph.add_run("Er ist inkompetent.")
    document.add_paragraph("Das ist eine Fußnote.")
    document.add_paragraph("")
    table = document.add_table(rows=2, cols=2)
    for cell, text in zip(table._cells, ["Ich kenne sie gut.", "Es war wundervoll.", "Wir sind verärgert."]):
        cell.text = text
    inner = table.cell(1, 1).add_table(rows=1, cols=2)
    inner.cell(0, 0).text, inner.cell(0, 1).text = "Behalten Sie den Rest!", "Runter von Ihrem Pferd!"
    section = document.sections[0]
    section.header.paragraphs[0].text = "Das ist unser Haus."
    footer = section.footer.paragraphs[0]
    footer.text = "Seite "
    field(footer, "PAGE", "1")
    second = document.add_section()
    second.header.is_linked_to_previous = False
    second.header.paragraphs[0].text = "Tom war früher beim Militär."
    document.add_paragraph("Ich hass es, allein zu leben.")
    out = io.BytesIO()
    document.save(out)
    return with_footnote(out.getvalue())


def tagged_blocks() -> list:
    """The blocks the tagged paragraphs of `make_document` should be read as, built by hand."""
    blocks = []
    for parts in (
        ["Ich bin ", ("b", ["im Netz"]), ". Gehe Tom ", ("i", ["suchen"]), "!"],
        ["Sagen Sie mir bitte, ", ("a", [("s", ["mit welchem Bus"])]), " ich in die Stadt fahren kann."],
        ["Tom:", ("atom", "tab"), "Er ist inkompetent."],
        ["Seite ", ("atom", "field")],
    ):
        builder = MarkedBuilder()
        add_parts(builder, parts)
        blocks.append(builder.build())
    return blocks


def add_parts(builder: MarkedBuilder, parts: list) -> None:
    for part in parts:
        if isinstance(part, str):
            builder.text(part)
        elif part[0] == "atom":
            builder.atom(part[1])
        else:
            builder.open(part[0])
            add_parts(builder, part[1])
            builder.close()


STORIES = ("word/document.xml", "word/header1.xml", "word/header2.xml", "word/footer1.xml", "word/footnotes.xml")


def story_paragraphs(data: bytes) -> dict[str, list]:
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        return {name: list(etree.fromstring(package.read(name)).iter(qn("w:p"))) for name in STORIES}


def words(paragraph) -> str:
    """A paragraph's text outside fields (a field's result is not translated)."""
    text, depth = [], 0
    for element in paragraph.iter(qn("w:fldChar"), qn("w:t")):
        if element.tag == qn("w:fldChar"):
            depth += {"begin": 1, "end": -1}.get(element.get(qn("w:fldCharType")), 0)
        elif depth == 0:
            text.append(element.text or "")
    return "".join(text)


def canonical(element) -> bytes:
    return b"" if element is None else etree.tostring(element, method="c14n")


@pytest.fixture(scope="module")
def translator(trained_bundle_dir) -> Translator:
    return Translator.load(str(trained_bundle_dir), device="cpu")


@pytest.fixture(scope="module")
def source() -> bytes:
    return make_document()


@pytest.fixture(scope="module")
def translated(source, translator) -> bytes:
    return translate_docx(source, translator, translator.config(), "brief.docx")


@pytest.fixture(scope="module")
def expected_tagged(translator) -> list:
    return translate_blocks(tagged_blocks(), translator, translator.config())


TAGGED = {
    "Ich bin im Netz. Gehe Tom suchen!",
    "Sagen Sie mir bitte, mit welchem Bus ich in die Stadt fahren kann.",
    "Tom:Er ist inkompetent.",
}


def test_every_story_is_translated_paragraph_by_paragraph(source, translated, translator):
    before, after = story_paragraphs(source), story_paragraphs(translated)
    pairs = [(words(s), words(o)) for name in STORIES for s, o in zip(before[name], after[name], strict=True)]
    plain = [(german, english) for german, english in pairs if german.strip() and german not in TAGGED and german != "Seite "]
    stories = {"Das ist unser Haus.", "Tom war früher beim Militär.", " Das ist unser Haus.", "Runter von Ihrem Pferd!"}
    assert stories <= {g for g, _ in plain}  # header, second section's header, footnote, nested table
    assert len(plain) == 11  # the heading, 2 paragraphs (one with the note's reference), 3 + 2 cells, 2 headers, the note
    for (german, english), expected in zip(plain, translator.translate([g.strip() for g, _ in plain])):
        assert english.strip() == expected and english != german
    assert [o for s, o in pairs if not s.strip()] == [""] * sum(1 for s, _ in pairs if not s.strip())


def test_tagged_paragraphs_read_the_engines_translation(source, translated, expected_tagged):
    after = {words(p): p for p in story_paragraphs(translated)["word/document.xml"]}
    footer = story_paragraphs(translated)["word/footer1.xml"][0]
    bold, link, tab, page = expected_tagged
    assert bold.plain in after and link.plain in after
    assert "".join(tab.plain.split()) in {"".join(text.split()) for text in after}
    assert words(footer).strip() == page.plain.strip()


def runs_with(paragraph, name: str) -> list[str]:
    return [
        "".join(t.text for t in run.iter(qn("w:t")))
        for run in paragraph.iter(qn("w:r"))
        if run.find(f"{qn('w:rPr')}/{qn(name)}") is not None
    ]


def test_bold_italic_and_link_come_back_once_around_their_words(source, translated, expected_tagged):
    bold_block, link_block = expected_tagged[:2]
    paragraphs = {words(p): p for p in story_paragraphs(translated)["word/document.xml"]}
    for name, kind in (("w:b", "b"), ("w:i", "i")):
        (tag,) = [t for t in bold_block.tags if t.kind == kind]
        assert tag.end > tag.start  # the tiny model gives these tags words to hold
        assert runs_with(paragraphs[bold_block.plain], name) == [bold_block.text[tag.start : tag.end]]
    paragraph = paragraphs[link_block.plain]
    (link,) = paragraph.findall(qn("w:hyperlink"))
    (tag,) = [t for t in link_block.tags if t.kind == "a"]
    assert words(link) == link_block.text[tag.start : tag.end] and tag.end > tag.start
    assert [run.find(f"{qn('w:rPr')}/{qn('w:rStyle')}").get(qn("w:val")) for run in link.iter(qn("w:r"))] == ["Hyperlink"]
    (source_link,) = [link for p in story_paragraphs(source)["word/document.xml"] for link in p.iter(qn("w:hyperlink"))]
    assert link.get(qn("r:id")) == source_link.get(qn("r:id"))
    assert docx.Document(io.BytesIO(translated)).part.rels[link.get(qn("r:id"))].target_ref == URL


def test_structure_properties_fields_and_notes_are_kept(source, translated):
    before, after = docx.Document(io.BytesIO(source)), docx.Document(io.BytesIO(translated))
    assert len(after.paragraphs) == len(before.paragraphs) and len(after.sections) == len(before.sections) == 2
    shape = lambda table: [(len(table.rows), len(table.columns), [shape(t) for c in table._cells for t in c.tables])]
    assert [shape(t) for t in after.tables] == [shape(t) for t in before.tables] == [[(2, 2, [[(1, 2, [])]])]]
    old, new = story_paragraphs(source), story_paragraphs(translated)
    for name in STORIES:
        assert [canonical(p.find(qn("w:pPr"))) for p in new[name]] == [canonical(p.find(qn("w:pPr"))) for p in old[name]]
    field_of = lambda p: [canonical(e) for e in p.iter(qn("w:fldChar"), qn("w:instrText"))]
    assert field_of(new["word/footer1.xml"][0]) == field_of(old["word/footer1.xml"][0]) and len(field_of(old["word/footer1.xml"][0])) == 4
    assert [t.text for t in new["word/footer1.xml"][0].iter(qn("w:t"))][-1] == "1"  # the field's result, as it was
    separators, note = new["word/footnotes.xml"][:2], new["word/footnotes.xml"][2]
    assert [canonical(p) for p in separators] == [canonical(p) for p in old["word/footnotes.xml"][:2]]
    assert next(note.iter(qn("w:r")))[0].tag == qn("w:footnoteRef")  # the note's own number stays first
    references = [r for p in new["word/document.xml"] for r in p.iter(qn("w:footnoteReference"))]
    assert len(references) == 1 and references[0].getparent() is list(references[0].getparent().getparent())[-1]
    assert sum(1 for p in new["word/document.xml"] for _ in p.iter(qn("w:tab"))) == 1
    made = [t for name in STORIES for p in new[name] for t in p.iter(qn("w:t")) if words(p) and t.getparent().getparent() is p]
    assert made and all(t.get("{http://www.w3.org/XML/1998/namespace}space") == "preserve" for t in made if t.text != "1")


def test_the_main_formatting_is_that_of_most_characters():
    w = W[1:-1]
    paragraph = parse_xml(
        f'<w:p xmlns:w="{w}"><w:pPr><w:jc w:val="center"/></w:pPr>'
        '<w:r><w:rPr><w:b/><w:lang w:val="de-DE"/></w:rPr><w:t xml:space="preserve">Das ist ein langer Satz </w:t></w:r>'
        '<w:r><w:rPr><w:b/></w:rPr><w:t>in Fettschrift, </w:t></w:r><w:proofErr w:type="spellStart"/>'
        '<w:r><w:t>kurz</w:t></w:r><w:bookmarkStart w:id="0" w:name="x"/><w:r><w:rPr><w:b/></w:rPr><w:t>.</w:t></w:r></w:p>'
    )
    read = read_paragraph(paragraph)
    assert read.block.text == "Das ist ein langer Satz in Fettschrift, kurz."  # runs differing only in language: one style
    (tag,) = read.block.tags
    assert read.block.text[tag.start : tag.end] == "kurz" and tag.kind.rpr is None
    assert read.main.find(qn("w:b")) is not None
    assert [item.value.tag for item in read.after] == [qn("w:bookmarkStart")]  # a marker mid-text follows the text
    assert read_paragraph(parse_xml(f'<w:p xmlns:w="{w}"><w:r><w:tab/></w:r><w:r><w:t> </w:t></w:r></w:p>')) is None


@pytest.mark.parametrize(
    "data, reason",
    [(b"Sehr geehrte Damen und Herren", "not a zip file"), (b"PK\x05\x06" + bytes(18), "There is no item named '[Content_Types].xml'")],
    ids=["text", "empty-zip"],
)
def test_what_is_not_a_word_document_is_a_document_error(data, reason, translator):
    with pytest.raises(DocumentError, match=re.escape(f"brief.docx: not a Word document ({reason}")):
        translate_docx(data, translator, translator.config(), "brief.docx")


def test_a_spreadsheet_is_not_a_word_document(source, translator):
    original, out = zipfile.ZipFile(io.BytesIO(source)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        for item in original.infolist():
            content = original.read(item.filename).replace(b"wordprocessingml.document.main+xml", b"spreadsheetml.sheet.main+xml")
            package.writestr(item, content)
    package = out.getvalue()
    with pytest.raises(DocumentError, match="brief.docx: not a Word document"):
        translate_docx(package, translator, translator.config(), "brief.docx")


def test_without_python_docx_the_error_says_what_to_install(monkeypatch, translator):
    monkeypatch.setitem(sys.modules, "docx", None)
    with pytest.raises(DocumentError, match=re.escape("brief.docx: Word documents need python-docx: pip install 'xformer-cli[documents]'")):
        translate_docx(b"", translator, translator.config(), "brief.docx")


def content_type(package: zipfile.ZipFile, name: str) -> str | None:
    """The content type `[Content_Types].xml` gives the part `name`: its override, else its extension's default."""
    listed = etree.fromstring(package.read("[Content_Types].xml"))
    types = {(t.tag.split("}")[1], t.get("PartName") or t.get("Extension")): t.get("ContentType") for t in listed}
    return types.get(("Override", "/" + name), types.get(("Default", name.rsplit(".", 1)[-1])))


def test_a_real_german_word_document_keeps_its_structure(translator):
    """A course plan of the white_dune project, as LibreOffice saves it as .docx
    (tests/fixtures/documents/SOURCES.md): three tables, bold headings, runs that change font in
    the middle of a word ("Einf" "ü" "hrung"), empty paragraphs. Every paragraph with words comes
    back as the engine's translation of what it reads; nothing else of the package changes."""
    source = (FIXTURES / "white-dune-kinematik-workshop.de.docx").read_bytes()
    out = translate_docx(source, translator, translator.config(), "kinematik.docx")
    before, after = zipfile.ZipFile(io.BytesIO(source)), zipfile.ZipFile(io.BytesIO(out))
    assert sorted(after.namelist()) == sorted(before.namelist())  # [Content_Types].xml first, as OPC advises
    for name in before.namelist():  # python-docx writes the package's own parts again, to the same effect
        if name.endswith(".rels"):
            relationships = [{tuple(sorted(r.attrib.items())) for r in etree.fromstring(p.read(name))} for p in (after, before)]
            assert relationships[0] == relationships[1]
        elif name not in ("word/document.xml", "[Content_Types].xml"):
            assert canonical(etree.fromstring(after.read(name))) == canonical(etree.fromstring(before.read(name))), name
    assert [content_type(after, name) for name in before.namelist()] == [content_type(before, name) for name in before.namelist()]
    old = list(etree.fromstring(before.read("word/document.xml")).iter(qn("w:p")))
    new = list(etree.fromstring(after.read("word/document.xml")).iter(qn("w:p")))
    assert len(new) == len(old) == 69
    shape = lambda body: [[len(row.findall(qn("w:tc"))) for row in table.iter(qn("w:tr"))] for table in body.iter(qn("w:tbl"))]
    assert shape(etree.fromstring(after.read("word/document.xml"))) == shape(etree.fromstring(before.read("word/document.xml")))
    assert [canonical(p.find(qn("w:pPr"))) for p in new] == [canonical(p.find(qn("w:pPr"))) for p in old]
    read = [read_paragraph(p) for p in old]
    assert any("Einführung in ein vereinfachtes 3D-Computergraphik-Programm" in r.block.plain for r in read if r)
    expected = iter(translate_blocks([r.block for r in read if r], translator, translator.config()))
    for german, english, paragraph in zip(old, new, read):
        if paragraph is None:  # no words (an empty cell): left exactly as it was
            assert canonical(english) == canonical(german)
            continue
        assert words(english) == next(expected).plain
        kinds = lambda p: {canonical(r.find(qn("w:rPr"))) for r in p.iter(qn("w:r"))}
        assert kinds(english) <= kinds(german)  # formatting moved with the words, none made up
    assert sum(1 for r in read if r) == 58  # the paragraphs with words

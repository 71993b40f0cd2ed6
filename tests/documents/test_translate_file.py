import pytest

from xformer_cli.decoding.translator import Translator
from xformer_cli.documents import format_for, translate_document, translate_file
from xformer_cli.errors import DocumentError


@pytest.fixture(scope="module")
def translator(trained_bundle_dir):
    return Translator.load(str(trained_bundle_dir), device="cpu")


def test_the_format_comes_from_the_name_or_is_given():
    assert [format_for(name) for name in ("a.srt", "B.VTT", "x.md", "p.htm", "r.docx", "de.po", "news.de", None)] == [
        "srt", "vtt", "markdown", "html", "docx", "po", "text", "text",
    ]  # fmt: skip
    assert format_for("notes.txt", "markdown") == "markdown"
    with pytest.raises(DocumentError, match=r"report.pdf: xformer cannot translate .pdf files; the formats are: text \(.txt\)"):
        format_for("report.pdf")
    with pytest.raises(DocumentError, match="unknown format 'rtf'"):
        format_for("a.txt", "rtf")


def test_translate_file_writes_the_translation_whole(translator, tmp_path):
    source = tmp_path / "seite.html"
    source.write_text("<p>Ich habe <b>Hunger</b>.</p>\n", encoding="utf-8")
    translate_file(source, tmp_path / "page.html", translator)
    expected = translate_document(source.read_bytes(), "html", translator, translator.config())
    assert (tmp_path / "page.html").read_bytes() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html", "seite.html"]  # no temporary file left


def test_a_failed_translation_leaves_the_old_output_as_it_was(translator, tmp_path):
    source = tmp_path / "bad.vtt"
    source.write_text("00:01.000 --> 00:02.000\nHallo\n", encoding="utf-8")
    (tmp_path / "out.vtt").write_text("old\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="bad.vtt: line 1: a WebVTT file starts with 'WEBVTT'"):
        translate_file(source, tmp_path / "out.vtt", translator)
    assert (tmp_path / "out.vtt").read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.vtt", "out.vtt"]


def test_plain_text_keeps_one_line_per_line_and_refuses_binary(translator):
    out = translate_document(b"Ich habe Hunger.\r\n\r\nTom ist hier.\r\n", "text", translator, translator.config())
    assert out.count(b"\r\n") == 3 and out.split(b"\r\n")[1] == b""
    with pytest.raises(DocumentError, match="a binary file"):
        translate_document(b"PK\x03\x04\x00\x00", "text", translator, translator.config(), "x.zip")

"""`xformer translate` on files with structure: the format from the file's ending or --format,
the file written whole or not at all, a one-line error for what no format reads."""

from conftest import assert_one_line_error
from typer.testing import CliRunner

from xformer_cli.cli.app import app
from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.subtitles import translate_subtitles

runner = CliRunner()
SRT = "1\n00:00:01,000 --> 00:00:02,000\nIch habe Hunger.\n\n2\n00:00:02,500 --> 00:00:04,000\nTom ist hier.\n"


def run(*args, input=None):
    return runner.invoke(app, list(map(str, args)), input=input)


def test_a_subtitle_file_is_translated_as_subtitles_by_its_ending(trained_bundle_dir, tmp_path):
    (tmp_path / "talk.srt").write_text(SRT, encoding="utf-8")
    result = run("translate", "-m", trained_bundle_dir, "-i", tmp_path / "talk.srt", "-o", tmp_path / "talk.en.srt")
    assert result.exit_code == 0, result.output
    translator = Translator.load(str(trained_bundle_dir), device="cpu")
    expected = translate_subtitles(SRT.encode(), translator, translator.config(), "talk.srt")
    assert (tmp_path / "talk.en.srt").read_bytes() == expected
    assert "00:00:02,500 --> 00:00:04,000" in expected.decode()


def test_format_names_the_format_of_stdin(trained_bundle_dir):
    result = run("translate", "-m", trained_bundle_dir, "--format", "srt", input=SRT)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("1\n00:00:01,000 --> 00:00:02,000\n") and "Ich habe" not in result.stdout


def test_unknown_formats_and_unreadable_kinds_of_file_are_one_line_errors(trained_bundle_dir, tmp_path):
    (tmp_path / "report.odt").write_bytes(b"PK\x03\x04")
    result = run("translate", "-m", trained_bundle_dir, "-i", tmp_path / "report.odt", "-o", tmp_path / "out.odt")
    assert_one_line_error(result, "cannot translate .odt files; the formats are: text (.txt), srt (.srt)")
    result = run("translate", "-m", trained_bundle_dir, "--format", "pdf", input="x")
    assert_one_line_error(result, "unknown format 'pdf'; the formats are:")
    assert not (tmp_path / "out.odt").exists()


def test_a_malformed_file_leaves_no_output_and_no_temporary_file(trained_bundle_dir, tmp_path):
    (tmp_path / "bad.srt").write_text("1\n00:00:01 --> later\nHallo\n", encoding="utf-8")
    (tmp_path / "bad.en.srt").write_text("the old translation\n", encoding="utf-8")
    result = run("translate", "-m", trained_bundle_dir, "-i", tmp_path / "bad.srt", "-o", tmp_path / "bad.en.srt")
    assert result.exit_code == 1 and "Traceback" not in result.output
    last = result.stderr.strip().splitlines()[-1]  # after the line naming the model
    assert last.startswith("error: ") and last.endswith(
        "bad.srt: line 2: expected a cue number, then HH:MM:SS,mmm --> HH:MM:SS,mmm, got '00:00:01 --> later'"
    )
    assert (tmp_path / "bad.en.srt").read_text(encoding="utf-8") == "the old translation\n"  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.en.srt", "bad.srt"]


def test_text_only_flags_are_refused_for_a_document(trained_bundle_dir, tmp_path):
    (tmp_path / "a.srt").write_text(SRT, encoding="utf-8")
    result = run("translate", "-m", trained_bundle_dir, "-i", tmp_path / "a.srt", "--n-best", "2")
    assert_one_line_error(result, "--n-best is for text lines, not a srt file")


def test_check_tags_narrows_tags_in_a_page_and_is_refused_for_text(trained_bundle_dir, tmp_path):
    (tmp_path / "page.html").write_text("<p>Ich <b>habe Hunger</b> und <i>Durst</i>.</p>", encoding="utf-8")
    result = run("translate", "-m", trained_bundle_dir, "-i", tmp_path / "page.html", "--check-tags")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("<b>") == result.stdout.count("</b>") == result.stdout.count("<i>") == 1
    result = run("translate", "-m", trained_bundle_dir, "--check-tags", input="Ich habe Hunger.\n")
    assert_one_line_error(result, "--check-tags is for files with inline tags (html, markdown, docx), not text lines")


def test_inline_tags_model_places_every_tag_and_bad_uses_are_one_line_errors(trained_bundle_dir, tmp_path):
    """The tiny model was not trained to carry tags: it loses them, and the attention places them."""
    (tmp_path / "page.html").write_text("<p>Ich <b>habe Hunger</b> und <i>Durst</i>.</p>", encoding="utf-8")
    result = run("translate", "-m", trained_bundle_dir, "-i", tmp_path / "page.html", "--inline-tags", "model")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("<b>") == result.stdout.count("</b>") == result.stdout.count("<i>") == 1
    result = run("translate", "-m", trained_bundle_dir, "-i", tmp_path / "page.html", "--inline-tags", "words")
    assert_one_line_error(result, "inline tags are placed by attention or model (got 'words')")
    result = run("translate", "-m", trained_bundle_dir, "--inline-tags", "model", input="Ich habe Hunger.\n")
    assert_one_line_error(result, "--inline-tags is for files with inline tags (html, markdown, docx), not text lines")

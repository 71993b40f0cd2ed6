from pathlib import Path

import pytest

from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.blocks import translate_blocks
from xformer_cli.documents.inline import Marked
from xformer_cli.documents.subtitles import translate_subtitles
from xformer_cli.errors import DocumentError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "documents"


@pytest.fixture(scope="module")
def translator(trained_bundle_dir):
    """The tiny stored bundle: its English is poor but the same on every run."""
    return Translator.load(str(trained_bundle_dir), device="cpu")


SRT = """1
00:00:01,000 --> 00:00:03,500
<i>Ich habe gestern meinen Bruder</i>

2
00:00:03,600 --> 00:00:06,000
in Berlin getroffen.

3
00:00:06,100 --> 00:00:08,000 X1:10 X2:20
{\\an8}Wo ist der Bahnhof?
- Dort drüben, <b>links</b>.

"""
VTT = """WEBVTT - Beispiel

NOTE Das ist ein Kommentar

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:04.000 position:10% align:start
<v Anna>Guten Morgen &amp; willkommen!

00:04.500 --> 00:07.000
Das Wetter ist <c.yellow>heute</c> schön.
"""


def cues(text: str) -> list[list[str]]:
    return [block.split("\n") for block in text.strip("\n").split("\n\n")]


def test_numbers_timecodes_and_lines_stay_and_no_cue_is_empty(shouting_aligned):
    shouting = shouting_aligned
    out = translate_subtitles(SRT.encode(), shouting, shouting.config(), "t.srt").decode()
    before, after = cues(SRT), cues(out)
    assert [c[:2] for c in after] == [c[:2] for c in before] and [len(c) for c in after] == [len(c) for c in before]
    assert all(line.strip() for c in after for line in c[2:])
    assert after[0][2].startswith("<i>") and after[0][2].endswith("</i>") and after[2][2].startswith("{\\an8}")
    assert out.count("<b>") == out.count("</b>") == 1 and out.endswith("\n\n")


def test_a_sentence_over_two_cues_is_translated_once_and_shared_out(shouting_aligned):
    shouting = shouting_aligned
    out = translate_subtitles(SRT.encode(), shouting, shouting.config(), "t.srt").decode()
    first, second = cues(out)[0][2], cues(out)[1][2]
    assert (first, second) == ("<i>ICH HABE GESTERN MEINEN BRUDER</i>", "IN BERLIN GETROFFEN.")
    assert cues(out)[2][2:] == ["{\\an8}WO IST DER BAHNHOF?", "- DORT DRÜBEN, <b>LINKS</b>."]


def test_a_sentence_is_translated_as_one_text_by_the_model(translator):
    out = translate_subtitles(SRT.encode(), translator, translator.config(), "t.srt").decode()
    lines = [c[2:] for c in cues(out)]
    whole = translator.translate(["Ich habe gestern meinen Bruder in Berlin getroffen."])[0]
    first = lines[0][0].removeprefix("<i>").removesuffix("</i>")
    if len(whole.split()) >= 2:  # shared out over the two cues
        assert f"{first} {lines[1][0]}" == whole
    else:  # too few words for two cues: each cue translated alone
        alone = translate_blocks(
            [Marked("Ich habe gestern meinen Bruder"), Marked("in Berlin getroffen.")], translator, translator.config()
        )
        assert [first, lines[1][0]] == [m.text for m in alone]
    assert all(line.strip() for cue in lines for line in cue)


def test_a_real_subtitle_file_keeps_its_cues_and_its_words(shouting_aligned, translator):
    """The German subtitles of the Tor Project's animation (tests/fixtures/documents/SOURCES.md):
    35 cues, one or two lines each, most sentences running over two to four cues."""
    source = (FIXTURES / "tor-animation.de.srt").read_text(encoding="utf-8")
    before = cues(source)
    outs = {}
    for model in (shouting_aligned, translator):
        out = outs[model] = translate_subtitles(source.encode(), model, model.config(), "tor.srt").decode()
        after = cues(out)
        assert [c[:2] for c in after] == [c[:2] for c in before] and out.endswith("\n\n")
        assert all(line.strip() for c in after for line in c[2:])
        # As many lines as the cue had, unless its share of the translation has fewer words
        # (the tiny model's often has one): an empty line would end the cue.
        for b, a in zip(before, after):
            assert len(a) == len(b) if model is shouting_aligned else 3 <= len(a) <= len(b)
            assert len(a) == len(b) or len(" ".join(a[2:]).split()) < len(b) - 2
    # Shouting upper-cases each sentence whole: every word comes back once, in order, each cue
    # holding a share of its sentence.
    words = [w for c in before for line in c[2:] for w in line.split()]
    assert [w for c in cues(outs[shouting_aligned]) for line in c[2:] for w in line.split()] == [w.upper() for w in words]


def test_a_sentence_over_several_real_cues_reaches_the_model_whole(translator, monkeypatch):
    read: list[str] = []
    translate = Translator._translate_sentences

    def recording(self, sentences, lines, config, warn):
        read.extend(masked.text for _, masked in sentences)
        return translate(self, sentences, lines, config, warn)

    monkeypatch.setattr(Translator, "_translate_sentences", recording)
    source = (FIXTURES / "tor-animation.de.srt").read_bytes()
    translate_subtitles(source, translator, translator.config(), "tor.srt")
    assert (
        "Wir teilen ständig Dinge über uns und unser Privatleben: was wir essen, Leute, die wir treffen, "
        "Orte, die wir besuchen, und was wir lesen."
    ) in read
    assert "Tor schützt auch unsere Daten vor Massenüberwachung durch Firmen oder Regierungen." in read


def test_webvtt_headers_notes_styles_and_settings_stay(shouting_aligned):
    shouting = shouting_aligned
    out = translate_subtitles(VTT.encode(), shouting, shouting.config(), "t.vtt", vtt=True).decode()
    for kept in (
        "WEBVTT - Beispiel\n\nNOTE Das ist ein Kommentar\n\nSTYLE\n::cue { color: yellow }\n\nintro\n",
        "00:01.000 --> 00:04.000 position:10% align:start\n<v Anna>",
        "\n00:04.500 --> 00:07.000\n",
    ):
        assert kept in out
    assert "<v Anna>GUTEN MORGEN &amp; WILLKOMMEN!" in out and "DAS WETTER IST <c.yellow>HEUTE</c> SCHÖN." in out


def test_crlf_and_a_bom_stay(translator):
    source = ("\ufeff" + SRT).replace("\n", "\r\n").encode()
    out = translate_subtitles(source, translator, translator.config(), "t.srt")
    assert out.startswith("\ufeff1\r\n".encode()) and b"\n" not in out.replace(b"\r\n", b"")


@pytest.mark.parametrize(
    "source, vtt, message",
    [
        (b"1\nxx --> yy\nHallo\n", False, r"t: line 2: expected a cue number, then HH:MM:SS,mmm --> HH:MM:SS,mmm, got 'xx --> yy'"),
        (b"1\nHallo\n", False, r"t: line 2: expected .* got 'Hallo'"),
        (b"Hallo\n00:00:01,000 --> 00:00:02,000\nx\n", False, r"t: line 1: expected a cue number before the timecode"),
        (b"00:01.000 --> 00:02.000\nx\n", True, r"t: line 1: a WebVTT file starts with 'WEBVTT'"),
        (b"1\n00:00:01,000 --> 00:00:02,000\n\xe4\n", False, r"t: line 3: not valid UTF-8"),
    ],
)
def test_a_malformed_file_is_one_line_naming_the_line(translator, source, vtt, message):
    with pytest.raises(DocumentError, match=message):
        translate_subtitles(source, translator, translator.config(), "t", vtt=vtt)

"""gettext catalogs: each untranslated entry gets the engine's translation, flagged fuzzy, with its
placeholders and HTML kept; every other byte of the file stays as it was."""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

polib = pytest.importorskip("polib")

from xformer_cli.decoding.translator import Translator  # noqa: E402
from xformer_cli.documents.blocks import translate_blocks  # noqa: E402
from xformer_cli.documents.gettext import PRINTF, read_line, translate_po  # noqa: E402
from xformer_cli.documents.inline import MarkedBuilder  # noqa: E402
from xformer_cli.errors import DocumentError  # noqa: E402

FIXTURES = Path(__file__).parents[1] / "fixtures" / "documents"
# The test's own idea of what must come back unchanged: placeholders, entities, tags.
KEPT = re.compile(r"%\(\w+\)[sd]|%[\d.]*[sdf]|%%|\{\{|\}\}|\{\w*\}|&\w+;|<[^<>]+>")


@pytest.fixture(scope="module")
def translator(trained_bundle_dir) -> Translator:
    return Translator.load(str(trained_bundle_dir), device="cpu")


def translated(translator: Translator, name: str) -> tuple[bytes, bytes]:
    source = (FIXTURES / name).read_bytes()
    return source, translate_po(source, translator, translator.config(), name)


@pytest.fixture(scope="module")
def messages(translator) -> tuple[bytes, bytes]:
    return translated(translator, "po-messages.po")


@pytest.fixture(scope="module")
def django(translator) -> tuple[bytes, bytes]:
    return translated(translator, "po-django-admin.po")


def catalog(data: bytes):
    return polib.pofile(data.decode("utf-8"))


def is_new(entry) -> bool:
    empty = not entry.msgstr and not any(entry.msgstr_plural.values())
    return empty and not entry.obsolete and "fuzzy" not in entry.flags


def render(block) -> str:
    """A block written out as the catalog holds it (tags are (start, end) pairs in these tests)."""
    kinds = {"open": lambda tag: tag.kind[0], "close": lambda tag: tag.kind[1]}
    return "".join(kinds[event](value) if event in kinds else value for event, value in block.events())


def block(*parts):
    """A block from text, ("atom", text) and (start tag, [parts], end tag)."""
    builder = MarkedBuilder()

    def add(items):
        for part in items:
            if isinstance(part, str):
                builder.text(part)
            elif part[0] == "atom":
                builder.atom(part[1])
            else:
                builder.open((part[0], part[2]))
                add(part[1])
                builder.close()

    add(parts)
    return builder.build()


def test_new_translations_are_the_engines(messages, translator):
    entries = {(e.msgctxt, e.msgid): e for e in catalog(messages[1])}
    blocks = [
        block("Öffnen"),
        block("Eine Datei wurde gelöscht."),
        block(("atom", "%d"), " Dateien in ", ("atom", "%5.2f"), " Sekunden gespeichert (100", ("atom", "%%"), ")."),
        block("Lies die ", ('<a href="https://example.org/hilfe">', ["Hilfe"], "</a>"), "."),
        block("Dann klicke auf ", ("<b>", ["Weiter"], "</b>"), " ", ("atom", "&amp;"), " warte."),
        block("Ich bin müde."),
        block("Wir sind im ", ("atom", "%(ort)s"), "."),
        block(),
    ]
    english = [render(b) for b in translate_blocks(blocks, translator, translator.config())]
    assert entries["Menü", "Öffnen"].msgstr == entries["Tür", "Öffnen"].msgstr == english[0]
    assert entries[None, "Eine Datei wurde gelöscht."].msgstr_plural[0] == english[1]
    assert entries[None, "%d Dateien in %5.2f Sekunden gespeichert (100%%)."].msgstr == english[2]
    link = entries[None, 'Lies die <a href="https://example.org/hilfe">Hilfe</a>.<br/>Dann klicke auf <b>Weiter</b> &amp; warte.']
    assert link.msgstr == f"{english[3]}<br/>{english[4]}"  # the break parts the line: two blocks
    assert entries[None, "Ich bin müde.\nWir sind im %(ort)s.\n"].msgstr == "\n".join(english[5:])
    assert all(e.msgstr or e.msgstr_plural for e in entries.values() if is_new(e))  # and nothing left out
    assert {e.msgstr for e in entries.values() if is_new(e)}.isdisjoint({e.msgid for e in entries.values()})


@pytest.mark.parametrize("name", ["messages", "django"])
def test_placeholders_and_tags_come_back_once_each(name, request):
    source, output = request.getfixturevalue(name)
    pairs = [(e.msgid, o.msgstr or o.msgstr_plural[0]) for e, o in zip(catalog(source), catalog(output)) if is_new(e)]
    pairs += [(e.msgid_plural, o.msgstr_plural[1]) for e, o in zip(catalog(source), catalog(output)) if is_new(e) and e.msgid_plural]
    assert sum(len(KEPT.findall(msgid)) for msgid, _ in pairs) >= 12  # the fixtures hold plenty
    for msgid, msgstr in pairs:
        assert Counter(KEPT.findall(msgstr)) == Counter(KEPT.findall(msgid)), (msgid, msgstr)


@pytest.mark.parametrize("name", ["messages", "django"])
def test_only_new_translations_are_flagged_fuzzy_and_the_rest_stays(name, request):
    source, output = request.getfixturevalue(name)
    before, after = catalog(source), catalog(output)
    assert len(before) == len(after) and before.metadata == after.metadata
    assert sum(is_new(e) for e in before) >= 8
    for old, new in zip(before, after):
        assert (new.msgctxt, new.msgid, new.msgid_plural, new.occurrences, new.comment, new.tcomment, new.obsolete) == (
            old.msgctxt,
            old.msgid,
            old.msgid_plural,
            old.occurrences,
            old.comment,
            old.tcomment,
            old.obsolete,
        )
        if is_new(old):
            assert new.flags == ["fuzzy", *old.flags] and sorted(new.msgstr_plural) == ([0, 1] if old.msgid_plural else [])
        else:
            assert (new.flags, new.msgstr, new.msgstr_plural) == (old.flags, old.msgstr, old.msgstr_plural)


@pytest.mark.parametrize("name", ["messages", "django"])
def test_all_but_the_new_translations_is_byte_identical(name, request):
    source, output = request.getfixturevalue(name)
    old, new = source.decode().split("\n\n"), output.decode().split("\n\n")
    assert len(old) == len(new)
    changed = [i for i, (a, b) in enumerate(zip(old, new)) if a != b]
    new_entries = [i for i, chunk in enumerate(old) if i and is_new(catalog(("\n\n".join(old[:1] + [chunk]) + "\n").encode())[0])]
    assert changed == new_entries and old[0] == new[0]  # the header too


def test_a_catalog_with_nothing_left_to_translate_comes_back_unchanged(messages, translator):
    assert translate_po(messages[1], translator, translator.config(), "po-messages.po") == messages[1]


HEADER = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'


def test_plural_forms_follow_the_headers_nplurals(translator):
    source = HEADER + '"Plural-Forms: nplurals=3; plural=(n==1 ? 0 : n>=2 && n<=4 ? 1 : 2);\\n"\n\n'
    source += 'msgid "Eine Datei"\nmsgid_plural "%d Dateien"\nmsgstr[0] ""\nmsgstr[1] ""\n'
    (entry,) = catalog(translate_po(source.encode(), translator, translator.config(), "cs.po"))
    singular, plural = translate_blocks([block("Eine Datei"), block(("atom", "%d"), " Dateien")], translator, translator.config())
    assert entry.msgstr_plural == {0: render(singular), 1: render(plural), 2: render(plural)}


@pytest.mark.parametrize("wrapped", [True, False])
def test_new_entries_are_wrapped_as_the_input_is(wrapped, translator):
    long = "Bitte geben Sie aus Sicherheitsgründen erst Ihr altes Passwort und dann zweimal das neue Passwort ein."
    msgid = f'msgid ""\n"{long[:70]}"\n"{long[70:]}"\n' if wrapped else f'msgid "{long}"\n'
    source = f'{HEADER}\n#: a.py:1\n{msgid}msgstr ""\n\nmsgid "Ich bin müde."\nmsgstr "I am tired."\n'
    output = translate_po(source.encode(), translator, translator.config(), "a.po").decode()
    assert (f'msgid "{long}"\n' in output) is not wrapped
    assert all(len(line) <= 78 for line in output.splitlines() if line.startswith('"')) or not wrapped
    assert output.endswith('\n\nmsgid "Ich bin müde."\nmsgstr "I am tired."\n')


def test_windows_line_ends_and_a_byte_order_mark_are_kept(translator):
    source = ("\ufeff" + HEADER + '\n#: a.py:1\nmsgid "Wir sind verärgert."\nmsgstr ""\n\n#: a.py:2\nmsgid "Ja"\nmsgstr "Yes"\n').replace(
        "\n", "\r\n"
    )
    output = translate_po(source.encode(), translator, translator.config(), "a.po").decode()
    assert output.startswith("\ufeff" + HEADER.replace("\n", "\r\n")) and "\n" not in output.replace("\r\n", "")
    assert '#, fuzzy\r\nmsgid "Wir sind verärgert."\r\nmsgstr "' in output and output.endswith(
        '\r\n\r\n#: a.py:2\r\nmsgid "Ja"\r\nmsgstr "Yes"\r\n'
    )


def test_reading_a_message_finds_tags_atoms_and_leaves_prose_alone():
    line = read_line('<b>Fett</b> und <i>kursiv <b>fett</i> %s</b> 50 % der <img src="x.png"> &nbsp;</x><br>', re.compile(PRINTF))
    assert line.plain == "Fett und kursiv fett  50 % der  "  # "% d" in prose is no placeholder
    tags = [(line.text[t.start : t.end], t.kind.start, t.kind.end) for t in line.tags]
    assert tags == [("Fett", "<b>", "</b>"), ("kursiv \U000f0000fett", "<i>", "</i>")]  # the <b> crossing </i> gives way
    assert list(line.atoms) == ["<b>", "%s", "</b>", '<img src="x.png">', "&nbsp;", "</x>", "<br>"]
    nested = read_line("<b>a <b>b</b> c</b>", None)
    assert [(nested.text[t.start : t.end], t.kind.end) for t in nested.tags] == [("a b c", "</b>"), ("b", "</b>")]
    assert read_line('<a href="{url}">Hilfe</a>', re.compile(r"\{\w+\}")).atoms == ()  # inside a tag it is the tag's


def test_a_malformed_catalog_names_the_file_and_line(translator):
    with pytest.raises(DocumentError, match=r"^de\.po: line 6: syntax error$"):
        translate_po(HEADER.encode() + b'\nmsgid "Hallo"\nmsgstr\n', translator, translator.config(), "de.po")
    with pytest.raises(DocumentError, match=r"^de\.po: line 5: unescaped double quote found$"):
        translate_po(HEADER.encode() + b'\nmsgid "Hallo "Welt""\nmsgstr ""\n', translator, translator.config(), "de.po")


def test_a_catalog_not_in_utf8_is_a_document_error(translator):
    data = (HEADER + '\nmsgid "Ich bin müde."\nmsgstr ""\n').encode("latin-1")
    offset = data.index(b"\xfc")
    with pytest.raises(DocumentError, match=re.escape(f"de.po: not valid UTF-8 (byte 0xfc at offset {offset})")):
        translate_po(data, translator, translator.config(), "de.po")


def test_without_polib_the_error_says_what_to_install(monkeypatch, translator):
    monkeypatch.setitem(sys.modules, "polib", None)
    with pytest.raises(DocumentError, match=re.escape("de.po: gettext catalogs need polib: pip install 'xformer-cli[documents]'")):
        translate_po(HEADER.encode(), translator, translator.config(), "de.po")

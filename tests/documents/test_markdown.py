from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.markdown import translate_markdown


@pytest.fixture(scope="module")
def translator(trained_bundle_dir):
    """The tiny stored bundle: its English is poor but the same on every run."""
    return Translator.load(str(trained_bundle_dir), device="cpu")


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "documents"
SOURCE = """---
title: Beispiel
---

# Das neue Rathaus

Das ist **sehr wichtig** und *kursiv*, mit `code()` und [einem Link](http://x.de "T").
Die zweite Zeile hat ein Bild ![Ein Hund](a.png) und <span>HTML</span>.

| Name | Farbe |
|------|-------|
| Haus | rot \\| blau |

- Erster Punkt
- Zweiter Punkt mit <https://example.org>

> Ein Zitat über das Wetter.

```python
print("Hallo Welt")
```
"""


def structure(text: str) -> list:
    """What must not change: every token's type, nesting, markup and attributes (links, images),
    the code, HTML and the table's shape, with the words left out."""
    found = []
    for token in MarkdownIt("commonmark").enable(["table", "strikethrough"]).parse(text):
        for t in [token, *(token.children or [])]:
            attrs = {k: v for k, v in (t.attrs or {}).items() if k != "alt"}
            words = t.content if t.type in ("fence", "code_block", "html_block", "code_inline", "html_inline") else None
            found.append((t.type, t.markup, t.info, attrs, words))
    return sorted(str(f) for f in found if f[0] not in ("text", "softbreak"))  # tags may change order with the words


def test_the_syntax_stays_and_the_words_change(translator):
    out = translate_markdown(SOURCE.encode(), translator, translator.config(), "t.md").decode()
    assert structure(out) == structure(SOURCE)
    assert out.startswith("---\ntitle: Beispiel\n---\n")  # front matter as written
    assert '```python\nprint("Hallo Welt")\n```\n' in out and '(http://x.de "T")' in out and "<https://example.org>" in out
    assert "Rathaus" not in out and "Zitat" not in out
    assert out.count("\n") == SOURCE.count("\n")  # the line structure


def test_a_paragraph_is_translated_as_one_text_over_its_lines(translator):
    source = "Ich habe Hunger.\nTom ist hier.\n"
    out = translate_markdown(source.encode(), translator, translator.config(), "t.md").decode()
    whole = translator.translate(["Ich habe Hunger. Tom ist hier."])[0]
    assert " ".join(out.split()) == " ".join(whole.split()) and out.count("\n") == 2


def test_a_real_german_readme_keeps_its_structure(translator):
    source = (FIXTURES / "best-readme-template.de.md").read_text(encoding="utf-8")
    out = translate_markdown(source.encode(), translator, translator.config(), "readme.md").decode()
    assert structure(out) == structure(source)
    assert "Auf GitHub sind" not in out and "Dieser Abschnitt" not in out


def test_crlf_line_endings_stay(translator):
    out = translate_markdown(b"# Titel\r\n\r\nHallo Welt.\r\n", translator, translator.config(), "t.md")
    assert out.count(b"\r\n") == 3 and b"\n" not in out.replace(b"\r\n", b"")

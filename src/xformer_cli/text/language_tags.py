"""Target-language tags of multi-target Marian models: `>>ukr<< text` asks for Ukrainian.

OPUS-MT's models with several target languages hold a piece `>>xxx<<` for each in their
vocabulary and expect it in front of the source; the tokenizer cuts it as one piece
(`SourceTargetTokenizer.encode`), the translator puts a line's tag in front of each of its
sentences, and `translate --target-lang` and the server put one in front of each line.
"""

from __future__ import annotations

import re
from collections.abc import Collection

LANGUAGE_TAG = re.compile(r">>[^<>\s]+<<")  # a target-language tag piece of a multi-target Marian model


def split_language_tag(text: str, tags: Collection[str]) -> tuple[str, str]:
    """A leading target-language tag of `tags` (`>>ukr<< Hallo` -> `>>ukr<<`, `Hallo`), and the
    text after it; ("", text) where `text` starts with none."""
    match = LANGUAGE_TAG.match(text.lstrip())
    if match and match.group() in tags:
        return match.group(), text.lstrip()[match.end() :].lstrip()
    return "", text


def with_language_tag(text: str, tag: str, tags: Collection[str]) -> str:
    """`text` with the target-language tag `tag` in front, unless it is empty or starts with one of `tags` already."""
    return f"{tag} {text}" if tag and text.strip() and not split_language_tag(text, tags)[0] else text

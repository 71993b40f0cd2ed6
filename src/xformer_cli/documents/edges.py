"""The edges of a tag's English words: the function words and punctuation a tag leaves outside.

The attention gives a tag whole words, from the first to the last aligned into it; an English
article or preposition in front of a noun, and punctuation written against a word, come with
them though the German words of the tag did not hold them ("keine <b>Milch</b>" is "no
<b>milk</b>", "<b>Tee</b>." is "<b>tea</b>.").
"""

from __future__ import annotations

import re

LEADING_PUNCTUATION = "(\"'„“«‚‘¿¡["
TRAILING_PUNCTUATION = ".,;:!?…)\"'“”»’]"
ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an no his her its my your our their this that these those by for at to of in on with from".split()
)
GERMAN_FUNCTION_WORDS = frozenset(
    """der die das dem den des ein eine einer einem einen eines kein keine keinen keinem keiner mein meine
    dein deine sein seine ihr ihre unser unsere euer eure mit für bei zu zum zur von vom an am auf aus in im
    um nach über unter vor durch gegen""".split()
)


def without_function_words(text: str, begin: int, finish: int, content: str) -> tuple[int, int]:
    """A target range without the English articles, possessives and prepositions at its start
    that the German words of the tag did not start with ("no milk" for "keine <b>Milch</b>"): the
    attention of such a word goes to the noun it belongs to."""
    first = content.split()[0].lower().strip(LEADING_PUNCTUATION) if content.split() else ""
    if first in GERMAN_FUNCTION_WORDS:
        return begin, finish
    while True:
        word = re.match(r"(\S+)\s+", text[begin:finish])
        if word is None or word.group(1).lower() not in ENGLISH_FUNCTION_WORDS:
            return begin, finish
        begin += word.end()


def trim(text: str, begin: int, finish: int, content: str) -> tuple[int, int]:
    """A target range without the punctuation at its edges that the source tag did not hold."""
    while begin < finish - 1 and text[begin] in LEADING_PUNCTUATION and not content.lstrip().startswith(text[begin]):
        begin += 1
    while finish > begin + 1 and text[finish - 1] in TRAILING_PUNCTUATION and not content.rstrip().endswith(text[finish - 1]):
        finish -= 1
    return begin, finish

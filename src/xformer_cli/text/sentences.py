"""Sentence splitting: a user's line may hold a paragraph; the model was trained on single
sentences, so a line is split into sentences, each is translated, and the translations are
joined back on one line."""

from __future__ import annotations

import re

# Words that end in a full stop without ending a sentence (German, plus a few English ones).
ABBREVIATIONS = frozenset(
    """
    abs abt allg anm apr art aug bd bspw bzgl bzw ca chr dez dipl dr ebd ehem eigtl einschl entspr etc evtl
    exkl fa feb febr fr frl gegr geb gem gest ggf hbf hr hrn inkl ing insb jan jh jhd jr kap kath lt max
    mi mio mill min mo mr mrs ms mrd nov nr okt prof rd sa sept sep sog st std str tel usw vgl vs zit zzgl
    zzt ziff
    """.split()
)
# Words that often start a German sentence: after "<number>." they mark a new sentence, where any
# other word marks an ordinal ("am 3. Oktober", "im 19. Jahrhundert", "der 2. Platz").
SENTENCE_STARTERS = frozenset(
    """
    Aber Alle Als Am An Auch Auf Außerdem Bei Bitte Da Daher Damit Danach Dann Das Deshalb Der Die
    Dies Diese Dieser Dieses Doch Dort Du Ein Eine Er Es Für Heute Hier Ich Ihr Ihre Im In Ja Jetzt
    Kein Keine Man Mein Meine Mit Nach Nein Nun Obwohl Seit Sie So Trotzdem Um Und Unser Unsere Viele
    Vor Wann Warum Was Weil Wenn Wer Wie Wir Wo Zum Zur
    """.split()
)
OPENERS = "„“\"'‚‘«»([{¿¡"
CLOSERS = "\"'“”’»«)]}"
# A candidate end: terminators, closing quotes or brackets, then whitespace.
CANDIDATE_END = re.compile(rf"([.!?…]+)([{re.escape(CLOSERS)}]*)(\s+)")


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, in order, each stripped; their concatenation with single spaces
    is the text up to whitespace. Knows abbreviations, initials, ordinals and quotes."""
    sentences: list[str] = []
    start = 0
    for match in CANDIDATE_END.finditer(text):
        if ends_sentence(text, match):
            sentences.append(text[start : match.end(2)].strip())
            start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def ends_sentence(text: str, match: re.Match[str]) -> bool:
    """Whether the terminator at `match` ends a sentence, judged by the words around it."""
    following = text[match.end() :]
    next_word = re.match(r"\S+", following)
    if next_word is None:
        return False  # the end of the text is not a break within it
    first = following[0]
    if not (first.isupper() or first.isdigit() or first in OPENERS):
        return False  # a German sentence does not start in lower case
    if match.group(1) != ".":
        return True  # ! ? … and runs like "..." or "?!"
    word = re.search(r"[^\s" + re.escape(OPENERS) + r"]*$", text[: match.start()]).group()
    if not word:
        return True
    if word.lower() in ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
        return False  # "Dr. Müller", "J. K. Rowling", "z. B."
    if "." in word and all(part.isalpha() and len(part) <= 3 for part in word.split(".")):
        return False  # "z.B.", "d.h.", "U.S."
    if word.isdigit() and len(word) <= 3 and not match.group(2):  # "1990." or "1.307." end a sentence
        return next_word.group().strip(OPENERS) in SENTENCE_STARTERS  # an ordinal unless a sentence starts
    return True

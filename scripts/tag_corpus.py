"""Pairs with inline tags on both sides, for a model that carries tags itself (documents/tag_text.py).

    python scripts/tag_corpus.py --src train.de.gz --tgt train.en.gz --links train.links.gz \
        --pairs 60000 --out-src tagged.de.gz --out-tgt tagged.en.gz

From a random sample of the pairs (seeded), each pair gets one tag (`<b>`), or with probability
--second a second one (`<i>`) beside it, around a span of one to three German words whose English
words the word links (scripts/align_corpus.py) tie to them and to nothing outside: a consistent
phrase pair as phrase-based MT extracts them. The English span runs from the first to the last
linked word; punctuation at either edge stays outside the tag. Pairs with no such span are
skipped; a span of short words only (three letters or fewer: articles, pronouns, prepositions) is
kept one time in four, as documents mostly tag words of substance. Tags are written as
`tag_text.render` writes them at translation time.
"""

from __future__ import annotations

import argparse
import gzip
import random
import re
import sys
from collections.abc import Sequence

from xformer_cli.documents.tag_text import Span, render, trimmed
from xformer_cli.text.files import read_lines

WORD = re.compile(r"\S+")
LENGTHS = (1, 1, 1, 2, 2, 3)  # German words a tag holds, drawn from these
# Auxiliaries, modals and separable particles: the part of a German verb away from the word a tag holds.
BESIDE_VERBS = frozenset(
    "hat habe hast haben habt hatte hatten hattest ist bin bist sind seid war waren warst wird werde wirst werden "
    "wurde wurden kann kannst können muss musst müssen soll sollst sollen will willst wollen darf dürfen möchte "
    "möchten konnte konnten musste mussten sollte sollten wollte wollten ab an auf aus ein mit vor zu zurück weg los "
    "fest her hin".split()
)


def short(line: str, word: tuple[int, int]) -> bool:
    """Whether a word has three letters or fewer (an article, a pronoun, a preposition)."""
    start, end = trimmed(line, *word)
    return end - start <= 3


def word_offsets(line: str) -> list[tuple[int, int]]:
    """The characters (start, end) of each whitespace word."""
    return [match.span() for match in WORD.finditer(line)]


def phrase(links: set[tuple[int, int]], first: int, last: int, german: Sequence[str] = (), strict: bool = False) -> tuple[int, int] | None:
    """The English words (first, last) that German words first..last are tied to, where every
    English word between is tied to one of them and to no other German word, or to nothing; None
    where there are none, or the English runs over more than twice as many words. One exception,
    so that a German verb at the clause's end can be tagged: an English word may be tied to an
    auxiliary or a separable particle outside as well (`BESIDE_VERBS`: "announced" for
    "angekündigt" though "hat" is tied to it too), unless `strict`. `german`: the German words, for
    that test."""
    linked = [j for i, j in links if first <= i <= last]
    if not linked:
        return None
    low, high = min(linked), max(linked)
    inside = set(linked)
    for i, j in links:
        if low <= j <= high and not first <= i <= last:
            beside = not strict and j in inside and i < len(german) and german[i].lower().strip(".,;:!?\"'()„“”") in BESIDE_VERBS
            if not beside:
                return None
    if high - low > 2 * (last - first) + 2:
        return None
    return low, high


def tag_pair(
    de: str, en: str, links: set[tuple[int, int]], rng: random.Random, second: float, strict: bool = False
) -> tuple[str, str] | None:
    """The pair with one tag (or two), or None where no span fits."""
    de_words, en_words = word_offsets(de), word_offsets(en)
    taken_de: set[int] = set()
    taken_en: set[int] = set()
    spans_de: list[Span] = []
    spans_en: list[Span] = []
    wanted = 2 if rng.random() < second else 1
    for _ in range(20):
        if len(spans_de) == wanted:
            break
        size = rng.choice(LENGTHS)
        first = rng.randrange(len(de_words))
        last = min(first + size, len(de_words)) - 1
        if taken_de & set(range(first, last + 1)):
            continue
        if all(short(de, de_words[w]) for w in range(first, last + 1)) and rng.random() < 0.75:
            continue  # mostly words of substance, as documents tag them: a span of short words only is rarer
        found = phrase(links, first, last, de.split(), strict)
        if found is None or taken_en & set(range(found[0], found[1] + 1)):
            continue
        start_de, end_de = trimmed(de, de_words[first][0], de_words[last][1])
        start_en, end_en = trimmed(en, en_words[found[0]][0], en_words[found[1]][1])
        if start_de == end_de or start_en == end_en:
            continue
        name = "b" if not spans_de else "i"
        spans_de.append(Span(start_de, end_de, name))
        spans_en.append(Span(start_en, end_en, name))
        taken_de |= set(range(first, last + 1))
        taken_en |= set(range(found[0], found[1] + 1))
    if not spans_de:
        return None
    if len(spans_de) == 2 and spans_de[1].start < spans_de[0].start:  # <b> is the tag that opens first in German
        spans_de = [Span(s.start, s.end, n) for s, n in zip(spans_de, ("i", "b"))]
        spans_en = [Span(s.start, s.end, n) for s, n in zip(spans_en, ("i", "b"))]
    return render(de, spans_de), render(en, spans_en)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True)
    parser.add_argument("--tgt", required=True)
    parser.add_argument("--links", required=True, help="Pharaoh word links, one line per pair (scripts/align_corpus.py)")
    parser.add_argument("--pairs", type=int, default=60000, help="tagged pairs to write")
    parser.add_argument("--second", type=float, default=0.15, help="probability of a second tag in a pair")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--strict", action="store_true", help="phrase pairs without the auxiliary exception (the data of models/de-en-tags.toml)"
    )
    parser.add_argument("--out-src", required=True)
    parser.add_argument("--out-tgt", required=True)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = list(zip(read_lines(args.src), read_lines(args.tgt), read_lines(args.links)))
    rng.shuffle(rows)
    written = 0
    with gzip.open(args.out_src, "wt", encoding="utf-8") as out_de, gzip.open(args.out_tgt, "wt", encoding="utf-8") as out_en:
        for de, en, line in rows:
            links = {(int(i), int(j)) for i, j in (link.split("-") for link in line.split())}
            if not de.split() or not en.split() or not links:
                continue
            tagged = tag_pair(de, en, links, rng, args.second, args.strict)
            if tagged is None:
                continue
            out_de.write(tagged[0] + "\n")
            out_en.write(tagged[1] + "\n")
            written += 1
            if written == args.pairs:
                break
    print(f"wrote {written} tagged pairs to {args.out_src}, {args.out_tgt}", file=sys.stderr)


if __name__ == "__main__":
    main()

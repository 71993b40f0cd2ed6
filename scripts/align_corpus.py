"""Word links of a parallel corpus, for guided alignment (`[[train.corpora]]`'s `alignment`).

    python scripts/align_corpus.py --src train.de.gz --tgt train.en.gz --out train.links.gz

eflomal (Östling and Tiedemann 2016: IBM models with an HMM and fertility, sampled; `pip install
eflomal`) aligns the corpus in both directions; the two directions are joined by
grow-diag-final-and (Koehn et al. 2005, as Moses and fast_align's atools do); the links are
written one line per pair in the Pharaoh format ("0-0 1-2": source word-target word), words
being the whitespace-separated words of each line, which is what training counts
(`training/guided_alignment.py`).

The aligner reads each word split into letters-and-digits and the rest ("Flughafen." is
"flughafen" and "."), lowercased, so punctuation glued to a word does not make a word of its
own kind; a link between two such tokens links their whole words.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from xformer_cli.errors import DataError
from xformer_cli.text.files import read_lines

TOKEN = re.compile(r"\w+|[^\w\s]+")
NEIGHBOURS = ((-1, 0), (0, -1), (1, 0), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1))  # grow-diag's: sides, then corners


def tokens(line: str) -> tuple[list[str], list[int]]:
    """The aligner's tokens of a line and the whitespace word each belongs to."""
    out, words = [], []
    for w, word in enumerate(line.split()):
        for token in TOKEN.findall(word.lower()) or [word.lower()]:
            out.append(token)
            words.append(w)
    return out, words


def parse(line: str) -> set[tuple[int, int]]:
    """Pharaoh links "i-j" as a set of (i, j)."""
    return {(int(i), int(j)) for i, _, j in (item.partition("-") for item in line.split())}


def grow_diag_final_and(forward: set[tuple[int, int]], reverse: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The two directions' links (source, target) joined: their intersection, grown by the union's
    links next to it (corners too) that align a word not yet aligned, then the union's links
    whose two words are both still unaligned."""
    union = forward | reverse
    links = forward & reverse
    src_done = {i for i, _ in links}
    tgt_done = {j for _, j in links}
    grown = True
    while grown:
        grown = False
        for i, j in sorted(links):
            for di, dj in NEIGHBOURS:
                candidate = (i + di, j + dj)
                if candidate in union and candidate not in links and (candidate[0] not in src_done or candidate[1] not in tgt_done):
                    links.add(candidate)
                    src_done.add(candidate[0])
                    tgt_done.add(candidate[1])
                    grown = True
    for direction in (forward, reverse):  # final-and
        for i, j in sorted(direction):
            if i not in src_done and j not in tgt_done:
                links.add((i, j))
                src_done.add(i)
                tgt_done.add(j)
    return links


def word_links(token_links: Iterable[tuple[int, int]], src_words: list[int], tgt_words: list[int]) -> str:
    """Token links as links between the whitespace words they are in, one Pharaoh line."""
    words = sorted({(src_words[i], tgt_words[j]) for i, j in token_links if i < len(src_words) and j < len(tgt_words)})
    return " ".join(f"{i}-{j}" for i, j in words)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, required=True, help="source sentences, one a line (plain or .gz)")
    parser.add_argument("--tgt", type=Path, required=True, help="their translations, line by line")
    parser.add_argument("--out", type=Path, required=True, help="the word links, one line a pair (.gz to compress)")
    args = parser.parse_args()
    try:
        from eflomal import Aligner
    except ImportError:
        sys.exit("align_corpus.py needs eflomal: pip install eflomal")
    started = time.perf_counter()
    try:
        src = [tokens(line) for line in read_lines(args.src)]
        tgt = [tokens(line) for line in read_lines(args.tgt)]
    except DataError as err:
        sys.exit(f"error: {err}")
    if len(src) != len(tgt):
        sys.exit(f"line counts differ: {len(src)} in {args.src}, {len(tgt)} in {args.tgt}")
    with tempfile.TemporaryDirectory() as tmp:
        fwd, rev = Path(tmp) / "forward", Path(tmp) / "reverse"
        # eflomal cannot read an empty sentence; it stands in as one token and its links are dropped
        Aligner().align(
            [" ".join(s) or "∅" for s, _ in src],
            [" ".join(t) or "∅" for t, _ in tgt],
            links_filename_fwd=str(fwd),
            links_filename_rev=str(rev),
        )
        forward, reverse = fwd.read_text().splitlines(), rev.read_text().splitlines()
    if len(forward) != len(src) or len(reverse) != len(src):
        sys.exit(f"eflomal gave {len(forward)} and {len(reverse)} lines of links for {len(src)} pairs")
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    with gzip.open(tmp_out, "wt", encoding="utf-8") if args.out.suffix == ".gz" else open(tmp_out, "w", encoding="utf-8") as out:
        for (s, s_words), (t, t_words), f, r in zip(src, tgt, forward, reverse):
            links = grow_diag_final_and(parse(f), parse(r)) if s and t else set()
            out.write(word_links(links, s_words, t_words) + "\n")
    tmp_out.replace(args.out)
    print(f"{len(src):,} pairs aligned in {time.perf_counter() - started:.0f} s: {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

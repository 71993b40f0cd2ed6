"""A bundle's lexical shortlist (`decoding/shortlist.py`) from a word-aligned parallel corpus.

    python scripts/align_corpus.py --src train.de.gz --tgt train.en.gz --out train.links.gz
    python scripts/build_shortlist.py --bundle models/de-en-general --src train.de.gz --tgt train.en.gz \\
        --links train.links.gz [--per-piece 24] [--frequent 200]

Each pair's word links become piece links (every piece of a linked target word with every piece
of its source word, as guided alignment reads them); a source piece keeps itself (a name or a
number copied) and the target pieces it was linked to most often, `--per-piece` in all; the
`--frequent` most frequent target pieces go to every sentence. Written into the bundle as
`shortlist.safetensors` (or to `--out`), which translation then uses unless told
`--no-shortlist`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.bundles.shortlist import SHORTLIST_FILE, from_counts, save_shortlist
from xformer_cli.errors import XformerError
from xformer_cli.text.files import read_lines
from xformer_cli.training.guided_alignment import parse_links, piece_links

CHUNK = 10_000  # pairs encoded at once


def link_counts(
    sources: list[str], targets: list[str], links: list[str], tokenizer, vocab: int, links_name: str = "links"
) -> tuple[np.ndarray, np.ndarray, int]:
    """How often each source piece is linked to each target piece ((vocab, vocab)), how often each
    target piece occurs ((vocab,)), and how many pairs gave links."""
    counts = np.zeros((vocab, vocab), dtype=np.int64)
    frequency = np.zeros(vocab, dtype=np.int64)
    linked = 0
    for first in range(0, len(sources), CHUNK):
        src_ids = tokenizer.encode(sources[first : first + CHUNK], threads=2)
        tgt_ids = tokenizer.encode_target(targets[first : first + CHUNK], threads=2)
        for i, (s, t) in enumerate(zip(src_ids, tgt_ids)):
            n = first + i
            frequency += np.bincount(np.asarray(t, dtype=np.int64), minlength=vocab)
            word_links = parse_links(links[n], f"{links_name}, line {n + 1}")
            pairs = piece_links(word_links, tokenizer.pieces(s), tokenizer.pieces(t), len(sources[n].split()), len(targets[n].split()))
            if len(pairs):
                linked += 1
                np.add.at(counts, (np.asarray(s)[pairs[:, 1]], np.asarray(t)[pairs[:, 0]]), 1)
    return counts, frequency, linked


def case_partners(tokenizer, vocab: int) -> np.ndarray:
    """For each piece id, the id of the same word-initial piece with its first letter's case
    swapped ("▁does" and "▁Does"), or -1 where there is none."""
    pieces = tokenizer.pieces(list(range(vocab)))
    ids = {piece: i for i, piece in enumerate(pieces)}
    partners = np.full(vocab, -1, dtype=np.int64)
    for i, piece in enumerate(pieces):
        if len(piece) > 1 and piece[0] == "▁" and piece[1].isalpha():
            partners[i] = ids.get("▁" + piece[1].swapcase() + piece[2:], -1)
    return partners


def merged_by_case(counts: np.ndarray, partners: np.ndarray) -> np.ndarray:
    """Counts (along the last axis, target pieces) in which a piece and its case partner each
    count what both do: a word seen in lower case only (or capitalized only) may be chosen in
    the other case at the start of a sentence."""
    has = partners >= 0
    merged = counts.copy()
    merged[..., has] += counts[..., partners[has]]
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="the bundle whose tokenizer the shortlist is for (written into it)")
    parser.add_argument("--src", required=True)
    parser.add_argument("--tgt", required=True)
    parser.add_argument("--links", required=True, help="word links of the pairs, Pharaoh format (scripts/align_corpus.py)")
    parser.add_argument("--per-piece", type=int, default=24, help="target pieces kept for each source piece, itself included")
    parser.add_argument("--frequent", type=int, default=200, help="most frequent target pieces every sentence may choose")
    parser.add_argument("--out", help=f"write here instead of the bundle's {SHORTLIST_FILE}")
    args = parser.parse_args()
    started = time.perf_counter()
    try:
        bundle = load_bundle(args.bundle)
        sources, targets, links = read_lines(args.src), read_lines(args.tgt), read_lines(args.links)
        if not len(sources) == len(targets) == len(links):
            raise XformerError(f"{args.src}, {args.tgt} and {args.links} differ in lines ({len(sources)}, {len(targets)}, {len(links)})")
        vocab = bundle.model.config.vocab_size
        counts, frequency, linked = link_counts(sources, targets, links, bundle.tokenizer, vocab, args.links)
    except XformerError as err:
        sys.exit(f"error: {err}")
    partners = case_partners(bundle.tokenizer, vocab)
    counts, frequency = merged_by_case(counts, partners), merged_by_case(frequency, partners)
    np.fill_diagonal(counts, counts.max(axis=1) + 1)  # a piece may always be copied, and comes first
    shortlist = from_counts(counts, frequency, args.per_piece, args.frequent)
    out = Path(args.out) if args.out else Path(args.bundle) / SHORTLIST_FILE
    save_shortlist(shortlist, out)
    sizes = [len(set(row[row >= 0].tolist())) for row in shortlist.table.numpy()]
    print(
        f"{out}: {len(shortlist.frequent)} frequent pieces, up to {args.per_piece} for each of {vocab} source pieces "
        f"(mean {np.mean(sizes):.1f}), from {linked:,} linked pairs of {len(sources):,} in {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()

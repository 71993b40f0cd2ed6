"""BPE-dropout (Provilkov et al. 2020) over a SentencePiece BPE model, drawn from Python's own
seeded generator, so that one seed gives one segmentation in every process.

SentencePiece samples too (`enable_sampling`), but the versions in use here (0.2.3) draw from
absl::BitGen, which salts every seed with entropy of the process: a seed repeats within a
process and never across processes, so a resumed run could not find its epoch again.

The algorithm is SentencePiece's BPE encoding with merges skipped. Start from the characters;
repeatedly take the adjacent pair whose concatenation is the best-scored piece (the leftmost on
a tie) and merge it, except that each merge is skipped with probability p; a skipped pair is not
offered again until one of its two symbols changes. With p = 0 that is SentencePiece's own
segmentation, which the tests check on the fixture corpus.

It starts from the plain segmentation SentencePiece gives (normalized text, byte fallback and
all). A piece of a BPE model trained with split_by_whitespace (SentencePiece's default) never
spans two words, so each word (a run of pieces from one that starts with "▁" to the next) is
segmented on its own; byte-fallback and other special pieces stay as they are. The merges before
the first skip are those of the plain path, so the count of merges before the first skip is
geometric: when it reaches the word's number of merges m, the word keeps its plain pieces. One
draw per word decides that (most words at p = 0.1); the others are merged again from their
characters.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from heapq import heapify, heappop, heappush

import sentencepiece as spm

SAMPLER = "bpe-dropout 1"  # names this algorithm and its draws in cache keys: change it when either changes
WORD_START = "\u2581"  # SentencePiece's visible space, in front of every word
NORMAL, UNUSED = 1, 5  # SentencePiece's piece types (sentencepiece_model.proto)
BPE = 2  # TrainerSpec.model_type


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = buf[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


def proto_fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a serialized protocol buffer message: an int for a
    varint, bytes for a length-delimited field; fixed-width fields are skipped."""
    fields, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i : i + size], i + size
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            continue
        else:
            raise ValueError(f"unsupported protocol buffer wire type {wire}")
        fields.append((number, value))
    return fields


def model_layout(proto: bytes) -> tuple[int, list[int]]:
    """A SentencePiece model's type (1 unigram, 2 BPE, ...) and each piece's type, read from its
    serialized ModelProto (pieces = 1, each with type = 3; trainer_spec = 2 with model_type = 3)."""
    model_type, types = 1, []  # the proto's defaults: UNIGRAM, NORMAL
    for number, value in proto_fields(proto):
        if number == 1 and isinstance(value, bytes):
            types.append(next((v for n, v in proto_fields(value) if n == 3 and isinstance(v, int)), NORMAL))
        elif number == 2 and isinstance(value, bytes):
            model_type = next((v for n, v in proto_fields(value) if n == 3 and isinstance(v, int)), model_type)
    return model_type, types


class BpeDropout:
    """BPE-dropout over one SentencePiece BPE model; a ValueError for any other model."""

    def __init__(self, sp: spm.SentencePieceProcessor, proto: bytes) -> None:
        model_type, types = model_layout(proto)
        if model_type != BPE:
            raise ValueError("a unigram model" if model_type == 1 else f"a model of type {model_type}, not BPE")
        if len(types) != sp.GetPieceSize():
            raise ValueError("a model whose pieces do not read back")
        if UNUSED in types:
            raise ValueError("a model with unused pieces (SentencePiece merges through them)")
        self.pieces = [sp.IdToPiece(i) for i in range(len(types))]
        self.special = [t != NORMAL for t in types]  # byte, unknown, control, user-defined: never merged
        self.vocab = {self.pieces[i]: (-sp.GetScore(i), i) for i, t in enumerate(types) if t == NORMAL}  # piece -> (heap key, id)
        # Words one at a time only where no piece spans a word boundary (split_by_whitespace).
        self.by_word = not any(WORD_START in piece[1:] for piece in self.vocab)

    def sample(self, ids: Sequence[Sequence[int]], p: float, rng: random.Random) -> list[list[int]]:
        """A BPE-dropout segmentation of each plain segmentation in `ids`, merges skipped with
        probability `p` (0 <= p < 1; 0 keeps them), drawn from `rng`."""
        if not 0.0 <= p < 1.0:
            raise ValueError(f"the probability of skipping a merge must be at least 0 and below 1 (got {p})")
        if p == 0.0:
            return [list(row) for row in ids]
        log_keep = math.log1p(-p)
        return [self.sample_one(row, p, log_keep, rng) for row in ids]

    def sample_one(self, row: Sequence[int], p: float, log_keep: float, rng: random.Random) -> list[int]:
        out: list[int] = []
        word: list[int] = []
        for i in row:
            if self.special[i]:
                self.resample_word(word, out, p, log_keep, rng)
                word = []
                out.append(i)
                continue
            if self.by_word and word and self.pieces[i][0] == WORD_START:
                self.resample_word(word, out, p, log_keep, rng)
                word = []
            word.append(i)
        self.resample_word(word, out, p, log_keep, rng)
        return out

    def resample_word(self, word: list[int], out: list[int], p: float, log_keep: float, rng: random.Random) -> None:
        """Append a dropout segmentation of the word whose plain pieces are `word` to `out`."""
        if not word:
            return
        text = "".join(self.pieces[i] for i in word)
        merges = len(text) - len(word)  # of the plain path
        if merges == 0:
            out.extend(word)
            return
        before_skip = int(math.log(1.0 - rng.random()) / log_keep)  # P(>= k) = (1 - p) ** k
        out.extend(word if before_skip >= merges else self.merge(text, before_skip, p, rng) or word)

    def merge(self, text: str, forced: int, p: float, rng: random.Random) -> list[int]:
        """BPE of `text` from its characters: the first `forced` merges made, the next skipped,
        every later one skipped with probability `p`. Empty where a character is no piece."""
        vocab = self.vocab
        symbols = list(text)
        n = len(symbols)
        nxt = [*range(1, n), -1]
        prv = list(range(-1, n - 1))
        agenda = []
        for left in range(n - 1):
            piece = symbols[left] + symbols[left + 1]
            if piece in vocab:
                agenda.append((vocab[piece][0], left, left + 1, len(piece)))
        heapify(agenda)
        skipped = False
        while agenda:
            _, left, right, size = heappop(agenda)
            if not symbols[left] or not symbols[right] or len(symbols[left]) + len(symbols[right]) != size:
                continue  # stale: one of its symbols has changed since
            if forced:
                forced -= 1
            elif not skipped:
                skipped = True
                continue
            elif rng.random() < p:
                continue
            symbols[left] += symbols[right]
            symbols[right] = ""
            nxt[left] = nxt[right]
            if nxt[left] >= 0:
                prv[nxt[left]] = left
            for a, b in ((prv[left], left), (left, nxt[left])):
                if a >= 0 and b >= 0:
                    piece = symbols[a] + symbols[b]
                    if piece in vocab:
                        heappush(agenda, (vocab[piece][0], a, b, len(piece)))
        try:
            return [vocab[s][1] for s in symbols if s]
        except KeyError:
            return []

"""One joint SentencePiece model for source and target text.

Special ids are fixed: pad 0, unk 1, bos 2, eos 3. Byte fallback is on, so any character
outside the vocabulary becomes byte pieces and `<unk>` never reaches the output.

Every tokenizer trained here also reserves TAG_PIECE, a SentencePiece control symbol: encoding
text never produces it (the string "<bt>" in a user's text becomes ordinary pieces) and decoding
drops it. Training puts it in front of the sources of corpora marked synthetic (tagged
back-translation, Caswell et al. 2019). Tokenizers made before it existed lack it.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import TypeVar

import sentencepiece as spm

from xformer_cli.errors import ConfigError, ModelLoadError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
TAG_PIECE = "<bt>"  # the reserved piece in front of every source of a synthetic (tagged) corpus
T = TypeVar("T")


class Tokenizer:
    """Text <-> piece ids."""

    def __init__(self, model_proto: bytes) -> None:
        self.sp = spm.SentencePieceProcessor()
        try:
            self.sp.LoadFromSerializedProto(model_proto)
        except (RuntimeError, OSError) as err:
            raise ModelLoadError(f"corrupt SentencePiece model: {err}") from None
        self.model_proto = model_proto

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        try:
            return cls(Path(path).read_bytes())
        except FileNotFoundError:
            raise ModelLoadError(f"SentencePiece model not found: {path}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.model_proto)

    @property
    def vocab_size(self) -> int:
        return self.sp.GetPieceSize()

    def encode(self, texts: Sequence[str], threads: int = 1) -> list[list[int]]:
        """Piece ids of each text, without BOS/EOS. SentencePiece's thread pool costs more than it
        saves on a few lines (translation); encoding a corpus in chunks of thousands, give it the cores."""
        return self.sp.Encode(list(texts), num_threads=threads)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Texts of id sequences (special ids are dropped)."""
        return self.sp.Decode([list(x) for x in ids], num_threads=1)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.sp.IdToPiece(i) for i in ids]

    @property
    def tag_id(self) -> int | None:
        """The id of TAG_PIECE, or None where this model does not reserve it as a control symbol
        (a tokenizer made before tagging existed, or another one)."""
        i = self.sp.PieceToId(TAG_PIECE)  # the unknown piece's id when absent
        return i if i != self.sp.unk_id() and self.sp.IsControl(i) else None


def reservoir_sample(items: Iterable[T], k: int, rng: random.Random) -> list[T]:
    """A uniform random sample of `k` items of a stream of unknown length (all of them, in
    order, when there are at most `k`), holding only the sample in memory. Li's Algorithm L:
    it draws random numbers only for the items it takes, and skips the others in between."""
    stream = iter(items)
    sample = list(islice(stream, k))
    if len(sample) < k or k == 0:
        return sample

    def uniform() -> float:  # in (0, 1)
        u = 0.0
        while u == 0.0:
            u = rng.random()
        return u

    w = math.exp(math.log(uniform()) / k)
    while w < 1.0:
        skip = int(math.log(uniform()) / math.log1p(-w))
        taken = next(islice(stream, skip, None), _END)
        if taken is _END:
            break
        sample[rng.randrange(k)] = taken
        w *= math.exp(math.log(uniform()) / k)
    return sample


_END = object()


def train_tokenizer(
    sentences: Iterable[str], vocab_size: int = 8000, model_type: str = "bpe", max_sentences: int = 2_000_000, seed: int = 1
) -> Tokenizer:
    """Train a joint SentencePiece model on `sentences` (source and target lines together; a
    stream is read once and never held whole).

    With more than `max_sentences` sentences SentencePiece learns from a random sample of them;
    `seed` fixes that sample, so the same text always gives the same model.
    """
    # Our own seeded sample: SentencePiece's own is not reproducible.
    text = reservoir_sample(sentences, max_sentences, random.Random(seed))
    model = io.BytesIO()
    try:
        _train(text, model, vocab_size, model_type)
    except RuntimeError as err:
        raise ConfigError(f"cannot train the SentencePiece model: {str(err).split('] ')[-1]}") from None
    return Tokenizer(model.getvalue())


def _train(sentences: list[str], model: io.BytesIO, vocab_size: int, model_type: str) -> None:
    spm.SentencePieceTrainer.Train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        byte_fallback=True,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        input_sentence_size=0,  # all of them (already sampled)
        num_threads=2,
        minloglevel=2,
        hard_vocab_limit=False,
        control_symbols=[TAG_PIECE],  # id 4, right after the fixed ids
    )

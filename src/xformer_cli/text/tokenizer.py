"""Text <-> piece ids: one joint SentencePiece model for source and target text (xformer's own),
or a source and a target SentencePiece model over one shared vocabulary (Marian's, for imported
OPUS-MT models).

xformer's special ids are fixed: pad 0, unk 1, bos 2, eos 3. Byte fallback is on, so any
character outside the vocabulary becomes byte pieces and `<unk>` never reaches the output.

Both kinds offer the same methods: `encode` (source text), `encode_target`, `decode` (target ids),
`pieces`, `vocab_size`, `digest` (for cache keys) and `files` (what a folder keeps of them);
`load_tokenizer` reads either from a bundle or run folder. A joint BPE tokenizer also samples:
`sample_encode` and `sample_encode_target` give a seeded BPE-dropout segmentation (subword
regularization, for training only; `bpe_dropout.py`).

Every joint tokenizer trained here also reserves TAG_PIECE, a SentencePiece control symbol:
encoding text never produces it (the string "<bt>" in a user's text becomes ordinary pieces)
and decoding drops it. Training puts it in front of the sources of corpora marked synthetic
(tagged back-translation, Caswell et al. 2019). Tokenizers made before it existed lack it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import TypeVar

import sentencepiece as spm

from xformer_cli.errors import ConfigError, ModelLoadError
from xformer_cli.text.bpe_dropout import BpeDropout
from xformer_cli.text.language_tags import LANGUAGE_TAG, split_language_tag

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPM_FILE = "spm.model"  # a joint tokenizer's one file
SOURCE_SPM, TARGET_SPM, VOCAB_FILE = "source.spm", "target.spm", "vocab.json"  # Marian's three
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
        self._bpe_dropout: BpeDropout | None = None  # made when first sampled

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        try:
            return cls(Path(path).read_bytes())
        except FileNotFoundError:
            raise ModelLoadError(f"SentencePiece model not found: {path}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.model_proto)

    def files(self) -> dict[str, bytes]:
        """The files a bundle or run folder keeps of this tokenizer, by name."""
        return {SPM_FILE: self.model_proto}

    def digest(self) -> str:
        """sha256 of the model: the same digest means the same ids for the same text."""
        return hashlib.sha256(self.model_proto).hexdigest()

    @property
    def vocab_size(self) -> int:
        return self.sp.GetPieceSize()

    def encode(self, texts: Sequence[str], threads: int = 1) -> list[list[int]]:
        """Piece ids of each text, without BOS/EOS. SentencePiece's thread pool costs more than it
        saves on a few lines (translation); encoding a corpus in chunks of thousands, give it the cores."""
        return self.sp.Encode(list(texts), num_threads=threads)

    def encode_target(self, texts: Sequence[str], threads: int = 1) -> list[list[int]]:
        """Piece ids of target-language texts: the same joint model."""
        return self.encode(texts, threads)

    def sampling_problem(self) -> str | None:
        """Why `sample_encode` cannot sample with this model (it is no BPE model), or None."""
        try:
            self._dropout()
        except ValueError as why:
            return str(why)
        return None

    def _dropout(self) -> BpeDropout:
        if self._bpe_dropout is None:
            self._bpe_dropout = BpeDropout(self.sp, self.model_proto)
        return self._bpe_dropout

    def sample_encode(self, texts: Sequence[str], alpha: float, seed: int, threads: int = 1) -> list[list[int]]:
        """Piece ids of a BPE-dropout segmentation of each text (subword regularization, for
        training): the plain segmentation's merges made again from the characters, each skipped
        with probability `alpha`, drawn from a generator seeded with `seed`, so the same seed gives
        the same ids in any process (`bpe_dropout`). A ValueError for a model that is not BPE."""
        return self._dropout().sample(self.encode(texts, threads), alpha, random.Random(seed))

    def sample_encode_target(self, texts: Sequence[str], alpha: float, seed: int, threads: int = 1) -> list[list[int]]:
        """The same for target-language texts: the same joint model."""
        return self.sample_encode(texts, alpha, seed, threads)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Texts of id sequences (special ids are dropped)."""
        return self.sp.Decode([list(x) for x in ids], num_threads=1)

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.sp.IdToPiece(i) for i in ids]

    def piece_ids(self, pieces: Sequence[str]) -> list[int]:
        """The ids of pieces (as `pieces` gives them back)."""
        return [self.sp.PieceToId(p) for p in pieces]

    @property
    def language_tags(self) -> dict[str, str]:
        """{}: xformer's own models have one target language."""
        return {}

    @property
    def tag_id(self) -> int | None:
        """The id of TAG_PIECE, or None where this model does not reserve it as a control symbol
        (a tokenizer made before tagging existed, or another one)."""
        i = self.sp.PieceToId(TAG_PIECE)  # the unknown piece's id when absent
        return i if i != self.sp.unk_id() and self.sp.IsControl(i) else None

    def with_tag(self) -> "Tokenizer":
        """This tokenizer with TAG_PIECE reserved: itself where it already is, else a copy with the
        piece added as a control symbol after the last id (every other id keeps its piece)."""
        if self.tag_id is not None:
            return self
        if self.sp.PieceToId(TAG_PIECE) != self.sp.unk_id():
            raise ConfigError(f"cannot reserve {TAG_PIECE}: the tokenizer has it as an ordinary piece")
        grown = Tokenizer(self.model_proto + _control_piece_field(TAG_PIECE))
        if grown.tag_id != self.vocab_size or grown.vocab_size != self.vocab_size + 1:  # appended, nothing moved
            raise ModelLoadError(f"cannot reserve {TAG_PIECE} in this SentencePiece model")
        return grown


def _control_piece_field(piece: str) -> bytes:
    """A serialized ModelProto field that appends one piece of type CONTROL (score 0). Protocol
    buffers read a repeated field's entries in order wherever they stand, so appending this to a
    serialized model adds the piece as the last id."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    text = piece.encode("utf-8")
    # SentencePiece (field 1: piece, 2: score as a 32-bit float, 3: type; CONTROL = 3)
    message = b"\x0a" + varint(len(text)) + text + b"\x15" + b"\x00\x00\x00\x00" + b"\x18" + varint(3)
    return b"\x0a" + varint(len(message)) + message  # ModelProto field 1: pieces


_worker_tokenizer: Tokenizer | None = None  # in a sampling worker process: its copy of the tokenizer


def start_sampling_worker(model_proto: bytes) -> None:
    """Set up a worker process of `sample_in_worker` (a ProcessPoolExecutor initializer): its own
    copy of the tokenizer; Ctrl-C is the parent's to handle."""
    import signal

    global _worker_tokenizer
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker_tokenizer = Tokenizer(model_proto)


def sample_in_worker(src: list[str], tgt: list[str], alpha: float, seeds: tuple[int, int]) -> tuple[list[list[int]], list[list[int]]]:
    """In a worker process: `sample_encode` of a chunk's sources and targets, with their seeds."""
    assert _worker_tokenizer is not None, "start_sampling_worker first"
    return _worker_tokenizer.sample_encode(src, alpha, seeds[0]), _worker_tokenizer.sample_encode_target(tgt, alpha, seeds[1])


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


def sampling_seed(*words: int) -> int:
    """A 64-bit seed made from integers: the same integers, the same seed."""
    return int.from_bytes(hashlib.sha256(json.dumps(list(words)).encode()).digest()[:8], "little")


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


class SourceTargetTokenizer:
    """Marian's layout: source text is cut by one SentencePiece model, target text by another,
    and the pieces of both map to ids through one shared vocabulary (`vocab.json`, piece -> id).

    A piece the vocabulary lacks becomes `<unk>`. The special pieces are Marian's: `</s>` (end of
    sentence), `<unk>` and `<pad>`; there is no BOS (Marian's decoder starts from `<pad>`). A
    model with several target languages has a piece `>>xxx<<` for each: a source text that starts
    with one the vocabulary holds gets its id first, and the rest is cut as usual (as
    transformers' MarianTokenizer does).
    Decoding joins the pieces and turns SentencePiece's "▁" into spaces, as SentencePiece itself
    decodes ordinary pieces; it drops `</s>` and `<pad>`.
    """

    EOS, UNK, PAD = "</s>", "<unk>", "<pad>"

    def __init__(self, source_proto: bytes, target_proto: bytes, vocab: dict[str, int]) -> None:
        self.source = _load_spm(source_proto, SOURCE_SPM)
        self.target = _load_spm(target_proto, TARGET_SPM)
        self.source_proto, self.target_proto = source_proto, target_proto
        self.vocab = dict(vocab)
        ids = sorted(self.vocab.values())
        if ids != list(range(len(ids))):
            raise ModelLoadError(f"corrupt {VOCAB_FILE}: ids must be 0..{len(ids) - 1}, each once")
        for piece in (self.EOS, self.UNK, self.PAD):
            if piece not in self.vocab:
                raise ModelLoadError(f"corrupt {VOCAB_FILE}: it has no {piece} piece")
        self.id_to_piece = [""] * len(ids)
        for piece, i in self.vocab.items():
            self.id_to_piece[i] = piece
        self.unk_id, self.eos_id, self.pad_id = self.vocab[self.UNK], self.vocab[self.EOS], self.vocab[self.PAD]
        self._dropped = {self.eos_id, self.pad_id}
        self._tag_ids = {piece: i for piece, i in self.vocab.items() if LANGUAGE_TAG.fullmatch(piece)}

    @classmethod
    def load(cls, folder: str | Path) -> "SourceTargetTokenizer":
        folder = Path(folder)
        try:
            source, target = (folder / SOURCE_SPM).read_bytes(), (folder / TARGET_SPM).read_bytes()
            text = (folder / VOCAB_FILE).read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise ModelLoadError(f"tokenizer file not found: {err.filename}") from None
        try:
            vocab = json.loads(text)
        except json.JSONDecodeError as err:
            raise ModelLoadError(f"corrupt {VOCAB_FILE} in {folder}: {err}") from None
        if not isinstance(vocab, dict) or not all(isinstance(k, str) and type(v) is int for k, v in vocab.items()):
            raise ModelLoadError(f"corrupt {VOCAB_FILE} in {folder}: expected an object of piece -> integer id")
        return cls(source, target, vocab)

    @property
    def vocab_size(self) -> int:
        return len(self.id_to_piece)

    def _ids(self, sp: spm.SentencePieceProcessor, texts: Sequence[str], threads: int) -> list[list[int]]:
        get, unk = self.vocab.get, self.unk_id
        return [[get(piece, unk) for piece in pieces] for pieces in sp.Encode(list(texts), out_type=str, num_threads=threads)]

    def encode(self, texts: Sequence[str], threads: int = 1) -> list[list[int]]:
        """Ids of source texts (no EOS), cut by the source model; a leading `>>xxx<<` of the
        vocabulary is one id."""
        if not self._tag_ids:
            return self._ids(self.source, texts, threads)
        split = [split_language_tag(text, self._tag_ids) for text in texts]
        cut = self._ids(self.source, [rest for _, rest in split], threads)
        return [([self.vocab[tag]] if tag else []) + ids for (tag, _), ids in zip(split, cut)]

    @property
    def language_tags(self) -> dict[str, str]:
        """The target-language tags of a multi-target model, code -> piece (`ukr` -> `>>ukr<<`);
        {} for a model with one target language."""
        return {piece[2:-2]: piece for piece in self._tag_ids}

    def encode_target(self, texts: Sequence[str], threads: int = 1) -> list[list[int]]:
        """Ids of target texts (no EOS), cut by the target model."""
        return self._ids(self.target, texts, threads)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        """Target texts of id sequences; `</s>` and `<pad>` are dropped."""
        return ["".join(self.id_to_piece[i] for i in row if i not in self._dropped).replace("▁", " ").strip() for row in ids]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return [self.id_to_piece[i] for i in ids]

    def piece_ids(self, pieces: Sequence[str]) -> list[int]:
        """The ids of pieces in the shared vocabulary (`<unk>` for one it lacks)."""
        return [self.vocab.get(p, self.unk_id) for p in pieces]

    @property
    def tag_id(self) -> int | None:
        """None: Marian's vocabularies reserve no tag piece."""
        return None

    def sampling_problem(self) -> str | None:
        """Why this tokenizer cannot sample segmentations: subword sampling is xformer's joint BPE tokenizer's."""
        return "Marian's pair of source and target models"

    def files(self) -> dict[str, bytes]:
        """The files a bundle or run folder keeps of this tokenizer, by name."""
        vocab = json.dumps(self.vocab, ensure_ascii=False, indent=0).encode("utf-8")
        return {SOURCE_SPM: self.source_proto, TARGET_SPM: self.target_proto, VOCAB_FILE: vocab}

    def digest(self) -> str:
        """sha256 over both models and the vocabulary."""
        h = hashlib.sha256()
        for data in self.files().values():
            h.update(hashlib.sha256(data).digest())
        return h.hexdigest()


AnyTokenizer = Tokenizer | SourceTargetTokenizer


def _load_spm(proto: bytes, name: str) -> spm.SentencePieceProcessor:
    sp = spm.SentencePieceProcessor()
    try:
        sp.LoadFromSerializedProto(proto)
    except (RuntimeError, OSError) as err:
        raise ModelLoadError(f"corrupt SentencePiece model {name}: {err}") from None
    return sp


def has_tokenizer(folder: Path) -> bool:
    """True where `folder` holds a tokenizer's files (either kind)."""
    return (folder / SPM_FILE).exists() or (folder / VOCAB_FILE).exists()


def load_tokenizer(folder: str | Path) -> AnyTokenizer:
    """The tokenizer kept in a bundle or run folder: `spm.model` (joint) where it is there, else
    Marian's `source.spm`, `target.spm` and `vocab.json`."""
    folder = Path(folder)
    if (folder / SPM_FILE).exists() or not (folder / VOCAB_FILE).exists():
        return Tokenizer.load(folder / SPM_FILE)
    return SourceTargetTokenizer.load(folder)

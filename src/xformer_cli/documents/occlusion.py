"""A second opinion on the English words a tag covers: those the tagged German words are needed for.

The attention places a tag from the first to the last English word aligned into it, and a word
at either edge is often one that only looked at the tagged words while translating its own
("on <b>time today</b>", "<b>go now</b>"). Occlusion asks the model instead: the sentence is read
again (teacher-forced on the same translation) with the tagged German pieces replaced by <unk>,
and the English words whose log-probability falls are the ones translated from them. The tag
keeps, from the words the attention gave it, the first to the last whose fall is at least
KEEP_SHARE of the largest fall in the sentence; where none is, it keeps them all.

Only tags the attention spread over two or more words are asked about (one word is not
narrowed), so a file costs one batched teacher-forced pass for those and the sentences they are in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from xformer_cli.batching import collate
from xformer_cli.model.transformer import Transformer
from xformer_cli.text.pieces import piece_words
from xformer_cli.text.tokenizer import SourceTargetTokenizer, Tokenizer

KEEP_SHARE = 0.1  # an English word stays in the tag if its fall is this share of the sentence's largest, or more
BATCH = 32  # (source, translation) pairs per teacher-forced batch
WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Question:
    """One tag to narrow: the sentence and its translation as the model reads them (`model_view`),
    the tagged German words and the English words the attention gave the tag (whitespace words,
    counted from 0; `tagged` a sorted tuple, `given` as (first, last + 1))."""

    source: str
    translation: str
    tagged: tuple[int, ...]
    given: tuple[int, int]


def question(source: str, translation: str, tagged: tuple[int, int], given: tuple[int, int], view: Callable[[str], str]) -> Question | None:
    """The question for a tag over the characters `tagged` of `source` that the attention put
    over the characters `given` of `translation`; None where that is fewer than two words.
    `view` gives a text as the model reads it (its whitespace words unchanged)."""
    source_words = [i for i, m in enumerate(WORD.finditer(source)) if m.start() < tagged[1] and m.end() > tagged[0]]
    target_words = [i for i, m in enumerate(WORD.finditer(translation)) if m.start() < given[1] and m.end() > given[0]]
    if len(target_words) < 2 or not source_words:
        return None
    return Question(view(source), view(translation), tuple(source_words), (target_words[0], target_words[-1] + 1))


def characters(translation: str, words: tuple[int, int]) -> tuple[int, int]:
    """The characters of the whitespace words (first, last + 1) of `translation`."""
    found = list(WORD.finditer(translation))
    return found[words[0]].start(), found[words[1] - 1].end()


def narrowed(questions: Sequence[Question], model: Transformer, tokenizer: Tokenizer | SourceTargetTokenizer) -> list[tuple[int, int]]:
    """For each question, the English words (first, last + 1) the tag keeps (see the module's text)."""
    answers = []
    for question, fall in zip(questions, word_falls(questions, model, tokenizer)):
        first, end = question.given
        if fall is None or float(fall.max()) <= 0:
            answers.append(question.given)
            continue
        kept = [first + i for i in range(end - first) if fall[i] >= KEEP_SHARE * float(fall.max())]
        answers.append((kept[0], kept[-1] + 1))
    return answers


@torch.inference_mode()
def word_falls(questions: Sequence[Question], model: Transformer, tokenizer: Tokenizer | SourceTargetTokenizer) -> list[Tensor | None]:
    """How much the log-probability of each English word the attention gave a tag (its pieces'
    summed) falls when the tagged German words are <unk>: one (given words,) tensor per question,
    no rise counted; None where the sentence or its translation does not split into its words or
    is longer than the model takes."""
    c = model.config
    reads: list[tuple[list[int], list[int], list[int]]] = []  # (source ids, target ids up to the words', positions read)
    spans: list[tuple[int, int, list[int]] | None] = []  # per question: its two reads' index, the word of each position read
    for question in questions:
        src = tokenizer.encode([question.source])[0]
        tgt = tokenizer.encode_target([question.translation])[0]
        source_words, target_words = piece_words(tokenizer.pieces(src)), piece_words(tokenizer.pieces(tgt))
        fits = src and tgt and max(len(src), len(tgt)) < c.max_pieces
        whole = len(set(source_words)) == len(question.source.split()) and len(set(target_words)) == len(question.translation.split())
        if not fits or not whole:
            spans.append(None)
            continue
        first, end = question.given
        positions = [p for p, word in enumerate(target_words) if first <= word < end]
        hidden = set(question.tagged)
        occluded = [c.unk_id if word in hidden else piece for piece, word in zip(src, source_words)]
        spans.append((len(reads), [target_words[p] - first for p in positions]))
        reads += [(src, tgt[: positions[-1] + 1], positions), (occluded, tgt[: positions[-1] + 1], positions)]
    log_probs = piece_log_probs(model, reads)
    falls: list[Tensor | None] = []
    for span, question in zip(spans, questions):
        if span is None:
            falls.append(None)
            continue
        at, words = span
        fall = (log_probs[at] - log_probs[at + 1]).clamp(min=0)  # (positions,)
        count = question.given[1] - question.given[0]
        falls.append(torch.zeros(count).index_add_(0, torch.tensor(words, dtype=torch.long), fall))
    return falls


def piece_log_probs(model: Transformer, reads: Sequence[tuple[list[int], list[int], list[int]]]) -> list[Tensor]:
    """For each (source ids, target ids, positions), the model's log-probability of the target
    pieces at `positions` given the source and the pieces before them (teacher-forced), in
    length-sorted batches of BATCH: one (positions,) tensor each, in order. Only those positions
    are projected onto the vocabulary."""
    c = model.config
    device = next(model.parameters()).device
    order = sorted(range(len(reads)), key=lambda i: (len(reads[i][0]), len(reads[i][1])))  # batches of similar lengths
    found: list[Tensor] = [torch.empty(0)] * len(reads)
    for first in range(0, len(reads), BATCH):
        chunk = [reads[i] for i in order[first : first + BATCH]]
        batch = collate([s for s, _, _ in chunk], [t for _, t, _ in chunk], c.pad_id, c.bos_id, c.eos_id)
        memory, src_mask = model.encode(batch.src.to(device))
        hidden = model.decode(batch.tgt_in.to(device), model.init_state(memory, src_mask))  # (B, T + 1, d_model)
        rows = torch.tensor([b for b, (_, _, positions) in enumerate(chunk) for _ in positions], dtype=torch.long)
        columns = torch.tensor([p for _, _, positions in chunk for p in positions], dtype=torch.long)
        lp = model.project(hidden[rows.to(device), columns.to(device)]).float().log_softmax(dim=-1)  # (N, V)
        chosen = lp.gather(1, batch.tgt_out[rows, columns].to(device).unsqueeze(1)).squeeze(1).cpu()  # (N,)
        for i, piece_lp in zip(order[first : first + BATCH], chosen.split([len(positions) for _, _, positions in chunk])):
            found[i] = piece_lp
    return found

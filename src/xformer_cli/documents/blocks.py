"""Blocks of marked text translated, their tags and atoms carried over to the translation.

Every format comes through here: its blocks are split into sentences, all sentences of the
document go to the translator together (one batched search, the CLI's), and each tag goes to
the English words its German words are aligned with (`alignment.py`), or, for a model trained to
carry tags, where the model wrote it (`tag_text.py`, `--inline-tags model`). Atoms are held back like
numbers (`text/spans.py`) and come back where the model put their placeholder.

Each source tag gives exactly one tag in the translation, nested as in the source: a child stays
inside its parent and siblings do not overlap (a later one gives way), so the output is
well-formed whatever the alignment says.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from torch import Tensor

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.source_attention import PieceAttention, teacher_forced
from xformer_cli.decoding.translator import Translator
from xformer_cli.documents.alignment import project_words, word_alignment, word_map
from xformer_cli.documents.edges import GERMAN_FUNCTION_WORDS, LEADING_PUNCTUATION, trim, without_function_words
from xformer_cli.documents.inline import Marked, Tag, atom_index
from xformer_cli.documents.occlusion import characters, narrowed, question
from xformer_cli.documents.tag_text import Span, read_back, render, spans_to_write
from xformer_cli.text.pieces import piece_words
from xformer_cli.text.sentences import split_sentences
from xformer_cli.text.spans import FIRST_PLACEHOLDER, Masked, protect

WORD = re.compile(r"\S+")
SENTENCE_END = re.compile(r"[.!?…:;][\"'”’»)\]]*$")
ATOM_BEFORE_PUNCTUATION = re.compile("([\U000f0000-\U000ffffd]) +([,.;:!?)])")
ALIGN_BATCH = 32  # sentence pairs per teacher-forced alignment batch


@dataclass(frozen=True)
class Sentence:
    """A sentence of a block: where it is in the block, and its translation once known."""

    block: int
    start: int
    end: int
    text: str
    translation: str = ""
    pieces: PieceAttention | None = field(default=None, compare=False)  # the search's pieces and attention, where recorded


def hold_atoms(masked: Masked) -> Masked:
    """Atoms held back like the spans: each atom character becomes the next placeholder number,
    and the span it stands for is the atom character itself (put back as it is)."""
    spans = list(masked.spans)
    text = []
    for char in masked.text:
        if atom_index(char) is None:
            text.append(char)
            continue
        text.append(f" {FIRST_PLACEHOLDER + len(spans)} ")  # a number of its own, even between letters
        spans.append(char)
    return replace(masked, text=re.sub(r" {2,}", " ", "".join(text)).strip(), spans=tuple(spans))


def sentences_of(index: int, block: Marked, split: bool) -> list[Sentence]:
    """The sentences of a block, each with its place in the block's text."""
    found, cursor = [], 0
    for text in split_sentences(block.text) if split else [block.text.strip()] if block.text.strip() else []:
        start = block.text.find(text, cursor)
        if start < 0:  # splitting changed the text (it never should): the block as one sentence
            return [Sentence(index, 0, len(block.text), block.text.strip())] if block.text.strip() else []
        found.append(Sentence(index, start, start + len(text), text))
        cursor = start + len(text)
    return found


def translate_blocks(blocks: Sequence[Marked], translator: Translator, config: DecodeConfig) -> list[Marked]:
    """The translation of each block, with its tags on the aligned words (or, with
    `config.inline_tags` "model", where the model wrote them) and its atoms kept."""
    sentences = [s for i, block in enumerate(blocks) for s in sentences_of(i, block, config.split_sentences)]
    tagged = any(block.tags for block in blocks)
    written = tags_to_write(blocks, sentences) if tagged and config.inline_tags == "model" else {}
    texts = [render(s.text, [span for _, span in written[k]]) if k in written else s.text for k, s in enumerate(sentences)]
    # The search records its attention only for tags to follow: none where the model writes every one.
    follow = any(k not in written and any(inside_partly(t, s) for t in blocks[s.block].tags) for k, s in enumerate(sentences))
    translated = translate_texts(texts, translator, config, follow)
    given: dict[int, dict[int, tuple[int, int]]] = {}  # sentence -> tag number -> its characters in the translation
    for k, tags in written.items():
        read = read_back(translated[k][0], len(tags), lambda text, k=k: tidy(sentences[k].text, text))
        if read is not None:  # else a tag was lost or broken: the plain sentence, and the attention, after all
            translated[k] = (read[0], None)
            given[k] = {t: span for (t, _), span in zip(tags, read[1])}
    lost = [k for k in written if k not in given]
    for k, again in zip(lost, translate_texts([sentences[k].text for k in lost], translator, config, True)):
        translated[k] = again
    sentences = [
        replace(s, translation=t if k in given else tidy(s.text, t), pieces=pieces)
        for k, (s, (t, pieces)) in enumerate(zip(sentences, translated))
    ]
    by_block: list[list[Sentence]] = [[] for _ in blocks]
    placed: dict[tuple[int, int, int], tuple[int, int]] = {}  # (block, its sentence, tag) -> range written by the model
    for k, sentence in enumerate(sentences):
        placed |= {(sentence.block, len(by_block[sentence.block]), t): span for t, span in given.get(k, {}).items()}
        by_block[sentence.block].append(sentence)
    ranges = tag_ranges(blocks, by_block, translator, config.alignment_heads, config.check_tags, placed)
    return [assemble(block, found, ranges.get(i, {})) for i, (block, found) in enumerate(zip(blocks, by_block))]


def translate_texts(
    texts: Sequence[str], translator: Translator, config: DecodeConfig, attention: bool
) -> list[tuple[str, PieceAttention | None]]:
    """Each sentence's best translation (untidied), spans and atoms held back and put back, with
    the search's attention where `attention`."""
    masked = [hold_atoms(protect(text) if config.protect_spans else Masked(text, ())) for text in texts]
    translated = translator.translate_masked(masked, replace(config, n_best=1, source_attention=attention))
    return [(t[0].text, t[0].pieces) for t in translated]


def tags_to_write(blocks: Sequence[Marked], sentences: Sequence[Sentence]) -> dict[int, list[tuple[int, Span]]]:
    """For each sentence with tags over part of it that the model can carry (`tag_text.spans_to_write`),
    (tag number, its span in the sentence) of each."""
    written = {}
    for k, sentence in enumerate(sentences):
        parts = [t for t, tag in enumerate(blocks[sentence.block].tags) if inside_partly(tag, sentence)]
        tags = [blocks[sentence.block].tags[t] for t in parts]
        spans = spans_to_write(sentence.text, [(tag.start - sentence.start, tag.end - sentence.start) for tag in tags])
        if spans:
            written[k] = list(zip(parts, spans))
    return written


def tidy(source: str, translation: str) -> str:
    """A sentence's translation with single spaces, no space the placeholders brought between an
    atom and the punctuation after it, and no full stop the model added to a fragment without one
    (a heading, a list item, a table cell)."""
    text = " ".join(translation.split())
    text = ATOM_BEFORE_PUNCTUATION.sub(r"\1\2", text)
    for at, char in enumerate(source):  # an atom written against a word is so in the translation too
        if atom_index(char) is None:
            continue
        if at + 1 < len(source) and not source[at + 1].isspace():  # only before what followed it in the source
            text = re.sub(f"{char} +(?={re.escape(source[at + 1])})", char, text)
        if at > 0 and not source[at - 1].isspace():
            text = re.sub(f"(?<={re.escape(source[at - 1])}) +{char}", char, text)
    if text.endswith(".") and not text.endswith("..") and not SENTENCE_END.search(source.rstrip()):
        text = text[:-1]
    return text


def tag_ranges(
    blocks: Sequence[Marked],
    by_block: list[list[Sentence]],
    translator: Translator,
    heads: Sequence[tuple[int, int]] = (),
    check: bool = False,
    placed: dict[tuple[int, int, int], tuple[int, int]] | None = None,
) -> dict[int, dict[tuple[int, int], tuple[int, int]]]:
    """For each block, each (sentence number, tag number) that needs the alignment -> its target
    character range in that sentence's translation; with `check`, a range of several words
    narrowed by occlusion (`occlusion.py`). A range in `placed` (block, sentence number, tag
    number), where the model wrote the tag, is taken as it is."""
    placed = placed or {}
    jobs = [  # (block, sentence number, tag number, sentence)
        (b, n, t, sentence)
        for b, block in enumerate(blocks)
        for n, sentence in enumerate(by_block[b])
        for t, tag in enumerate(block.tags)
        if sentence.translation and inside_partly(tag, sentence)
    ]
    copied = {job: placed.get(job[:3]) or copy_in(tag_content(blocks[job[0]].tags[job[2]], job[3]), job[3].translation) for job in jobs}
    # The alignment only for sentences with a tag not placed by a copy.
    aligned = align_pairs({(job[3].text, job[3].translation): job[3].pieces for job in jobs if copied[job] is None}, translator, heads)
    ranges: dict[int, dict[tuple[int, int], tuple[int, int]]] = {}
    asked = {}  # job -> the occlusion question of a tag the attention spread over several words
    for job in jobs:
        b, n, t, sentence = job
        tag = blocks[b].tags[t]
        found = copied[job] or target_range(tag, sentence, aligned[sentence.text, sentence.translation])
        ranges.setdefault(b, {})[n, t] = found
        if check and copied[job] is None and tag.end > tag.start:
            within = (tag.start - sentence.start, tag.end - sentence.start)
            asked[job] = question(sentence.text, sentence.translation, within, found, model_view)
    asked = {job: q for job, q in asked.items() if q is not None}
    for (b, n, t, sentence), words in zip(asked, narrowed(list(asked.values()), translator.model, translator.tokenizer)):
        content = tag_content(blocks[b].tags[t], sentence)
        begin, finish = without_function_words(sentence.translation, *characters(sentence.translation, words), content)
        ranges[b][n, t] = trim(sentence.translation, begin, finish, content)
    return ranges


def tag_content(tag: Tag, sentence: Sentence) -> str:
    """The part of a sentence inside a tag."""
    return sentence.text[max(tag.start - sentence.start, 0) : max(tag.end - sentence.start, 0)]


def inside_partly(tag: Tag, sentence: Sentence) -> bool:
    """Whether a tag covers part of a sentence, not all of it (then it needs the alignment)."""
    covers_all = tag.start <= sentence.start and tag.end >= sentence.end
    meets = tag.start < sentence.end and tag.end > sentence.start or sentence.start <= tag.start == tag.end < sentence.end
    return meets and not covers_all


def align_pairs(
    pairs: dict[tuple[str, str], PieceAttention | None], translator: Translator, heads: Sequence[tuple[int, int]] = ()
) -> dict[tuple[str, str], Tensor]:
    """Word-to-word attention of each (sentence, translation) pair, averaged over `heads` (see
    `DecodeConfig.alignment_heads`): the search's own where it recorded it (`pairs`), mapped onto
    the words of the sentence and its translation (`searched_alignment`), else read in a
    teacher-forced pass, batched."""
    tokenizer, config = translator.tokenizer, translator.model.config
    aligned, forced = {}, []
    for pair, searched in pairs.items():
        words = searched_alignment(pair, searched, translator)
        if words is None:
            forced.append(pair)
        else:
            aligned[pair] = words
    forced.sort(key=lambda pair: len(pair[0]))
    for first in range(0, len(forced), ALIGN_BATCH):
        chunk = forced[first : first + ALIGN_BATCH]
        src_ids = [ids[: config.max_pieces] for ids in tokenizer.encode([model_view(source) for source, _ in chunk])]
        tgt_ids = tokenizer.encode_target([model_view(target) for _, target in chunk])
        tgt_ids = [ids[: config.max_pieces] or [config.eos_id] for ids in tgt_ids]
        for pair, steps, s, t in zip(chunk, teacher_forced(translator.model, src_ids, tgt_ids, heads), src_ids, tgt_ids):
            aligned[pair] = word_alignment(steps[:-1, : len(s)], piece_words(tokenizer.pieces(s)), piece_words(tokenizer.pieces(t)))
    return aligned


def searched_alignment(pair: tuple[str, str], searched: PieceAttention | None, translator: Translator) -> Tensor | None:
    """The attention the search recorded, between the words of the sentence and of its
    translation (`pair`): shape (translation words, sentence words). The search's words (what
    its pieces spell) and these differ where spans were held back and put back ("43" for
    "12 000") or the translation was tidied; each word takes the attention of the search's word
    it corresponds to (`word_map`). None where nothing was recorded or the pieces and their text
    disagree on the words."""
    if searched is None or not searched.source or not searched.target:
        return None
    tokenizer = translator.tokenizer
    source, target = (piece_words(tokenizer.pieces(list(ids))) for ids in (searched.source, searched.target))
    spelled = [text.split() for text in tokenizer.decode([list(searched.source), list(searched.target)])]
    if [len(words) for words in spelled] != [source[-1] + 1, target[-1] + 1]:
        return None
    steps = searched.attention.tensor()[:, : len(searched.source)]  # (T + 1, S) without the source's EOS
    # A tag follows the steps that chose the pieces (all but the last, which chose EOS).
    words = word_alignment(steps[:-1], source, target)  # (search's target words, search's source words)
    rows, columns = word_map(spelled[1], pair[1].split()), word_map(spelled[0], model_view(pair[0]).split())
    return words[rows][:, columns]


def model_view(text: str) -> str:
    """A text as the alignment tokenizes it: each atom as a placeholder number (a character the
    tokenizer does not know would be one <unk> for all of them); the whitespace words stay."""
    return "".join(str(FIRST_PLACEHOLDER) if atom_index(ch) is not None else ch for ch in text)


def target_range(tag: Tag, sentence: Sentence, words) -> tuple[int, int]:
    """The characters of `sentence.translation` a tag over part of `sentence` covers."""
    source_words = [m for m in WORD.finditer(sentence.text)]
    target_words = [m for m in WORD.finditer(sentence.translation)]
    start, end = tag.start - sentence.start, tag.end - sentence.start
    n_src, n_tgt = words.shape[1], words.shape[0]
    if start == end:  # an empty tag: before the word that follows it
        covered = {min(i, n_src - 1) for i, m in enumerate(source_words) if m.end() > start}
        covered = {min(covered)} if covered else {n_src - 1}
    else:
        covered = {min(i, n_src - 1) for i, m in enumerate(source_words) if m.start() < end and m.end() > start}
    articles = {i for i, m in enumerate(source_words) if m.group().lower().strip(LEADING_PUNCTUATION) in GERMAN_FUNCTION_WORDS}
    span = project_words(covered, words, articles) if n_src and n_tgt else None
    if span is None or not target_words:
        return (0, 0) if start == end else (0, len(sentence.translation))
    first, last = target_words[min(span[0], len(target_words) - 1)], target_words[min(span[1], len(target_words)) - 1]
    begin, finish = first.start(), last.end()
    if start == end:
        return begin, begin
    content = sentence.text[max(start, 0) : end]
    begin, finish = without_function_words(sentence.translation, begin, finish, content)
    return trim(sentence.translation, begin, finish, content)


def copy_in(content: str, translation: str) -> tuple[int, int] | None:
    """Where the translation holds a tag's words exactly as written, once, as whole words (a
    name, a number, a term left in German): that place, where the tag goes; else None (then
    the attention decides)."""
    words = content.strip()
    if not words or not any(ch.isalpha() or ch.isdigit() for ch in words):
        return None
    found = [m for m in re.finditer(rf"(?<!\w){re.escape(words)}(?!\w)", translation)]
    return (found[0].start(), found[0].end()) if len(found) == 1 else None


def assemble(block: Marked, sentences: list[Sentence], ranges: dict[tuple[int, int], tuple[int, int]]) -> Marked:
    """The translated block: its sentences joined by spaces (the block's leading and trailing
    whitespace kept), every tag placed, atoms where the translation put them."""
    lead = block.text[: len(block.text) - len(block.text.lstrip())]
    trail = block.text[len(block.text.rstrip()) :] if block.text.strip() else ""
    text, offsets = lead, []
    for n, sentence in enumerate(sentences):
        if n and sentence.translation and text and not text.endswith(" "):
            text += " "
        offsets.append(len(text))
        text += sentence.translation
    text += trail
    placed = []
    for t, tag in enumerate(block.tags):
        spans = [
            (offsets[n] + ranges[n, t][0], offsets[n] + ranges[n, t][1])
            if (n, t) in ranges
            else (offsets[n], offsets[n] + len(s.translation))
            for n, s in enumerate(sentences)
            if (n, t) in ranges or (tag.start <= s.start and tag.end >= s.end and tag.end > tag.start)
        ]
        placed.append(with_atoms(cover(spans, tag, block, sentences, offsets, len(text)), tag, block.text, text))
    return Marked(text, nest(block.tags, placed, text), block.atoms)


def cover(
    spans: list[tuple[int, int]], tag: Tag, block: Marked, sentences: list[Sentence], offsets: list[int], size: int
) -> tuple[int, int]:
    """One target range for a tag from its ranges in each sentence; a tag in no sentence (around
    whitespace, or empty between sentences) goes to the matching place between them."""
    if spans:
        return min(s for s, _ in spans), max(e for _, e in spans)
    before = [offsets[n] + len(s.translation) for n, s in enumerate(sentences) if s.end <= tag.start]
    if tag.start >= len(block.text.rstrip()) and tag.start > 0:
        return size, size
    position = max(before) if before else len(block.text[: len(block.text) - len(block.text.lstrip())])
    return position, position


def with_atoms(span: tuple[int, int], tag: Tag, source: str, target: str) -> tuple[int, int]:
    """A target range grown to hold the atoms the source tag holds (a link around inline code
    keeps its code); a tag of atoms alone covers just them."""
    positions = [target.find(ch) for ch in source[tag.start : tag.end] if atom_index(ch) is not None]
    positions = [p for p in positions if p >= 0]
    if not positions:
        return span
    if not any(ch.isalnum() for ch in source[tag.start : tag.end]):
        return min(positions), max(positions) + 1
    return min(span[0], *positions), max(span[1], max(positions) + 1)


def nest(tags: Sequence[Tag], placed: list[tuple[int, int]], text: str) -> tuple[Tag, ...]:
    """The placed tags, made to nest as in the source: a tag inside its source parent's range,
    outside the ranges of its earlier siblings; each tag's atoms of the source kept inside it."""
    result: list[Tag] = []
    for t, (tag, (start, end)) in enumerate(zip(tags, placed)):
        parent = next((result[p] for p in range(t - 1, -1, -1) if contains(tags[p], tag)), None)
        if parent is not None:
            start, end = min(max(start, parent.start), parent.end), max(min(end, parent.end), parent.start)
            end = max(start, end)
        for p in range(t):
            sibling = result[p]
            if contains(tags[p], tag) or sibling.end <= start or sibling.start >= end or sibling.start == sibling.end:
                continue
            if sibling.start <= start:
                start = min(max(start, sibling.end), end)
            else:
                end = max(min(end, sibling.start), start)
        result.append(Tag(start, end, tag.kind))
    result = [stripped(t, text) for t in result]  # "** word**" is no emphasis in Markdown
    result = [
        with_a_word(result, i, tag, text) if tag.start < tag.end and result[i].start == result[i].end else result[i]
        for i, tag in enumerate(tags)
    ]
    order = sorted(range(len(result)), key=lambda i: (result[i].start, -result[i].end, i))
    return tuple(result[i] for i in order)


def stripped(tag: Tag, text: str) -> Tag:
    """A tag without the whitespace at its edges (an empty one stays where it is)."""
    start, end = tag.start, tag.end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Tag(start, end, tag.kind) if start < end else tag


def with_a_word(placed: list[Tag], index: int, source: Tag, text: str) -> Tag:
    """A tag that held words in the source but none in the translation (the alignment gave its
    words to a sibling, or the translation is shorter) gets the nearest word, shared with
    whatever tag holds it, so that no tag comes back empty (an empty `**` in Markdown is no
    emphasis); left empty where that word would cross another tag."""
    empty = placed[index]
    words = [m for m in WORD.finditer(text) if any(ch.isalnum() for ch in m.group())]
    if not words:
        return empty
    nearest = min(words, key=lambda m: (abs(m.start() - empty.start), m.start()))
    start, end = trim(text, nearest.start(), nearest.end(), "")
    candidate = Tag(start, end, empty.kind)
    others = [t for i, t in enumerate(placed) if i != index]
    crossing = any(t.start < candidate.start < t.end < candidate.end or candidate.start < t.start < candidate.end < t.end for t in others)
    return empty if crossing else candidate


def contains(outer: Tag, inner: Tag) -> bool:
    """Whether `outer` holds `inner` in the source (a tag does not contain itself)."""
    return outer is not inner and outer.start <= inner.start and inner.end <= outer.end

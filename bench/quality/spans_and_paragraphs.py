"""Nothing the user wrote is lost: paragraphs and untranslatable spans.

    python bench/quality/spans_and_paragraphs.py [--model DIR] [--data-dir ../shared/data] [--paragraph 4]

1. Paragraphs: consecutive sentences of one newstest2014 document (the docid file says where
   documents start; headlines without final punctuation are left out) joined into one line, `--paragraph` sentences at a time, scored with
   sacreBLEU against the references joined the same way, with sentence splitting on and off.
   Beside it, the same sentences translated one per line and joined afterwards (the ceiling).
   The splitter must find the sentence ends inside each paragraph: a paragraph it splits into
   fewer sentences than the source lines it was made of would give the model two sentences at
   once, which is how sentences get dropped.
2. Spans: `bench/quality/data/spans.de` (sentences written for this test) carries numbers, URLs, e-mail
   addresses, emoji and a date; each span counts as kept when it appears in the translation as
   written or in the English form span protection gives it (3,50 € -> 3.50 €, 3. Mai -> 3 May),
   with span protection on and off.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from pathlib import Path

from xformer_cli.decoding.translator import Translator
from xformer_cli.evaluation.metrics import corpus_bleu
from xformer_cli.text.sentences import split_sentences
from xformer_cli.text.spans import DATE, EMAIL, EMOJI, SPAN, URL, english_form

ROOT = Path(__file__).resolve().parents[2]
SPANS = Path(__file__).resolve().parent / "data" / "spans.de"
ENDS = re.compile(r"[.!?…][\"'“”»)]*$")  # a line that ends like a sentence


def paragraphs(data_dir: Path, size: int) -> tuple[list[str], list[str], list[list[str]]]:
    """(joined sources, joined references, the source sentences of each paragraph)."""
    wmt = data_dir / "wmt"
    src = (wmt / "newstest2014.de").read_text(encoding="utf-8").splitlines()
    ref = (wmt / "newstest2014.en").read_text(encoding="utf-8").splitlines()
    docs = [line.split("\t")[0] for line in (wmt / "newstest2014.docid-origlang.tsv").read_text(encoding="utf-8").splitlines()]
    groups: list[list[int]] = []
    for i, doc in enumerate(docs):
        if not ENDS.search(src[i]):
            groups.append([])  # a headline (no final punctuation) ends the run: no splitter could find its end
        elif groups and groups[-1] and docs[groups[-1][0]] == doc and len(groups[-1]) < size:
            groups[-1].append(i)
        else:
            groups.append([i])
    groups = [g for g in groups if len(g) == size]
    return (
        [" ".join(src[i] for i in g) for g in groups],
        [" ".join(ref[i] for i in g) for g in groups],
        [[src[i] for i in g] for g in groups],
    )


def kind(span: str) -> str:
    """Which of text/spans.py's span patterns `span` is."""
    for name, pattern in (("URL", URL), ("e-mail", EMAIL), ("emoji", EMOJI), ("date", DATE.pattern)):
        if re.fullmatch(pattern, span):
            return name
    return "number"


def span_survival(translator: Translator, lines: list[str], protect: bool) -> Counter:
    """Kept and total spans per kind."""
    counts: Counter = Counter()
    for line, out in zip(lines, translator.translate(lines, protect_spans=protect)):
        for match in SPAN.finditer(line):
            counts[(kind(match.group()), "total")] += 1
            counts[(kind(match.group()), "kept")] += match.group() in out or english_form(match.group()) in out
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "de-en-general"))
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--paragraph", type=int, default=4, help="sentences per paragraph")
    args = parser.parse_args()
    translator = Translator.load(args.model, device="cpu")

    sources, references, sentences = paragraphs(args.data_dir, args.paragraph)
    print(f"paragraphs: {len(sources)} of {args.paragraph} consecutive newstest2014 sentences of one document")
    ceiling = translator.translate([s for group in sentences for s in group])
    it = iter(ceiling)
    rows = [("one sentence per line, joined", [" ".join(next(it) for _ in group) for group in sentences])]
    for split in (True, False):
        started = time.perf_counter()
        hyps = translator.translate(sources, split_sentences=split)
        label = f"paragraph per line, splitting {'on' if split else 'off'} ({time.perf_counter() - started:.0f} s)"
        rows.append((label, hyps))
    merged = sum(len(split_sentences(p)) < len(group) for p, group in zip(sources, sentences))
    print(f"  paragraphs the splitter cut into fewer sentences than their source lines: {merged} of {len(sources)}")
    for label, hyps in rows:
        bleu = corpus_bleu(hyps, [references])
        words = sum(len(h.split()) for h in hyps) / sum(len(r.split()) for r in references)
        print(f"  {label:52} BLEU {bleu.score:5.1f}  words against the references: {words:.2f}")
    print(f"  signature: {bleu.signature}")

    lines = SPANS.read_text(encoding="utf-8").splitlines()
    print(f"spans: {len(lines)} sentences of bench/quality/data/spans.de")
    for protect in (True, False):
        counts = span_survival(translator, lines, protect)
        kinds = sorted({k for k, _ in counts})
        cells = ", ".join(f"{k} {counts[(k, 'kept')]}/{counts[(k, 'total')]}" for k in kinds)
        kept = sum(counts[(k, "kept")] for k in kinds)
        total = sum(counts[(k, "total")] for k in kinds)
        print(f"  protection {'on ' if protect else 'off'}: {kept}/{total} spans kept ({cells})")


if __name__ == "__main__":
    main()

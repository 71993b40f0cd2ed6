"""German dates with a month name ("1. Januar 2027"): how many come out with their day and month.

    python bench/quality/dates.py [--model DIR] [--data-dir ../shared/data]

Takes every line of the development news sets (newstest2013, 2015, 2016 and 2018; the test sets
the README reports are left alone) with a day and a German month name, and translates them
three ways with the default decoding:

- date spans: today's span protection, where such a date is one span put back in English
  ("1 January 2027");
- day and year apart: span protection as it was before, numbers only, so the model sees
  "am 42. Januar 43" (the pattern is swapped in this script only);
- no protection (`--no-protect-spans`): the model sees the date as written.

Prints, for each, sacreBLEU on those lines and how many dates come out with their day and month
in either English order (1 January, January 1st, the 1st of January).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from xformer_cli.decoding.translator import Translator
from xformer_cli.evaluation.metrics import corpus_bleu
from xformer_cli.text import spans

ROOT = Path(__file__).resolve().parents[2]
SETS = ("newstest2013", "newstest2015", "newstest2016", "newstest2018")
NUMBERS_ONLY = re.compile(rf"{spans.URL}|{spans.EMAIL}|{spans.EMOJI}|(?<![\w.,]){spans.NUMBER}(?![\w])")


def dates(line: str) -> list[re.Match[str]]:
    """The month-name dates that span protection finds in `line` (spans.DATE matches)."""
    return [date for span in spans.SPAN.finditer(line) if (date := spans.DATE.fullmatch(span.group()))]


def date_lines(data_dir: Path) -> tuple[list[str], list[str]]:
    """(German lines with a month-name date, their references) of the development news sets."""
    sources, references = [], []
    for name in SETS:
        de = (data_dir / "wmt" / f"{name}.de").read_text(encoding="utf-8").splitlines()
        en = (data_dir / "wmt" / f"{name}.en").read_text(encoding="utf-8").splitlines()
        for src, ref in zip(de, en):
            if dates(src):
                sources.append(src)
                references.append(ref)
    return sources, references


def dates_kept(sources: list[str], outputs: list[str]) -> tuple[int, int]:
    """(dates whose day and month both come out, in an English order; all dates)."""
    kept = total = 0
    for src, out in zip(sources, outputs):
        for date in dates(src):
            english, day = spans.MONTHS[date[2]], int(date[1])
            total += 1
            kept += bool(re.search(rf"\b{day}(?:st|nd|rd|th)? (?:of )?{english}\b|\b{english} (?:the )?{day}(?:st|nd|rd|th)?\b", out))
    return kept, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "de-en-general"))
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    translator = Translator.load(args.model, device="cpu")
    sources, references = date_lines(args.data_dir)
    print(f"{len(sources)} lines with a day and a month name in {', '.join(SETS)}")
    date_spans = spans.SPAN
    for label, pattern, protect in (
        ("date spans", date_spans, True),
        ("day and year apart", NUMBERS_ONLY, True),
        ("no protection", date_spans, False),
    ):
        spans.SPAN = pattern  # protect() reads the module's pattern when it runs
        try:
            outputs = translator.translate(sources, protect_spans=protect)
        finally:
            spans.SPAN = date_spans
        kept, total = dates_kept(sources, outputs)
        print(f"  {label:20} BLEU {corpus_bleu(outputs, [references]).score:5.1f}   dates with day and month: {kept}/{total}")


if __name__ == "__main__":
    main()

"""Each format against plain lines: newstest2014 sentences wrapped into SubRip, WebVTT, Markdown,
HTML, Word and gettext, translated, the markup stripped, scored with sacreBLEU, and timed.

    python bench/documents/formats.py [--model models/de-en-general] [--data-dir ../shared/data] [--lines 500] [--rounds 3]

The wrapping puts markup where it makes the model's job harder if anything goes wrong: in HTML a
`<b>` around the second and third words and a link around the last word but one; in Markdown
`**` and a link the same way; in Word a bold and an italic run the same way; in SubRip and
WebVTT every sentence cut at its middle word into two cues; in gettext each sentence a message.
Prints, per format, BLEU and its difference to plain lines, the seconds of each round, and the
median over rounds of its time over that of the plain lines translated just before it (each
format is paired with a plain run, so that the machine's drift touches both alike), all in one
process on the same sentences. `--formats recorded` times plain lines with the search recording
its attention (what a tagged format costs in the search itself) against plain lines without;
`--check-tags` translates the formats as `xformer translate --check-tags` does, `--inline-tags
model` as `xformer translate --inline-tags model` (a model trained to carry tags).
"""

from __future__ import annotations

import argparse
import html
import io
import json
import re
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from xformer_cli.decoding.translator import Translator
from xformer_cli.documents import translate_document
from xformer_cli.evaluation.metrics import corpus_bleu
from xformer_cli.evaluation.test_sets import find_testset
from xformer_cli.shipped import default_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import DATA_DIR, cpu_name  # noqa: E402


def spans(words: list[str]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The words a first tag (second and third word) and a second tag (last but one) go around."""
    n = len(words)
    return (1, min(3, n - 2)), (n - 2, n - 1)


def wrapped(words: list[str], first: tuple[str, str], second: tuple[str, str]) -> str:
    (a, b), (c, d) = spans(words)
    if len(words) < 5:
        return " ".join(words)
    out = [*words[:a], first[0] + " ".join(words[a:b]) + first[1], *words[b:c], second[0] + " ".join(words[c:d]) + second[1], *words[d:]]
    return " ".join(out)


def to_html(lines: list[str]) -> bytes:
    link = ('<a href="#x">', "</a>")
    body = "\n".join("<p>" + wrapped(html.escape(s).split(), ("<b>", "</b>"), link) + "</p>" for s in lines)
    return ('<!DOCTYPE html>\n<html lang="de">\n<body>\n' + body + "\n</body>\n</html>\n").encode()


def from_html(data: bytes) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", "", p)) for p in re.findall(r"<p>(.*?)</p>", data.decode(), re.S)]


def to_markdown(lines: list[str]) -> bytes:
    escaped = [re.sub(r"([\\`*_\[\]<>#|])", r"\\\1", s) for s in lines]
    return "\n\n".join(wrapped(s.split(), ("**", "**"), ("[", "](https://example.org)")) for s in escaped).encode() + b"\n"


def from_markdown(data: bytes) -> list[str]:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(data.decode())
    return ["".join(c.content for c in t.children if c.type in ("text", "code_inline")) for t in tokens if t.type == "inline"]


def to_subtitles(lines: list[str], vtt: bool) -> bytes:
    cues, sep = [], "." if vtt else ","
    for i, sentence in enumerate(lines):
        words = sentence.split()
        half = max(1, len(words) // 2)
        for j, part in enumerate((words[:half], words[half:])):
            if part:
                n = 2 * i + j
                stamp = f"00:{n // 60 % 60:02d}:{n % 60:02d}{sep}000 --> 00:{n // 60 % 60:02d}:{n % 60:02d}{sep}900"
                cues.append(("" if vtt else f"{len(cues) + 1}\n") + f"{stamp}\n{' '.join(part)}")
    return (("WEBVTT\n\n" if vtt else "") + "\n\n".join(cues) + "\n").encode()


def from_subtitles(data: bytes, lines: list[str]) -> list[str]:
    texts = [block.split("\n")[-1 if len(block.split("\n")) > 1 else 0] for block in data.decode().strip().split("\n\n")]
    texts = [t for t in texts if "-->" not in t and t != "WEBVTT"]
    out, k = [], 0
    for sentence in lines:
        parts = 2 if len(sentence.split()) > 1 else 1
        out.append(" ".join(texts[k : k + parts]))
        k += parts
    return out


def to_docx(lines: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for sentence in lines:
        words, paragraph = sentence.split(), None
        paragraph = document.add_paragraph()
        (a, b), (c, d) = spans(words) if len(words) >= 5 else ((0, 0), (0, 0))
        for k, (start, end) in enumerate(((0, a), (a, b), (b, c), (c, d), (d, len(words)))):
            if start < end:
                run = paragraph.add_run(" ".join(words[start:end]) + (" " if end < len(words) else ""))
                run.bold, run.italic = k == 1, k == 3
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def from_docx(data: bytes) -> list[str]:
    import docx

    return [p.text for p in docx.Document(io.BytesIO(data)).paragraphs]


def to_po(lines: list[str]) -> bytes:
    entries = [f'msgid "{s.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"\nmsgstr ""\n' for s in dict.fromkeys(lines)]
    return ('msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n' + "\n".join(entries)).encode()


def from_po(data: bytes, lines: list[str]) -> list[str]:
    import polib

    translated = {e.msgid: e.msgstr for e in polib.pofile(data.decode())}
    return [translated[s] for s in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--lines", type=int, default=500, help="the first N sentences of newstest2014")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="times each format runs, each after plain lines")
    parser.add_argument(
        "--formats",
        nargs="+",
        default=["srt", "vtt", "markdown", "html", "docx", "po"],
        help="those to time; `recorded`: plain lines with the search recording its attention",
    )
    parser.add_argument("--check-tags", action="store_true", help="the formats translated as `--check-tags` does")
    parser.add_argument(
        "--inline-tags", choices=["attention", "model"], help="who places the tags, as `--inline-tags` [default: the model's]"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = Translator.load(args.model, device="cpu")
    config = translator.config()
    checked = replace(config, check_tags=args.check_tags, inline_tags=args.inline_tags or config.inline_tags)
    source, reference = find_testset("wmt14/full", args.data_dir)
    src = source.read_text(encoding="utf-8").splitlines()[: args.lines]
    ref = reference.read_text(encoding="utf-8").splitlines()[: args.lines]
    header = {"cpu": cpu_name(), "model": str(translator.bundle.path), "lines": len(src), "search": f"beam {config.beam_size}"}
    print(json.dumps(header | {"check_tags": args.check_tags, "inline_tags": checked.inline_tags}))
    translator.translate_nbest(src[:20], config)  # warm-up: the first search pays for lazy set-up
    formats = {
        "srt": (lambda: to_subtitles(src, False), lambda out: from_subtitles(out, src)),
        "vtt": (lambda: to_subtitles(src, True), lambda out: from_subtitles(out, src)),
        "markdown": (lambda: to_markdown(src), from_markdown),
        "html": (lambda: to_html(src), from_html),
        "docx": (lambda: to_docx(src), from_docx),
        "po": (lambda: to_po(src), lambda out: from_po(out, src)),
        # not a format: plain lines with the search recording its attention, as tagged formats have it
        "recorded": (lambda: None, lambda out: out),
    }
    formats = {name: formats[name] for name in args.formats}
    seconds: dict[str, list[float]] = {name: [] for name in formats}
    plain_seconds: dict[str, list[float]] = {name: [] for name in formats}  # the plain run just before each
    bleu: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, (write, read) in formats.items():
            started = time.perf_counter()
            plain = [nbest[0].text for nbest in translator.translate_nbest(src, config)]
            plain_seconds[name].append(time.perf_counter() - started)
            bleu["plain lines"] = corpus_bleu(plain, [ref]).score
            data = write()
            started = time.perf_counter()
            if name == "recorded":
                out = [nbest[0].text for nbest in translator.translate_nbest(src, replace(config, source_attention=True))]
            else:
                out = translate_document(data, name, translator, checked, f"newstest2014.{name}")
            seconds[name].append(time.perf_counter() - started)
            hyp = read(out)
            assert len(hyp) == len(src), (name, len(hyp))
            bleu[name] = corpus_bleu(hyp, [ref]).score
    every_plain = [t for times in plain_seconds.values() for t in times]
    print(json.dumps({"format": "plain lines", "bleu": round(bleu["plain lines"], 2), "seconds": [round(t, 1) for t in every_plain]}))
    for name, times in seconds.items():
        ratios = sorted(t / p for t, p in zip(times, plain_seconds[name]))
        row = {"format": name, "bleu": round(bleu[name], 2), "bleu_minus_plain": round(bleu[name] - bleu["plain lines"], 2)}
        row |= {"seconds": [round(t, 1) for t in times], "time_ratio_to_plain": round(statistics.median(ratios), 3)}
        row |= {"ratios": [round(r, 3) for r in ratios]}
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

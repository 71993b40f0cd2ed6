"""Back-translate English text into synthetic German sources, in shards that survive a stop.

    python scripts/backtranslate.py --model EN_DE_BUNDLE --mono english.txt [more.en.gz ...] --out runs/bt \\
        [--limit 300000] [--shard-lines 10000] [--search sample|greedy|beam] [--seed 1] [--workers 2] [--device cpu|cuda]
    python scripts/backtranslate.py --out runs/bt --collect

The other direction, forward translation (German text through a German→English model, whose
English becomes the target of real German sources), is the same with `--src-lang de --tgt-lang
en`: the shards are then `.de` (the input) and `.en`, and the English check below applies to the
model's English.

--mono takes your own text, plain or gzipped, one sentence a line. All its sentences
are put in one seeded random order (so the first N are a fair sample of every file, whatever
--limit is), cut into shards of --shard-lines, and each shard is translated by the
bundle of --model with `Translator`, the path of `xformer translate`, one sentence per line (no
sentence splitting). A finished shard is written atomically (`shard-NNNNN.en` and `.de`, the
translation last), so the same command after a stop continues with the first shard that has no
translation, and a larger --limit later only adds shards (--limit
rounds up to whole shards).

`--search sample` (the default) draws each translation from the model, seeded per sentence
(Edunov et al. 2018), from the whole distribution at temperature 1 unless --topk or
--temperature say otherwise; `greedy` and `beam` (beam 5) search instead. `--collect` then
writes `bt.en.gz` and `bt.de.gz` from the finished shards, in order, without the pairs whose
English is not English (`looks_english`): a corpus to list in a recipe (back-translated sources
with `tag = true`).
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import re
import sys
import time
from pathlib import Path

POLISH = re.compile("[ąęłśżźćńĄĘŁŚŻŹĆŃ]")


def looks_english(line: str) -> bool:
    """False for lines in other languages: Polish, told by Polish letters (news feeds that claim
    English can be partly Polish), and other scripts (over a tenth of the letters outside ASCII).
    They stay in the shards, so that the seeded order is kept, and are left out where the shards
    become a corpus."""
    if POLISH.search(line):
        return False
    letters = [c for c in line if c.isalpha()]
    return not letters or sum(not c.isascii() for c in letters) <= 0.1 * len(letters)


def read_mono(paths: list[Path]) -> list[str]:
    """Every non-empty line of the (gzipped or plain) files, in file order."""
    lines: list[str] = []
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            lines.extend(line.strip() for line in f if line.strip())
    return lines


def write_atomic(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def collect(out: Path, src_lang: str = "en", tgt_lang: str = "de") -> None:
    """bt.{src,tgt}.gz from every finished shard, in shard order, pairs whose English side looks
    English only (gzip without name or mtime)."""
    shards = sorted(out.glob(f"shard-*.{tgt_lang}"))
    kept = finished_pairs(shards, (src_lang, tgt_lang))
    write_pairs(kept, {lang: out / f"bt.{lang}.gz" for lang in (src_lang, tgt_lang)})
    print(f"{out}/bt.{{{src_lang},{tgt_lang}}}.gz: {len(kept):,} pairs from {len(shards)} shards")


def write_pairs(pairs: list[dict[str, str]], files: dict[str, Path]) -> None:
    """Each side of `pairs` to its gzip file in `files` ({language: path}), one line a pair,
    without name or mtime in the gzip header."""
    for lang, path in files.items():
        with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", filename="", mtime=0) as f:
            f.write("".join(pair[lang] + "\n" for pair in pairs).encode("utf-8"))


def finished_pairs(shards: list[Path], langs: tuple[str, str] = ("en", "de"), limit: int = 0) -> list[dict[str, str]]:
    """The pairs {language: line} of the given finished shards, in order, whose English side (if
    either is English) looks English; at most `limit` of them (0: all)."""
    pairs: list[dict[str, str]] = []
    for shard in shards:
        sides = [shard.with_suffix(f".{lang}").read_text(encoding="utf-8").splitlines() for lang in langs]
        for pair in (dict(zip(langs, lines)) for lines in zip(*sides)):
            if "en" not in pair or looks_english(pair["en"]):
                pairs.append(pair)
        if limit and len(pairs) >= limit:
            return pairs[:limit]
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="the bundle that translates --src-lang into --tgt-lang")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--mono", type=Path, nargs="+", help="text to translate, one sentence a line (plain or .gz); needed to translate")
    parser.add_argument("--src-lang", default="en", help="the language of --mono, the suffix of its shards (default en)")
    parser.add_argument("--tgt-lang", default="de", help="the language translated into (default de)")
    parser.add_argument(
        "--limit",
        type=int,
        default=0,
        help="translate only the first N sentences of the seeded order, rounded up to whole shards (0 = all)",
    )
    parser.add_argument("--shard-lines", type=int, default=10000)
    parser.add_argument("--search", choices=("sample", "greedy", "beam"), default="sample")
    parser.add_argument("--topk", type=int, default=0, help="with --search sample: draw from the K most probable pieces (0 = all)")
    parser.add_argument("--temperature", type=float, default=1.0, help="with --search sample")
    parser.add_argument("--seed", type=int, default=1, help="seeds the order of the sentences and the sampling")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (on a GPU use --workers 1)")
    parser.add_argument("--batch-tokens", type=int, default=0, help="source pieces per batch (0: the bundle's)")
    parser.add_argument("--collect", action="store_true", help="only write bt.{src,tgt}.gz from the finished shards")
    args = parser.parse_args()
    if args.src_lang == args.tgt_lang:
        parser.error("--src-lang and --tgt-lang must differ")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.collect:
        collect(args.out, args.src_lang, args.tgt_lang)
        return
    if not args.model or not args.mono:
        parser.error("--model and --mono are needed to translate")

    import torch

    from xformer_cli.decoding.translator import Translator

    torch.set_num_threads(args.threads)
    sentences = read_mono(args.mono)
    random.Random(args.seed).shuffle(sentences)
    if args.limit:  # whole shards, so that a later run with another limit finds every shard complete
        sentences = sentences[: -(-args.limit // args.shard_lines) * args.shard_lines]
    options = {
        "sample": {"sample": True, "seed": args.seed, "sample_topk": args.topk, "temperature": args.temperature},
        "greedy": {"beam_size": 1},
        "beam": {"beam_size": 5},
    }[args.search]
    n_shards = (len(sentences) + args.shard_lines - 1) // args.shard_lines
    print(f"{len(sentences):,} sentences in {n_shards} shards of {args.shard_lines:,}; search: {args.search}", flush=True)
    with Translator.load(args.model, device=args.device, workers=args.workers) as translator:
        config = translator.config(split_sentences=False, batch_tokens=args.batch_tokens or None, **options)
        for shard in range(n_shards):
            tgt_path = args.out / f"shard-{shard:05d}.{args.tgt_lang}"
            if tgt_path.exists():
                continue
            source = sentences[shard * args.shard_lines : (shard + 1) * args.shard_lines]
            started = time.perf_counter()
            translations = [nbest[0].text for nbest in translator.translate_nbest(source, config)]
            write_atomic(args.out / f"shard-{shard:05d}.{args.src_lang}", source)
            write_atomic(tgt_path, translations)
            seconds = time.perf_counter() - started
            print(f"shard {shard + 1}/{n_shards}: {len(source):,} sentences in {seconds:.0f} s ({len(source) / seconds:.1f}/s)", flush=True)


if __name__ == "__main__":
    sys.exit(main())

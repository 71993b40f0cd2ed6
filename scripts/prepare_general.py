"""Build the training and validation data of the general-domain default model, de-en-general.

Reads eight German-English corpora and writes one shuffled training corpus plus a mixed
validation set:

    training: general/{europarl,ted,news,chat,wmtsample,subtitles} from --data-dir,
              Tatoeba train (models/corpus/tatoeba/, shipped with xformer),
              Multi30k train (--data-dir/multi30k/)
    valid:    the first --valid-lines lines of Tatoeba valid, Multi30k valid and
              newstest2013 (a WMT dev set, not one of the test sets we report)

Cleaning: every line is stripped and inner whitespace collapsed. `wmtsample` and `subtitles`
are Moses-tokenized (`Haus .`, `Parliament 's`), so they are detokenized with sacremoses'
MosesDetokenizer (de for German, en for English). `subtitles` is partly lowercased at the
start of the line, so its first letter is upper-cased on both sides (`--no-capitalize` keeps
it as it is). Pairs with an empty side after cleaning are dropped.

Output in --out:

    clean/<corpus>.{de,en}.gz          each corpus after cleaning, once, in its own order
    train.{de,en}.gz                   all corpora, each pair once, shuffled together
    valid.{de,en}                      the mixed validation set (tatoeba, multi30k, newstest2013)
    valid-<part>.{de,en}               each part of it alone, to score one domain at a time
    stats.json                         pair counts, seed and the options used

Gzip output has no name and mtime 0, so the same options rebuild identical files.

Needs sacremoses (`pip install sacremoses`); everything else is the standard library.

    python scripts/prepare_general.py --out runs/general-data

To weight the corpora, list clean/<corpus>.{de,en}.gz as [[train.corpora]] of a recipe, each
with its `weight`: the trainer samples them (README, "Several corpora").
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

GENERAL = ("europarl", "ted", "news", "chat", "wmtsample", "subtitles")
CORPORA = (*GENERAL, "tatoeba", "multi30k")
TOKENIZED = ("wmtsample", "subtitles")  # Moses-tokenized upstream
CAPITALIZE = ("subtitles",)  # partly lowercased upstream
VALID_PARTS = ("tatoeba", "multi30k", "newstest2013")

_SPACES = re.compile(r"\s+")


def open_text(path: Path) -> list[str]:
    """The lines of a plain or gzipped UTF-8 file, without line ends."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    text = raw.decode("utf-8")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def find(folder: Path, stem: str) -> Path:
    """`stem` in `folder`, plain or with .gz."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise SystemExit(f"error: {folder / stem}(.gz) not found")


def read_pair(folder: Path, stem: str) -> tuple[list[str], list[str]]:
    de, en = open_text(find(folder, stem + ".de")), open_text(find(folder, stem + ".en"))
    if len(de) != len(en):
        raise SystemExit(f"error: {folder / stem}: {len(de)} German lines but {len(en)} English")
    return de, en


def source_of(corpus: str, data_dir: Path, tatoeba_dir: Path) -> tuple[Path, str]:
    if corpus in GENERAL:
        return data_dir / "general", corpus
    if corpus == "tatoeba":
        return tatoeba_dir, "train"
    return data_dir / "multi30k", "train"


def squeeze(line: str) -> str:
    return _SPACES.sub(" ", line).strip()


def capitalize_first(line: str) -> str:
    """Upper-case the first letter if it is lower-case and only non-letters come before it."""
    for i, char in enumerate(line):
        if char.isalpha():
            if char.islower():
                return line[:i] + char.upper() + line[i + 1 :]
            return line
    return line


class Cleaner:
    def __init__(self) -> None:
        try:
            from sacremoses import MosesDetokenizer
        except ImportError:
            raise SystemExit("error: this script needs sacremoses: pip install sacremoses") from None
        self.detok = {lang: MosesDetokenizer(lang=lang) for lang in ("de", "en")}

    def __call__(self, line: str, lang: str, corpus: str, capitalize: bool) -> str:
        line = squeeze(line)
        if corpus in TOKENIZED and line:
            line = squeeze(self.detok[lang].detokenize(line.split(" ")))
        if capitalize and corpus in CAPITALIZE:
            line = capitalize_first(line)
        return line


def write_gz(path: Path, lines: list[str]) -> None:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as f:
        f.write("".join(line + "\n" for line in lines).encode("utf-8"))
    path.write_bytes(buffer.getvalue())


def write_plain(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="folder with general/, multi30k/, wmt/ (default: ../shared/data next to the repo)",
    )
    parser.add_argument(
        "--tatoeba-dir",
        type=Path,
        default=REPO / "models" / "corpus" / "tatoeba",
        help="folder with the Tatoeba train/valid splits (default: the shipped corpus)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder, e.g. runs/general-data")
    parser.add_argument("--seed", type=int, default=1, help="shuffle seed (default 1)")
    parser.add_argument("--valid-lines", type=int, default=500, help="lines taken from the start of each validation part (default 500)")
    parser.add_argument("--no-capitalize", action="store_true", help="do not upper-case the first letter of subtitles lines")
    args = parser.parse_args(argv)

    cleaner = Cleaner()
    out: Path = args.out
    (out / "clean").mkdir(parents=True, exist_ok=True)

    stats: dict = {"data_dir": str(args.data_dir), "seed": args.seed, "capitalize_subtitles": not args.no_capitalize, "corpora": {}}
    train: list[tuple[str, str]] = []
    print(f"{'corpus':<10} {'read':>8} {'dropped':>8} {'kept':>8}")
    for corpus in CORPORA:
        folder, stem = source_of(corpus, args.data_dir, args.tatoeba_dir)
        de, en = read_pair(folder, stem)
        pairs = []
        changed = 0
        for d, e in zip(de, en):
            cd = cleaner(d, "de", corpus, not args.no_capitalize)
            ce = cleaner(e, "en", corpus, not args.no_capitalize)
            changed += (cd != d) or (ce != e)
            if cd and ce:
                pairs.append((cd, ce))
        write_gz(out / "clean" / f"{corpus}.de.gz", [p[0] for p in pairs])
        write_gz(out / "clean" / f"{corpus}.en.gz", [p[1] for p in pairs])
        train.extend(pairs)
        stats["corpora"][corpus] = {
            "read": len(de),
            "kept": len(pairs),
            "dropped_empty": len(de) - len(pairs),
            "changed_by_cleaning": changed,
        }
        print(f"{corpus:<10} {len(de):>8} {len(de) - len(pairs):>8} {len(pairs):>8}   ({changed} pairs changed by cleaning)")

    random.Random(args.seed).shuffle(train)
    write_gz(out / "train.de.gz", [p[0] for p in train])
    write_gz(out / "train.en.gz", [p[1] for p in train])
    stats["train_pairs"] = len(train)
    print(f"{'total':<10} {'':>8} {'':>8} {len(train):>8}")

    valid_sources = {
        "tatoeba": (args.tatoeba_dir, "valid"),
        "multi30k": (args.data_dir / "multi30k", "valid"),
        "newstest2013": (args.data_dir / "wmt", "newstest2013"),
    }
    mixed_de: list[str] = []
    mixed_en: list[str] = []
    train_de = {p[0] for p in train}
    train_pairs = set(train)
    stats["valid"] = {}
    for part in VALID_PARTS:
        de, en = read_pair(*valid_sources[part])
        de, en = [squeeze(x) for x in de[: args.valid_lines]], [squeeze(x) for x in en[: args.valid_lines]]
        if len(de) < args.valid_lines:
            print(f"warning: {part} valid has only {len(de)} lines", file=sys.stderr)
        write_plain(out / f"valid-{part}.de", de)
        write_plain(out / f"valid-{part}.en", en)
        mixed_de += de
        mixed_en += en
        in_train_src = sum(d in train_de for d in de)
        in_train_pair = sum((d, e) in train_pairs for d, e in zip(de, en))
        stats["valid"][part] = {"lines": len(de), "german_line_in_train": in_train_src, "pair_in_train": in_train_pair}
        print(f"valid {part:<13} {len(de):>5} lines ({in_train_src} German lines and {in_train_pair} pairs also in train)")
    write_plain(out / "valid.de", mixed_de)
    write_plain(out / "valid.en", mixed_en)
    stats["valid_lines"] = len(mixed_de)
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    print(
        f"wrote {out}/train.{{de,en}}.gz ({len(train)} pairs), valid.{{de,en}} ({len(mixed_de)} lines), "
        "valid-<part>.{de,en}, clean/, stats.json"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

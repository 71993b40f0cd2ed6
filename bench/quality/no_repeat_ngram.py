"""The repetition guard (`--no-repeat-ngram N`) on the development sets: BLEU and repeated words.

    python bench/quality/no_repeat_ngram.py [--model models/de-en-general] [--data-dir ../shared/data] [--sizes 0 3 4]

For each size N (0: off), translates newstest2013, Multi30k valid and Tatoeba valid with the
model's default search (beam 5), and prints sacreBLEU's BLEU of each and how many output lines hold
a word repeated right after itself ("federal federal"), next to the references' count. Test sets
stay untouched: this decides the default.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from xformer_cli.decoding.translator import Translator
from xformer_cli.evaluation.metrics import corpus_bleu
from xformer_cli.evaluation.test_sets import find_testset
from xformer_cli.shipped import default_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import DATA_DIR, cpu_name, repeated_word_lines  # noqa: E402

DEV_SETS = ("wmt13", "multi30k/valid", "tatoeba/valid")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 3, 4], help="n-gram sizes to try (0: off)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = Translator.load(args.model, device="cpu")
    sets = {}
    for name in DEV_SETS:
        source, reference = find_testset(name, args.data_dir)
        sets[name] = [path.read_text(encoding="utf-8").splitlines() for path in (source, reference)]
        print(
            json.dumps({"test_set": name, "lines": len(sets[name][0]), "reference_repeated_word_lines": repeated_word_lines(sets[name][1])})
        )
    for size in args.sizes:
        config = translator.config(no_repeat_ngram=size)
        for name, (src, ref) in sets.items():
            started = time.perf_counter()
            hyp = [nbest[0].text for nbest in translator.translate_nbest(src, config)]
            row = {
                "no_repeat_ngram": size,
                "test_set": name,
                "bleu": round(corpus_bleu(hyp, [ref]).score, 2),
                "repeated_word_lines": repeated_word_lines(hyp),
                "seconds": round(time.perf_counter() - started, 1),
            }
            print(json.dumps(row), flush=True)
    print(json.dumps({"model": args.model, "cpu": cpu_name(), "threads": args.threads}))


if __name__ == "__main__":
    main()

"""Translation speed on Multi30k test2016 (1,000 sentences), without start-up, plus cold start.

    python bench/speed/translate.py [--model models/de-en-general] [--data-dir ../shared/data] [--threads 2] [--workers 1 2] [--int8]

Prints sentences/s for greedy with batches of 30 sentences, beam 5 with batches of 30, and
beam 5 one sentence at a time (the three decoding columns of bench/columns.py), with one worker
on all threads and with two workers of threads/2 each (keys ending in `_workers2`: two batches
translated at once, in two worker processes; for `beam5_batch1`, two single sentences at once). Sentences are
sorted by length before batching, as `xformer translate --batch-size 30` does (and CTranslate2
with max_batch_size). Also prints the BLEU of each
run as a check that speed did not cost quality, and the whole-process time of
`echo "Guten Tag" | xformer translate -b 5` next to `python -c "import torch"` (ten runs of
each in turn: medians and the median ratio of the pairs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from xformer_cli.decoding.translator import Translator
from xformer_cli.evaluation.metrics import corpus_bleu
from xformer_cli.shipped import default_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import COLUMNS, DATA_DIR, test2016  # noqa: E402


def timed_translate(translator: Translator, sentences: list[str], beam: int, batch_sentences: int) -> tuple[float, list[str]]:
    """Sentences per second through the product path: sorted by length, at most `batch_sentences` a batch."""
    config = replace(translator.config(beam_size=beam), batch_size=batch_sentences, batch_tokens=10**9)
    started = time.perf_counter()
    out = [n[0].text for n in translator.translate_nbest(sentences, config)]
    return len(sentences) / (time.perf_counter() - started), out


def cold_start(translate: str, baseline: str, runs: int = 10) -> dict[str, float]:
    """Whole-process seconds of two shell commands run in turn (A B A B ...): the median of each,
    and the median ratio of the pairs, which holds when the machine's speed drifts."""
    times: dict[str, list[float]] = {translate: [], baseline: []}
    for _ in range(runs + 1):  # the first pair warms the file cache and is not counted
        for command in (translate, baseline):
            started = time.perf_counter()
            subprocess.run(command, shell=True, check=True, capture_output=True)
            times[command].append(time.perf_counter() - started)
    a, b = times[translate][1:], times[baseline][1:]
    return {
        "xformer_translate_beam5": round(statistics.median(a), 3),
        "import_torch": round(statistics.median(b), 3),
        "median_ratio": round(statistics.median(x / y for x, y in zip(a, b)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-cold-start", action="store_true")
    parser.add_argument("--int8", action="store_true", help="also time --quantize int8")
    parser.add_argument("--cold-start-only", action="store_true")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="batches at once (each on threads/workers threads)")
    args = parser.parse_args()
    sentences, refs = test2016(args.data_dir)
    results = {}
    for quantize in () if args.cold_start_only else (None, "int8") if args.int8 else (None,):
        for workers in args.workers:
            torch.set_num_threads(max(1, args.threads // workers))  # as `xformer translate --threads --workers` sets it
            translator = Translator.load(args.model, device="cpu", quantize=quantize, workers=workers)  # as the CLI loads it
            timed_translate(translator, sentences[:60], 5, 30)  # warm-up
            for name, beam, batch in COLUMNS:
                speed, hyps = timed_translate(translator, sentences, beam, batch)
                key = name + ("_int8" if quantize else "") + (f"_workers{workers}" if workers > 1 else "")
                results[key] = {"sentences_per_s": round(speed, 1), "bleu": round(corpus_bleu(hyps, [refs]).score, 2)}
                print(json.dumps({key: results[key]}), file=sys.stderr, flush=True)
            translator.close()  # its worker processes, before the next set-up is timed
    if not args.no_cold_start:
        python = sys.executable
        results["cold_start_s"] = cold_start(
            f'echo "Guten Tag" | {python} -m xformer_cli translate -b 5 -m {args.model}', f'{python} -c "import torch"'
        )
    print(json.dumps({"model": args.model, "threads": args.threads, **results}, indent=1))


if __name__ == "__main__":
    main()

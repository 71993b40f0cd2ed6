"""`xformer translate --engine ctranslate2` against CTranslate2 called directly on the same
converted model, and the own engine beside them: what the wrapper (splitting, spans, batching,
output) costs.

    pip install 'xformer-cli[ctranslate2]'
    python bench/peers/ctranslate2_engine.py --model models/de-en-general [--lines 1000] [--threads 2]
    python bench/peers/ctranslate2_engine.py --model models/de-en-general --testset tatoeba/test --lines 0 --columns beam5_batch30

On Multi30k test2016 (or --testset; --lines 0 for all of it), in the three decoding columns
(greedy batch 30, beam 5 batch 30, beam 5 one sentence at a time; or those of --columns),
float32 and int8, one process: sentences/s and BLEU of CTranslate2 direct (SentencePiece pieces
in, `translate_batch` over all sentences with `max_batch_size`), of xformer's Translator with
engine "ctranslate2" (the same model folder, from the export cache) and of the own engine
(float32 only), with the wrapper's speed as a ratio to the direct call; direct and wrapper timed
in turn three times, the ratio the median of the three pairs'. The direct call gets its pieces
ready-made: the wrapper's time includes tokenizing, splitting, spans and detokenizing.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import ctranslate2
import sacrebleu
import torch

from xformer_cli.decoding.ctranslate2_engine import cache_folder
from xformer_cli.decoding.translator import Translator
from xformer_cli.evaluation.test_sets import find_testset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import COLUMNS, baseline_arguments, cpu_name  # noqa: E402

PAIRS = 3  # direct and wrapper timed in turn this many times; the ratio is the median of the pairs' (the machine drifts)


def timed(run, *args, **kwargs):
    """run(*args, **kwargs) and the seconds it took."""
    started = time.perf_counter()
    out = run(*args, **kwargs)
    return out, time.perf_counter() - started


def best(translator: Translator, sources: list[str], config) -> list[str]:
    return [nbest[0].text for nbest in translator.translate_nbest(sources, config)]


def main() -> None:
    parser = baseline_arguments(__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1000, help="the first N lines of the test set; 0: all")
    parser.add_argument("--testset", default="multi30k/test2016", help="a test set name, as `xformer evaluate -t` takes it")
    parser.add_argument("--columns", nargs="+", default=[name for name, _, _ in COLUMNS], choices=[name for name, _, _ in COLUMNS])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source_path, reference_path = find_testset(args.testset, args.data_dir)
    sources, refs = (path.read_text(encoding="utf-8").splitlines()[: args.lines or None] for path in (source_path, reference_path))
    wrapper = {q: Translator.load(args.model, device="cpu", engine="ctranslate2") for q in ("float32", "int8")}
    wrapper["int8"].quantize("int8")
    own = Translator.load(args.model, device="cpu")
    wrapper["float32"].translate(sources[:5])  # exports into the cache if needed, loads
    folder = str(cache_folder(own.bundle))
    tokenizer = own.tokenizer
    pieces = [tokenizer.pieces(ids) for ids in tokenizer.encode(sources)]
    print(
        json.dumps(
            {"cpu": cpu_name(), "model": args.model, "testset": args.testset, "lines": len(sources), "threads": args.threads}
            | {"ctranslate2": ctranslate2.__version__}
        )
    )
    for quantization in ("float32", "int8"):
        direct = ctranslate2.Translator(
            folder, device="cpu", compute_type="default" if quantization == "float32" else "int8", intra_threads=args.threads
        )
        for name, beam, batch in (column for column in COLUMNS if column[0] in args.columns):
            options = dict(beam_size=beam, max_batch_size=batch, disable_unk=True, min_decoding_length=0, max_decoding_length=256)
            config = wrapper[quantization].config(beam_size=beam, batch_size=batch)
            pairs = []
            for _ in range(PAIRS):  # in turn: direct, wrapper
                raw, direct_s = timed(direct.translate_batch, pieces, **options)
                ours, wrapper_s = timed(best, wrapper[quantization], sources, config)
                pairs.append((direct_s, wrapper_s))
            direct_s, wrapper_s = (statistics.median(p[i] for p in pairs) for i in (0, 1))
            direct_out = tokenizer.decode([tokenizer.piece_ids(r.hypotheses[0]) for r in raw])
            row = {"quantization": quantization, "column": name}
            row |= {
                "direct_sent_s": round(len(sources) / direct_s, 1),
                "direct_bleu": round(sacrebleu.corpus_bleu(direct_out, [refs]).score, 2),
            }
            row |= {"engine_sent_s": round(len(sources) / wrapper_s, 1), "engine_bleu": round(sacrebleu.corpus_bleu(ours, [refs]).score, 2)}
            ratios = sorted(d / w for d, w in pairs)
            row["engine_over_direct"] = round(statistics.median(ratios), 3)
            row["engine_over_direct_min_max"] = [round(ratios[0], 3), round(ratios[-1], 3)]
            if quantization == "float32":
                mine, own_s = timed(best, own, sources, own.config(beam_size=beam, batch_size=batch))
                row |= {"own_sent_s": round(len(sources) / own_s, 1), "own_bleu": round(sacrebleu.corpus_bleu(mine, [refs]).score, 2)}
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

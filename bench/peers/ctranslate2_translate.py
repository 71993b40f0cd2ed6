"""The same model in CTranslate2: a same-machine baseline for bench/speed/translate.py.

    pip install 'xformer-cli[ctranslate2]'
    python bench/peers/ctranslate2_translate.py --model runs/multi30k/bundle [--threads 2] [--inter-threads 1 2] [--data-dir ../shared/data]

Exports the bundle with `xformer export --to ctranslate2` (float32 unless --quantization says
otherwise), then translates Multi30k test2016
in the three decoding columns (greedy with batches of 30, beam 5 with batches of 30, beam 5 one
sentence at a time), sorted by length as CTranslate2 does with max_batch_size, with one worker
on all threads (inter_threads=1) and with two of threads/2 each (keys ending in `_inter2`, to
set against `--workers 2`). Prints sentences/s and BLEU, to set against
`python bench/speed/translate.py --model DIR` run on the same machine.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import ctranslate2
import sacrebleu
import sentencepiece

from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.bundles.ctranslate2_export import export_ctranslate2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import COLUMNS, baseline_arguments, test2016  # noqa: E402


def main() -> None:
    parser = baseline_arguments(__doc__.splitlines()[0])
    parser.add_argument("--inter-threads", type=int, nargs="+", default=[1, 2], help="batches at once (each on threads/inter threads)")
    parser.add_argument("--quantization", default="float32", help="as `xformer export --quantization` (int8: int8 weights and compute)")
    args = parser.parse_args()
    bundle = Path(args.model)
    sources, refs = test2016(args.data_dir)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(bundle / "spm.model"))
    tokens = [sp.encode(s, out_type=str) for s in sources]
    with tempfile.TemporaryDirectory() as folder:
        loaded = load_bundle(bundle)
        tmp = str(export_ctranslate2(loaded, Path(folder) / "ct2", args.quantization))
        results = {"model": str(bundle), "ctranslate2": ctranslate2.__version__, "threads": args.threads, "quantization": args.quantization}
        options = {
            "length_penalty": 1.0,
            "disable_unk": True,
            "min_decoding_length": 0,
            "max_decoding_length": loaded.model.config.max_pieces,
        }
        for inter in args.inter_threads:
            threads = {"inter_threads": inter, "intra_threads": max(1, args.threads // inter)}
            translator = ctranslate2.Translator(tmp, device="cpu", compute_type=args.quantization, **threads)
            translator.translate_batch(tokens[:60], max_batch_size=30, beam_size=5, **options)  # warm-up
            for name, beam, batch in COLUMNS:
                started = time.perf_counter()
                out = translator.translate_batch(tokens, max_batch_size=batch, beam_size=beam, **options)
                speed = len(tokens) / (time.perf_counter() - started)
                hyps = [sp.decode(r.hypotheses[0]) for r in out]
                key = name + (f"_inter{inter}" if inter > 1 else "")
                results[key] = {"sentences_per_s": round(speed, 1), "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)}
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

"""What N cores give to N processes: the same decoding work on one thread, alone and then in two
independent processes at once (forked, no communication). Sentences/s of each.

    python bench/speed/translate_cores.py [--model DIR] [--data-dir ../shared/data]

The ceiling for `--workers 2`: if two processes each run as fast as one alone, two workers can
reach 2x one worker on one thread; on a machine whose two "cores" share one physical core they
cannot.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from xformer_cli.decoding.translator import Translator
from xformer_cli.shipped import default_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import COLUMNS, DATA_DIR, test2016  # noqa: E402


def speed(translator: Translator, sentences: list[str], beam: int, batch_sentences: int) -> float:
    config = replace(translator.config(beam_size=beam), batch_size=batch_sentences, batch_tokens=10**9)
    started = time.perf_counter()
    translator.translate_nbest(sentences, config)
    return len(sentences) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--sentences", type=int, default=200, help="the first N of test2016 (beam 5, batch 1 uses N/4)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sentences = test2016(args.data_dir)[0][: args.sentences]
    translator = Translator.load(args.model, device="cpu")
    speed(translator, sentences[:30], 5, 30)  # warm-up
    for name, beam, batch in COLUMNS:
        work = sentences if batch > 1 else sentences[: len(sentences) // 4]
        alone = speed(translator, work, beam, batch)
        child = os.fork()
        together = speed(translator, work, beam, batch)
        if child == 0:
            print(f"{name}: together, the other process {together:.1f}", flush=True)
            os._exit(0)
        os.waitpid(child, 0)
        print(f"{name}: alone {alone:.1f} sentences/s; together, this process {together:.1f}", flush=True)


if __name__ == "__main__":
    main()

"""A lexical shortlist (`decoding/shortlist.py`): what it gains at beam 5 one sentence at a time,
and what it costs in BLEU.

    python bench/speed/shortlist.py --model BUNDLE --shortlists a.safetensors b.safetensors [--parts bleu speed]

Each shortlist is made by `scripts/build_shortlist.py --out`. BLEU (default decoding, sacreBLEU)
on development sets for: every piece (no shortlist); each shortlist as translation uses it (log-
probabilities renormalized over the candidates); and, to tell a missing piece from the
renormalization, each shortlist with the model's own log-probabilities over the whole vocabulary
(pieces outside the candidates -inf, not renormalized: it needs the full projection, so it is no
faster). Also the candidates per sentence (mean, one sentence alone). Speed: the first
`--sentences` of Multi30k test2016, beam 5, one sentence at a time, every piece and each
shortlist in turn for `--rounds` rounds; the ratio is the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from xformer_cli.bundles.shortlist import load_shortlist
from xformer_cli.decoding import translator as translation
from xformer_cli.decoding.shortlist import Restriction, restrict
from xformer_cli.decoding.translator import Translator
from xformer_cli.evaluation.metrics import corpus_bleu
from xformer_cli.evaluation.test_sets import find_testset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import DATA_DIR, cpu_name, test2016  # noqa: E402


@dataclass(frozen=True)
class NotRenormalized(Restriction):
    """The model's log-probabilities over every piece (`full`: the whole projection's weight and
    bias), those outside the candidates set to -inf."""

    full: tuple[torch.Tensor, torch.Tensor | None] = (torch.empty(0), None)

    def log_probs(self, hidden: torch.Tensor, sentences: torch.Tensor) -> torch.Tensor:
        lp = F.linear(hidden, *self.full).float().log_softmax(dim=-1)  # (R, V)
        outside = torch.ones_like(lp, dtype=torch.bool)
        outside[:, self.columns] = False if self.allowed is None else ~self.allowed[sentences]
        return lp.masked_fill(outside, float("-inf"))


def translate(translator: Translator, sources: list[str], shortlist, renormalized: bool = True) -> list[str]:
    translator.bundle.shortlist = shortlist
    if shortlist is not None and not renormalized:

        def plain(*args):
            return NotRenormalized(**vars(restrict(*args)), full=translator.output)

        translation.restrict = plain  # what the translator's search_batch calls
        try:
            return translator.translate(sources, shortlist=True)
        finally:
            translation.restrict = restrict
    return translator.translate(sources, shortlist=shortlist is not None)


def mean_candidates(translator: Translator, shortlist, sources: list[str]) -> float:
    c = translator.model.config
    sizes = []
    for ids in translator.tokenizer.encode(sources):
        src = torch.tensor([ids + [c.eos_id]])
        sizes.append(restrict(shortlist, src, *translator.output, c.pad_id, c.eos_id).columns.numel())
    return round(statistics.mean(sizes), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--shortlists", nargs="+", required=True)
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--sets", nargs="+", default=["tatoeba/valid", "multi30k/valid", "wmt13"])
    parser.add_argument("--parts", nargs="+", default=["bleu", "speed"], choices=["bleu", "speed"])
    parser.add_argument("--sentences", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    translator = Translator.load(args.model, device="cpu")
    vocab = translator.model.config.vocab_size
    lists = {path: load_shortlist(Path(path), vocab, vocab) for path in args.shortlists}
    print(json.dumps({"cpu": cpu_name(), "model": args.model, "shortlists": args.shortlists}))
    if "bleu" in args.parts:
        for name in args.sets:
            source, reference = (path.read_text(encoding="utf-8").splitlines() for path in find_testset(name, args.data_dir))
            full = translate(translator, source, None)
            row = {"set": name, "every_piece": round(corpus_bleu(full, [reference]).score, 2)}
            for path, shortlist in lists.items():
                short = translate(translator, source, shortlist)
                row[path] = {
                    "bleu": round(corpus_bleu(short, [reference]).score, 2),
                    "not_renormalized": round(corpus_bleu(translate(translator, source, shortlist, False), [reference]).score, 2),
                    "lines_changed": sum(a != b for a, b in zip(full, short)),
                    "candidates": mean_candidates(translator, shortlist, source),
                }
            print(json.dumps(row), flush=True)
    if "speed" in args.parts:
        sources = test2016(args.data_dir)[0][: args.sentences]
        speeds: dict[str, list[float]] = {"every_piece": []} | {path: [] for path in lists}
        for _ in range(args.rounds):
            for name in speeds:
                translator.bundle.shortlist = lists.get(name)
                config = replace(translator.config(beam_size=5, shortlist=name in lists), batch_size=1, batch_tokens=10**9)
                started = time.perf_counter()
                translator.translate_nbest(sources, config)
                speeds[name].append(len(sources) / (time.perf_counter() - started))
        for name, runs in speeds.items():
            ratio = statistics.median(a / b for a, b in zip(runs, speeds["every_piece"]))
            print(json.dumps({"beam5_batch1": name, "sentences_per_s": [round(s, 2) for s in runs], "ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()

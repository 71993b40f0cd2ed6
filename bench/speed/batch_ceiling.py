"""What batching across requests can reach at best: the CLI's length-sorted batches against the
batches a server can form from the sentences in flight.

    python bench/speed/batch_ceiling.py [--model models/de-en-general] [--in-flight 64] [--workers 2] [--rounds 3]

`bench/serve_load.py` keeps `--in-flight` (64) one-sentence requests in flight and compares the
server with `xformer translate --workers 2`, which sorts all 1,000 sentences of Multi30k
test2016 by length before cutting them into batches. A server cannot sort what has not arrived:
the best it can do is to sort the sentences in flight, `--in-flight` at a time in the order they
come, and cut them into one batch per worker (`all_in_flight`). With its workers busy in turn, a
worker that finishes gets the sentences of the clients it has just answered, in-flight / workers
of them, as one batch (`as_they_come`). This script times these in one process on one thread,
the same model and beam search, no HTTP, no processes, no waiting (so nothing but the batches
differs): the CLI's search (`Translator.translate_nbest` of all sentences) and the same
sentences in groups in data order (the order the load's clients send them), each group sorted
and cut. `ratio_to_cli` is the CLI's milliseconds a sentence over the plan's, the median of
`--rounds` paired rounds (the plans alternate): the throughput a server batching that way would
reach against the CLI, before any cost of its own; `ceiling` is that of `all_in_flight`. Also
printed: the steps and rows each plan's searches ran (a step costs nearly as much for a few rows
as for many, for the weights are read either way, and a batch of mixed lengths runs as many steps
as its longest sentence needs), and what reading the weights costs: microseconds a call of the
decoder's linear layers on 5 rows (a beam), going through all of them in turn as a step does
(`cycling`) and calling one of them again and again, its weight in cache (`one_in_cache`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from xformer_cli.decoding import search
from xformer_cli.decoding.translator import Translator
from xformer_cli.shipped import default_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for columns.py
from columns import DATA_DIR, cpu_name, test2016  # noqa: E402


def in_flight_batches(sentences: list[str], group: int, workers: int) -> list[list[str]]:
    """`sentences` in groups of `group` in their order, each sorted by length and cut into
    `workers` batches."""
    batches = []
    for start in range(0, len(sentences), group):
        ordered = sorted(sentences[start : start + group], key=len)
        size = -(-len(ordered) // workers)  # ceil
        batches += [ordered[i : i + size] for i in range(0, len(ordered), size)]
    return batches


class StepCounter:
    """Counts the decoding steps and the decoder rows they ran (by wrapping the search's step)."""

    def __init__(self) -> None:
        self.steps = self.rows = 0
        self._step = search._step_log_probs

    def __enter__(self) -> "StepCounter":
        def counted(model, project, tokens, *args, **kwargs):
            self.steps += 1
            self.rows += tokens.size(0)
            return self._step(model, project, tokens, *args, **kwargs)

        search._step_log_probs = counted
        return self

    def __exit__(self, *exc_info) -> None:
        search._step_log_probs = self._step


def timed(translator: Translator, batches: list[list[str]]) -> tuple[float, int, int]:
    """(seconds, steps, rows) of translating each batch with one call."""
    config = translator.config()
    with StepCounter() as counter:
        started = time.perf_counter()
        for batch in batches:
            translator.translate_nbest(batch, config)
        seconds = time.perf_counter() - started
    return seconds, counter.steps, counter.rows


def linear_cost(translator: Translator, rows: int = 5, repeats: int = 200) -> dict[str, float]:
    """Microseconds a call of the decoder's linear layers on `rows` rows: all in turn, and the
    first one alone (its weight in cache); the megabytes of their weights."""
    layers = [m for m in translator.model.decoder.modules() if isinstance(m, nn.Linear)]
    inputs = {n: torch.randn(rows, n) for n in {m.in_features for m in layers}}

    def per_call(chosen: list[nn.Linear]) -> float:
        with torch.inference_mode():
            for _ in range(2):  # the second pass is timed
                started = time.perf_counter()
                for _ in range(repeats):
                    for m in chosen:
                        F.linear(inputs[m.in_features], m.weight, m.bias)
                seconds = time.perf_counter() - started
        return round(seconds / repeats / len(chosen) * 1e6, 1)

    megabytes = sum(m.weight.numel() * m.weight.element_size() for m in layers) / 1e6
    cycling, in_cache = per_call(layers), per_call(layers[:1] * len(layers))
    return {"decoder_weights_mb": round(megabytes, 1), "cycling_us": cycling, "one_in_cache_us": in_cache}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument("--in-flight", type=int, default=64, help="sentences in flight: the load's clients")
    parser.add_argument("--workers", type=int, default=2, help="batches each group is cut into")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one worker's share of the cores
    translator = Translator.load(args.model, device="cpu")
    sentences = test2016(args.data_dir)[0]
    plans = {
        "cli": [sentences],
        "all_in_flight": in_flight_batches(sentences, args.in_flight, args.workers),
        "as_they_come": in_flight_batches(sentences, args.in_flight // args.workers, 1),
    }
    translator.translate_nbest(sentences[:64], translator.config())  # warm up
    found: dict[str, list[tuple[float, int, int]]] = {name: [] for name in plans}
    for _ in range(args.rounds):
        for name, batches in plans.items():
            found[name].append(timed(translator, batches))
    n = len(sentences)
    row = {"cpu": cpu_name(), "model": str(translator.bundle.path), "sentences": n, "rounds": args.rounds}
    for name, runs in found.items():
        ms = [seconds / n * 1000 for seconds, _, _ in runs]
        row[name] = {"ms_per_sentence": round(statistics.median(ms), 2), "steps": runs[0][1], "rows": runs[0][2]}
        if name != "cli":
            ratios = [cli[0] / own[0] for cli, own in zip(found["cli"], runs)]  # paired: the same round
            row[name] |= {"ratio_to_cli": round(statistics.median(ratios), 3), "ratios_by_round": [round(r, 3) for r in ratios]}
    row["ceiling"] = row["all_in_flight"]["ratio_to_cli"]
    row["linear_5_rows"] = linear_cost(translator)
    for name in [*plans, "linear_5_rows"]:
        print(f"{name:14} {json.dumps(row[name])}")
    print(json.dumps(row))


if __name__ == "__main__":
    main()

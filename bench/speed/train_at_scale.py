"""Training at scale on 2 cores: encoding speed, cache size, memory, cold start and throughput
with a 5-million-pair corpus, against the same run on Multi30k.

    python bench/speed/train_at_scale.py [--data-dir ../shared/data] [--work runs/scale] [--pairs 5000000] [--steps 200]

1. Builds a corpus of --pairs pairs deterministically from every real pair in --data-dir
   (Tatoeba, Multi30k and the general/ corpora, about 267,000): repeat r is the pairs in an order
   shuffled with seed r, and from the second repeat on every digit is shifted by r and two
   neighbouring words swapped on each side, so no repeat duplicates another. Written once as
   gzip (level 1) into --work and reused.
2. Trains the `small` preset (2,048-token batches, 2 threads, the shipped 8k SentencePiece model,
   so no tokenizer is trained) in a subprocess, three times:
   cold  - an empty corpus cache, one update: encoding time and pairs/s, cache size on disk;
   warm  - a fresh run folder on the now warm cache, --steps updates: seconds from start to the
           first update, peak RSS (VmHWM) at update 1 and at the last (with the anonymous and
           file-mapped parts of the RSS at that moment), target tokens/s;
   multi30k - the same run on Multi30k (29,000 pairs): its peak RSS and tokens/s to compare.
Then times the data path alone, in this process on the warm cache: opening the data, making an
epoch's batches, and the tensors of one update (2,048-token batches, and 25,000-token ones as
on a GPU). Prints one JSON object. Needs about 1 GB of disk
in --work for 5M pairs (a 322 MB corpus, a 435 MB cache). On 2 idle cores it took 4-5 minutes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from xformer_cli.text.files import read_parallel

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    "tatoeba/train.{}.gz",
    "multi30k/train.{}.gz",
    "general/europarl.{}.gz",
    "general/news.{}.gz",
    "general/ted.{}.gz",
    "general/wmtsample.{}.gz",
    "general/chat.{}",
    "general/subtitles.{}",
]
SHIFT = [str.maketrans("0123456789", "".join(str((d + r) % 10) for d in range(10))) for r in range(10)]


def real_pairs(data: Path) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for pattern in SOURCES:
        src, tgt = read_parallel(data / pattern.format("de"), data / pattern.format("en"))
        pairs += [(s, t) for s, t in zip(src, tgt) if s and t]
    return pairs


def vary(text: str, r: int, rng: random.Random) -> str:
    """Digits shifted by r, two neighbouring words swapped (where there are two)."""
    words = text.translate(SHIFT[r % 10]).split(" ")
    if len(words) > 1:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    return " ".join(words)


def build_corpus(data: Path, work: Path, n_pairs: int) -> tuple[Path, Path]:
    """The benchmark corpus (made once; a stamp file says it is complete)."""
    src, tgt, stamp = work / "scale.de.gz", work / "scale.en.gz", work / "scale.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("pairs") == n_pairs and src.exists() and tgt.exists():
        return src, tgt
    base = real_pairs(data)
    started = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    with (
        open(src, "wb") as raw_src,
        open(tgt, "wb") as raw_tgt,
        gzip.GzipFile("", "wb", 1, raw_src, mtime=0) as out_src,
        gzip.GzipFile("", "wb", 1, raw_tgt, mtime=0) as out_tgt,
    ):
        written, r = 0, 0
        while written < n_pairs:
            rng = random.Random(r)
            order = list(range(len(base)))
            rng.shuffle(order)
            take = order[: n_pairs - written]
            pairs = [base[i] for i in take] if r == 0 else [(vary(base[i][0], r, rng), vary(base[i][1], r, rng)) for i in take]
            out_src.write(("\n".join(s for s, _ in pairs) + "\n").encode())
            out_tgt.write(("\n".join(t for _, t in pairs) + "\n").encode())
            written, r = written + len(pairs), r + 1
    stamp.write_text(
        json.dumps({"pairs": n_pairs, "base_pairs": len(base), "repeats": r, "seconds": round(time.perf_counter() - started, 1)})
    )
    return src, tgt


def write_recipe(path: Path, src: Path, tgt: Path, steps: int, threads: int) -> Path:
    path.write_text(
        f'preset = "small"\n[model]\nvocab_size = 8000\nnorm_position = "pre"\n'
        f'[train]\nsrc = "{src}"\ntgt = "{tgt}"\nspm_model = "{ROOT / "models" / "de-en-general" / "spm.model"}"\n'
        f"max_steps = {steps}\nbatch_tokens = 2048\nthreads = {threads}\nvalid_every = 0\nsave_every = 1000000\nlog_every = 1\n",
        encoding="utf-8",
    )
    return path


def status_kib(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def train(recipe: Path, out: Path, cache: Path, steps: int, log: Path) -> dict:
    """Run `xformer train` and watch it: seconds to update 1, peak RSS at update 1 and at `steps`."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "XFORMER_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    metrics = out / "metrics.jsonl"
    started = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "xformer_cli", "train", "--config", str(recipe), "--out", str(out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        seen: dict = {}
        while proc.poll() is None:
            steps_done = len(metrics.read_text().splitlines()) if metrics.exists() else 0
            for at, name in ((1, "update_1"), (steps, "last_update")):
                if steps_done >= at and f"peak_rss_gib_{name}" not in seen:
                    seen.setdefault("first_update_s", round(time.perf_counter() - started, 1))
                    seen[f"peak_rss_gib_{name}"] = round(status_kib(proc.pid, "VmHWM") / 2**20, 3)
                    # Now: anonymous memory, and mapped file pages (the corpus cache among them:
                    # clean page cache the kernel can take back, which VmHWM counts all the same).
                    seen[f"rss_anon_gib_{name}"] = round(status_kib(proc.pid, "RssAnon") / 2**20, 3)
                    seen[f"rss_file_gib_{name}"] = round(status_kib(proc.pid, "RssFile") / 2**20, 3)
            time.sleep(0.02)
    if proc.returncode:
        raise SystemExit(f"training failed, see {log}:\n" + log.read_text()[-2000:])
    seen["total_s"] = round(time.perf_counter() - started, 1)
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in records if r["step"] > min(20, steps // 4)]  # after warm-up
    seen["tokens_per_s_median"] = statistics.median(speeds) if speeds else None
    return seen


def batch_ms(data, batches, config, count: int) -> float:
    """Milliseconds to make the tensors of a batch, over `count` batches after `count` untimed
    ones (which map the cache pages they read, as the first updates of a run do)."""
    count = max(min(count, len(batches) // 2), 1)
    for k in range(count):
        data.batch(batches[k], config)
    started = time.perf_counter()
    for k in range(count, 2 * count):
        data.batch(batches[k], config)
    return round((time.perf_counter() - started) / count * 1000, 3)


def data_time(recipe: Path, cache: Path, steps: int) -> dict:
    """In this process, on the warm cache: seconds to open the data and to make an epoch's
    batches, and milliseconds to make one update's tensors (what the data costs the loop), with
    the recipe's batches and with 25,000-token ones, the size of a GPU batch."""
    import tempfile

    from xformer_cli.recipe import load_recipe
    from xformer_cli.training.distributed import Distributed
    from xformer_cli.training.run_data import prepare_training_data
    from xformer_cli.training.run_folder import RunFolder

    r = load_recipe(recipe)
    os.environ["XFORMER_CACHE"] = str(cache)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunFolder(Path(tmp), main=True)
        started = time.perf_counter()
        data = prepare_training_data(r.train, run, Distributed(), r.model, lambda _: None)
        opened = time.perf_counter()
        batches = data.epoch_batches(r.train.batch_tokens, r.train.seed, 0, Distributed())
        made = time.perf_counter()
        result = {
            "open_s": round(opened - started, 2),
            "epoch_batches_s": round(made - opened, 2),
            "batches": len(batches),
            "batch_ms": batch_ms(data, batches, r.model, steps),
            "batch_ms_25k_tokens": batch_ms(data, data.epoch_batches(25_000, r.train.seed, 0, Distributed()), r.model, steps),
        }
        run.release()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--work", default=str(ROOT / "runs" / "scale"))
    parser.add_argument("--pairs", type=int, default=5_000_000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    data, work = Path(args.data_dir).resolve(), Path(args.work).resolve()  # the recipes name absolute paths
    started = time.perf_counter()
    src, tgt = build_corpus(data, work, args.pairs)
    report: dict = {
        "pairs": args.pairs,
        "corpus": json.loads((work / "scale.json").read_text()),
        "corpus_bytes": src.stat().st_size + tgt.stat().st_size,
    }
    cache = work / "cache"
    shutil.rmtree(cache, ignore_errors=True)

    cold = train(write_recipe(work / "scale.toml", src, tgt, 1, args.threads), work / "run-cold", cache, 1, work / "cold.log")
    encoded = re.search(r"encoded \S+: ([\d,]+) pairs in ([\d.]+) s \(([\d,]+) pairs/s\)", (work / "cold.log").read_text())
    entries = [p for p in (cache / "corpora").iterdir() if p.is_dir()]
    report["cold"] = {
        **cold,
        "encode_s": float(encoded.group(2)),
        "encode_pairs_per_s": int(encoded.group(3).replace(",", "")),
        "cache_bytes": sum(f.stat().st_size for e in entries for f in e.iterdir()),
    }

    report["warm"] = train(
        write_recipe(work / "scale.toml", src, tgt, args.steps, args.threads), work / "run-warm", cache, args.steps, work / "warm.log"
    )
    m30k = data / "multi30k"
    report["multi30k"] = train(
        write_recipe(work / "multi30k.toml", m30k / "train.de.gz", m30k / "train.en.gz", args.steps, args.threads),
        work / "run-multi30k",
        cache,
        args.steps,
        work / "multi30k.log",
    )
    warm, small = report["warm"]["tokens_per_s_median"], report["multi30k"]["tokens_per_s_median"]
    report["throughput_ratio"] = round(warm / small, 3) if warm and small else None
    report["data_time"] = {name: data_time(work / f"{name}.toml", cache, args.steps) for name in ("scale", "multi30k")}
    report["bench_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

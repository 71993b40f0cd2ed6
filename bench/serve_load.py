"""`xformer serve` under load against `xformer translate` on the same sentences.

    python bench/serve_load.py [--model models/de-en-general] [--data FILE] [--clients 64] [--requests 1000] [--seconds 300] [--rounds 3]

Starts `xformer serve --workers 2` with the model on a free port, then:
1. one-sentence latency alone: one client, one sentence at a time (p50, p99);
2. load: `--clients` threads, each sending one sentence per request from the data (Multi30k
   test2016 German by default), until `--requests` answers or `--seconds` have passed; the
   latency of every request (p50, p99), errors, sentences/s, and the server's memory (RSS of
   the server process and of its worker processes) at the start, middle and end, and where the
   CPU went meanwhile (the server's main process, its workers, the clients);
3. the CLI: `xformer translate --workers 2 --threads 2` of the same sentences (its translations,
   and its whole-process time: `ratio_to_whole_process`), and the same work in-process (the CLI's
   path without the start-up: Translator.load with 2 workers of 1 thread, translate_nbest over all
   sentences) for sentences/s (`ratio`) and its workers' CPU seconds (`cpu_s_cli_workers`, to set
   beside the server's workers: what batching across requests costs in search).
The clients are threads of this process on the server's machine, each with a keep-alive
connection of http.client (light: their CPU is taken from the server's).
Every answer must equal the CLI's translation of that sentence. With `--rounds N`, steps 2 and the
in-process CLI run N times in turn, the server staying up, and `ratio` is the median of the N
rounds' ratios (`ratios_by_round`): the machine's speed drifts by more than the effects measured,
and a ratio taken from one pair of runs minutes apart carries that drift; the other figures are the
first round's. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/, for columns.py
from columns import DATA_DIR, cpu_name  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def children(pid: int) -> list[int]:
    """The child processes of `pid`, forked from any of its threads (the server's workers are
    forked by a batcher lane, not by the main thread)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:  # a thread that ended meanwhile
            pass
    return found


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS of the process, summed RSS of its children) in MB."""

    def one(p: int) -> float:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    return round(one(pid), 1), round(sum(one(c) for c in children(pid)), 1)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process, summed CPU seconds of its living children), user + system."""

    def one(p: int) -> float:
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    return one(pid), sum(one(c) for c in children(pid))


def start_server(model: str, workers: int, threads: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "xformer_cli", "serve", "-m", model, "--workers", str(workers), "--threads", str(threads)]
    command += ["--port", str(port), "--char-limit", "-1", "--batch-limit", "-1", "--request-timeout", "600"]
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("the server did not start")


def latency_alone(url: str, sentences: list[str], count: int) -> list[float]:
    times = []
    with httpx.Client(timeout=600) as client:
        for sentence in sentences[:count]:
            started = time.perf_counter()
            client.post(f"{url}/translate", json={"q": sentence, "source": "de", "target": "en"}).raise_for_status()
            times.append(time.perf_counter() - started)
    return times


class Client:
    """One keep-alive HTTP/1.1 connection of the standard library's http.client: the load's
    clients share this machine's cores with the server, and httpx costs several times more CPU
    per request (it took 5 of 29 core-seconds of a 2-core run, as much as a sixth of the machine)."""

    def __init__(self, url: str) -> None:
        self.netloc = urlsplit(url).netloc
        self.connection = http.client.HTTPConnection(self.netloc, timeout=600)

    def post_json(self, path: str, payload: dict) -> tuple[int, bytes]:
        """(status, body) of a JSON POST; a connection error is status 0 (the next post reconnects)."""
        try:
            self.connection.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
            response = self.connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException) as err:
            self.connection.close()
            self.connection = http.client.HTTPConnection(self.netloc, timeout=600)
            return 0, str(err).encode()

    def close(self) -> None:
        self.connection.close()


def load(url: str, sentences: list[str], clients: int, seconds: float, pid: int) -> dict:
    """Send every sentence once from `clients` threads (or until `seconds`); answers by index."""
    answers: dict[int, str] = {}
    errors: list[str] = []
    latencies: list[float] = []
    lock = threading.Lock()
    todo = iter(range(len(sentences)))
    deadline = time.monotonic() + seconds
    memory = {"start": rss_mb(pid)}
    cpu_before, own_before = cpu_seconds(pid), time.process_time()

    def client_loop() -> None:
        connection = Client(url)
        try:
            while time.monotonic() < deadline:
                with lock:
                    index = next(todo, None)
                if index is None:
                    return
                started = time.perf_counter()
                status, body = connection.post_json("/translate", {"q": sentences[index], "source": "de", "target": "en"})
                with lock:
                    latencies.append(time.perf_counter() - started)
                    if status == 200:
                        answers[index] = json.loads(body)["translatedText"]
                    else:
                        errors.append(f"{status} {body[:200]!r}")
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if "middle" not in memory and len(latencies) >= len(sentences) // 2:
            memory["middle"] = rss_mb(pid)
    elapsed = time.perf_counter() - started
    memory["end"] = rss_mb(pid)
    (main_after, workers_after), own_after = cpu_seconds(pid), time.process_time()
    cpu = {  # where the machine's CPU went during the load
        "server_main": round(main_after - cpu_before[0], 1),  # HTTP, JSON, batcher, routing
        "server_workers": round(workers_after - cpu_before[1], 1),  # the searches
        "clients": round(own_after - own_before, 1),  # this process: the client threads
    }
    return {"answers": answers, "errors": errors, "latencies": latencies, "elapsed": elapsed, "memory": memory, "cpu": cpu}


def cli_translations(model: str, sentences: list[str], workers: int, threads: int) -> tuple[list[str], float]:
    with tempfile.TemporaryDirectory() as folder:
        source, out = Path(folder) / "in.de", Path(folder) / "out.en"
        source.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "xformer_cli", "translate", "-m", model, "--workers", str(workers), "--threads", str(threads)]
        started = time.perf_counter()
        subprocess.run([*command, "-i", str(source), "-o", str(out)], cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
        return out.read_text(encoding="utf-8").splitlines(), time.perf_counter() - started


def in_process_speed(model: str, sentences: list[str], workers: int, threads: int) -> tuple[float, float]:
    """Sentences/s of the CLI's path without its start-up (as `xformer translate` loads and sets
    threads), and the CPU seconds its workers spent on the sentences."""
    import torch

    from xformer_cli.decoding.translator import Translator

    with Translator.load(model, device="cpu", workers=workers) as translator:
        torch.set_num_threads(max(1, threads // workers))
        config = translator.config()
        translator.translate_nbest(sentences[:16], config)  # warm-up, starts the workers
        before = cpu_seconds(os.getpid())[1]
        started = time.perf_counter()
        translator.translate_nbest(sentences, config)
        elapsed = time.perf_counter() - started
        return len(sentences) / elapsed, cpu_seconds(os.getpid())[1] - before


def main() -> None:
    from xformer_cli.shipped import default_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=default_model())
    parser.add_argument("--data", default=str(Path(DATA_DIR) / "multi30k" / "test2016.de"), help="German sentences, one a line")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=1000, help="at most this many requests (one sentence each)")
    parser.add_argument("--seconds", type=float, default=300, help="at most this long under load")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=1, help="load and the in-process CLI run this many times in turn; the ratio is the median"
    )
    args = parser.parse_args()
    data = [line.strip() for line in Path(args.data).read_text(encoding="utf-8").splitlines() if line.strip()]
    sentences = (data * (args.requests // len(data) + 1))[: args.requests]

    process, url = start_server(args.model, args.workers, args.threads)
    rounds = []  # (load result, in-process CLI sentences/s, its workers' CPU seconds), the server staying up
    try:
        alone = latency_alone(url, sentences, 30)
        for _ in range(args.rounds):
            result = load(url, sentences, args.clients, args.seconds, process.pid)
            served = [sentences[i] for i in sorted(result["answers"])]
            rounds.append((result, *in_process_speed(args.model, served, args.workers, args.threads)))
        batching = next(iter(httpx.get(f"{url}/health").json()["batching"].values()))
    finally:
        process.terminate()
        process.wait(60)
    result, cli_speed, cli_worker_cpu = rounds[0]
    done = sorted(result["answers"])
    served = [sentences[i] for i in done]
    cli, cli_seconds = cli_translations(args.model, served, args.workers, args.threads)
    english = dict(zip(done, cli))  # the CLI's translation of each sentence the first round served
    mismatches = sum(answer != english[i] for r, _, _ in rounds for i, answer in r["answers"].items() if i in english)
    server_speed = len(done) / result["elapsed"]
    ratios = [len(r["answers"]) / r["elapsed"] / speed for r, speed, _ in rounds]
    report = {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "clients": args.clients,
        "requests_answered": len(done),
        "errors": len(result["errors"]),
        "mismatches_vs_cli": mismatches,
        "server_sentences_per_s": round(server_speed, 2),
        "cli_sentences_per_s": round(cli_speed, 2),
        "ratio": round(statistics.median(ratios), 3),
        "ratios_by_round": [round(r, 3) for r in ratios],
        "errors_by_round": [len(r["errors"]) for r, _, _ in rounds],
        "cli_whole_process_s": round(cli_seconds, 1),
        "cli_whole_process_sentences_per_s": round(len(done) / cli_seconds, 2),
        "ratio_to_whole_process": round(server_speed * cli_seconds / len(done), 3),
        "latency_alone_p50_ms": round(1000 * statistics.median(alone), 1),
        "latency_alone_p99_ms": round(1000 * percentile(alone, 99), 1),
        "latency_load_p50_ms": round(1000 * statistics.median(result["latencies"]), 1),
        "latency_load_p99_ms": round(1000 * percentile(result["latencies"], 99), 1),
        "rss_mb_server_workers": result["memory"],
        "batcher_calls_jobs_largest": [batching["calls"], batching["jobs"], batching["largest_call"]],
        "cpu_s_under_load": result["cpu"] | {"wall_x_cores": round(result["elapsed"] * (os.cpu_count() or 1), 1)},
        "cpu_s_cli_workers": round(cli_worker_cpu, 1),  # the CLI path's searches of the same sentences
    }
    width = max(len(key) for key in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")
    for error in result["errors"][:5]:
        print("error:", error)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

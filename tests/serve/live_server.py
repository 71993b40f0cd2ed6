"""Starting and stopping a real `xformer serve` in a subprocess, for the tests that need one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    """`xformer serve` in a subprocess on a free port, once /health answers: (process, base URL)."""
    port = free_port()
    env = {**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "xformer_cli", "serve", "--port", str(port), "--threads", "1", *args]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"xformer serve ended with status {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("xformer serve did not answer /health within 60 s")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Held:
    """A translator's `translate_nbest` made to wait: `started` is set when a call comes (its
    texts go to `seen`), and the call goes on only once `release` is set."""

    seen: list[list[str]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def hold_translations(translator, monkeypatch) -> Held:
    """Make `translator.translate_nbest` wait for `Held.release` (for tests of what happens to a
    request while another is being translated)."""
    held, original = Held(), translator.translate_nbest

    def waiting(texts, config, warn=None):
        held.seen.append(list(texts))
        held.started.set()
        held.release.wait(10)
        return original(texts, config)

    monkeypatch.setattr(translator, "translate_nbest", waiting)
    return held

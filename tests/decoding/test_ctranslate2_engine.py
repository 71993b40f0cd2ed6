"""`--engine ctranslate2`: CTranslate2's search on the exported bundle inside xformer's own path
(splitting, spans, output). Run as a user runs it, in a child process (CTranslate2 is not loaded
into the test process)."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from conftest import MIN_MARGIN, reference_search

from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.shipped import default_model
from xformer_cli.text.sentences import split_sentences
from xformer_cli.text.spans import protect

pytest.importorskip("ctranslate2")  # the optional extra, in the dev extras

LINES = "Ich habe Hunger.\nWo ist der Bahnhof? Tom ist hier.\nDas kostet 3,50 € am 1. Januar 2027.\nDas Haus ist sehr alt.\n"


def translate(tmp_path, *flags: str) -> str:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "xformer_cli", "translate", "-m", default_model(), "--device", "cpu", *flags]
    done = subprocess.run(command, input=LINES, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("beam", [1, 5])
def test_the_lines_are_decided_clearly_by_the_shipped_model(beam):
    """Why the two engines may be compared line for line on any CPU: every decision of the search
    on what the model sees of these lines (sentences, spans held back) wins by MIN_MARGIN, far
    more than the two engines' rounding differs."""
    bundle = load_bundle(default_model())
    config = replace(bundle.decode, beam_size=beam)
    segments = [protect(s).text for line in LINES.splitlines() for s in split_sentences(line)]
    margins = [reference_search(bundle.model, ids, config)[1] for ids in bundle.tokenizer.encode(segments)]
    assert min(margins) >= MIN_MARGIN, dict(zip(segments, margins))


@pytest.mark.parametrize("search", [["--greedy"], ["--beam-size", "5"]])
def test_the_shipped_model_translates_alike_with_both_engines(tmp_path, search):
    ours = translate(tmp_path, *search)
    theirs = translate(tmp_path, *search, "--engine", "ctranslate2")
    assert theirs == ours and len(ours.splitlines()) == 4
    assert "3.50 €" in theirs and "1 January 2027" in theirs  # the spans went round CTranslate2 too


def test_the_export_is_made_once_and_int8_loads_from_it(tmp_path):
    translate(tmp_path, "--greedy", "--engine", "ctranslate2")
    (folder,) = (tmp_path / "cache" / "xformer" / "ctranslate2").iterdir()
    made = (folder / "model.bin").stat().st_mtime_ns
    int8 = translate(tmp_path, "--greedy", "--engine", "ctranslate2", "--quantize", "int8")
    assert (folder / "model.bin").stat().st_mtime_ns == made  # reused, not exported again
    assert len(int8.splitlines()) == 4 and all(int8.splitlines())


def test_an_unknown_engine_is_a_one_line_error(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "xformer_cli", "translate", "--engine", "marian"]
    done = subprocess.run(command, input="Hallo\n", capture_output=True, text=True, env=env, timeout=120)
    assert (
        done.returncode == 1 and done.stderr.strip().splitlines()[-1] == "error: unknown engine 'marian' (choose from xformer, ctranslate2)"
    )


def test_the_server_runs_the_ctranslate2_engine_too(tmp_path, monkeypatch):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
    from live_server import start_server, stop_server

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    process, url = start_server("-m", default_model(), "--engine", "ctranslate2", "--device", "cpu")
    try:
        answer = httpx.post(f"{url}/translate", json={"q": "Ich habe Hunger.", "source": "de", "target": "en"}, timeout=60).json()
    finally:
        stop_server(process)
    assert answer == {"translatedText": translate(tmp_path, "--beam-size", "5").splitlines()[0]}

"""Batching across requests: concurrent requests are merged into shared translate_nbest calls, and
each gets exactly the translation of its own input, in order."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace

import httpx
import pytest
from conftest import MIN_MARGIN, reference_search
from live_server import hold_translations

from xformer_cli.bundles.bundle import load_bundle
from xformer_cli.errors import WorkerError
from xformer_cli.serve.app import create_app
from xformer_cli.serve.batcher import Batcher
from xformer_cli.serve.settings import ServeSettings
from xformer_cli.text.files import read_lines
from xformer_cli.text.sentences import split_sentences
from xformer_cli.text.spans import protect

# Of the first 48 lines of the tiny corpus, those the tiny bundle decides by less than MIN_MARGIN
# (reference_search: 0.00076 to 0.00093): batched with others on another CPU they could flip.
NEAR_TIES = {"Behalten Sie den Rest!", "Wir nahmen Tom gefangen.", "Tom ist mein Rivale."}


@pytest.fixture(scope="module")
def sentences(tiny_corpus) -> list[str]:
    return [line for line in list(read_lines(tiny_corpus[0]))[:48] if line not in NEAR_TIES]


def test_the_sentences_are_decided_clearly(trained_bundle_dir, sentences):
    """Why the server's batched answers may be compared with one-sentence translations on any CPU."""
    bundle = load_bundle(trained_bundle_dir)
    segments = [protect(s).text for line in sentences for s in split_sentences(line)]
    margins = [reference_search(bundle.model, ids, bundle.decode)[1] for ids in bundle.tokenizer.encode(segments)]
    assert min(margins) >= MIN_MARGIN, dict(zip(segments, margins))


def test_concurrent_requests_are_merged_and_routed_back(serve_translator, reference, sentences):
    app = create_app(ServeSettings(batch_wait_ms=50), [serve_translator])

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            requests = [client.post("/translate", json={"q": s, "source": "de", "target": "en"}) for s in sentences[:40]]
            requests.append(client.post("/translate", json={"q": sentences[40:], "source": "de", "target": "en"}))
            return await asyncio.gather(*requests)

    try:
        responses = asyncio.run(run())
        stats = app.state.xformer.models.models[0].batcher.stats
    finally:
        app.state.xformer.close()
    expected = reference.translate(sentences)
    assert [r.json()["translatedText"] for r in responses[:40]] == expected[:40]
    assert responses[40].json()["translatedText"] == expected[40:]
    assert stats.jobs == 41
    assert stats.calls < 41 and stats.largest_call > 1  # requests shared calls


def test_jobs_with_other_options_go_in_other_calls(serve_translator, reference):
    batcher = Batcher(serve_translator, wait_ms=100)
    try:
        plain, wide = serve_translator.config(), serve_translator.config(n_best=2)
        futures = [batcher.submit(["Guter Schuss!"], plain), batcher.submit(["Guter Schuss!"], wide), batcher.submit(["Hallo."], plain)]
        results = [future.result(10) for future in futures]
    finally:
        batcher.close()
    assert [len(nbest) for (nbest,) in results] == [1, 2, 1]
    assert results[2][0][0].text == reference.translate(["Hallo."])[0]
    assert batcher.stats.calls == 2 and batcher.stats.largest_call == 2


def test_a_cancelled_job_is_not_translated(serve_translator, monkeypatch):
    held = hold_translations(serve_translator, monkeypatch)
    seen, started, release = held.seen, held.started, held.release
    batcher = Batcher(serve_translator, wait_ms=0)
    try:
        running = batcher.submit(["Erster."], serve_translator.config())
        assert started.wait(10)
        gone = batcher.submit(["Zweiter."], serve_translator.config())
        assert gone.cancel()
        release.set()
        running.result(10)
        batcher.submit(["Dritter."], serve_translator.config()).result(10)
    finally:
        batcher.close()
    assert seen == [["Erster."], ["Dritter."]]
    assert batcher.stats.skipped == 1


def test_an_error_reaches_the_jobs_of_its_call_only(serve_translator, monkeypatch):
    original = serve_translator.translate_nbest
    calls = iter([WorkerError("worker 1 ended unexpectedly"), None])

    def failing_once(texts, config, warn=None):
        err = next(calls)
        if err:
            raise err
        return original(texts, config)

    monkeypatch.setattr(serve_translator, "translate_nbest", failing_once)
    batcher = Batcher(serve_translator, wait_ms=0)
    try:
        with pytest.raises(WorkerError, match="ended unexpectedly"):
            batcher.submit(["Erster."], serve_translator.config()).result(10)
        assert batcher.submit(["Zweiter."], serve_translator.config()).result(10)[0][0].text
    finally:
        batcher.close()


def test_close_finishes_queued_jobs_and_refuses_new_ones(serve_translator):
    batcher = Batcher(serve_translator, wait_ms=50)
    queued = batcher.submit(["Guter Schuss!"], serve_translator.config())
    batcher.close()
    assert queued.result(1)[0][0].text
    with pytest.raises(RuntimeError, match="shutting down"):
        batcher.submit(["Hallo."], serve_translator.config()).result(1)


def test_with_several_workers_a_call_is_cut_for_every_worker(trained_bundle_dir):
    from xformer_cli.decoding.translator import Translator

    two = Translator(Translator.load(str(trained_bundle_dir), device="cpu").bundle, "cpu", workers=2)
    batcher = Batcher(two, wait_ms=0)
    batcher.close()
    config = two.config()
    assert batcher.call_config(config, 64).batch_size == 16  # 64 texts, 2 workers, 2 batches each
    assert batcher.call_config(config, 3).batch_size == 8  # not below MIN_BATCH
    assert batcher.call_config(replace(config, batch_size=5), 64).batch_size == 5  # a size given is kept
    assert batcher.call_config(config, 64, alone=False).batch_size == 32  # beside another call: one batch per worker


def test_with_several_workers_two_calls_run_at_once_each_with_its_own_results(trained_bundle_dir, reference, monkeypatch):
    """One lane per worker: a job that comes while a call runs is translated beside it, not after
    it (with one lane the barrier below is never passed), and each job gets its own translation."""
    from xformer_cli.decoding.translator import Translator

    with Translator.load(str(trained_bundle_dir), device="cpu", workers=2) as two:
        both_in, original = threading.Barrier(2, timeout=10), two.translate_nbest

        def meeting(texts, config, warn=None):
            both_in.wait()  # returns once the two calls are running at the same time
            return original(texts, config)

        monkeypatch.setattr(two, "translate_nbest", meeting)
        batcher = Batcher(two, wait_ms=0)
        try:
            first = batcher.submit(["Guter Schuss!"], two.config())
            time.sleep(0.2)  # the first call has started, and waits at the barrier
            second = batcher.submit(["Wir sind verärgert.", "Hallo."], two.config())
            results = [first.result(20), second.result(20)]
        finally:
            batcher.close()
    assert [[nbest[0].text for nbest in result] for result in results] == [
        reference.translate(["Guter Schuss!"]),
        reference.translate(["Wir sind verärgert.", "Hallo."]),
    ]
    assert batcher.stats.calls == 2 and batcher.stats.jobs == 2

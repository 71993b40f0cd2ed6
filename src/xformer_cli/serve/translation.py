"""What POST /translate does once its parameters are checked: pick the model of each text (detecting
the source where it is auto), hand the texts to the batchers, wait, and answer in LibreTranslate's
shape.

Waiting watches the client: if it hangs up before its texts are translated, the job is cancelled
(a job not yet started is dropped by its batcher), so a gone client costs nothing further. A job
that takes longer than the request timeout is cancelled the same way and answered 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from typing import Any

from starlette.concurrency import run_in_threadpool

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.translator import Translation
from xformer_cli.serve import documents_bridge
from xformer_cli.serve.api_errors import ApiError
from xformer_cli.serve.languages import Detection, detect
from xformer_cli.serve.models import LoadedModel, ModelSet
from xformer_cli.serve.params import TranslateRequest

Receive = Callable[[], Awaitable[dict[str, Any]]]


class ClientGone(Exception):
    """The client hung up before its answer was ready (nobody to answer)."""


async def until_disconnect(receive: Receive) -> None:
    """Return when the client hangs up (the request's body already read)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def wait_for(futures: Sequence[Future], receive: Receive, timeout: float) -> list[Any]:
    """The futures' results, unless the client hangs up (ClientGone) or time runs out (503);
    in both cases the futures not yet started are cancelled."""
    results = asyncio.gather(*(asyncio.wrap_future(future) for future in futures))
    gone = asyncio.ensure_future(until_disconnect(receive))
    try:
        done, _ = await asyncio.wait({results, gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if results in done:
            return results.result()
        if gone in done:
            raise ClientGone()
        raise ApiError(503, f"translation took longer than the request timeout ({timeout:g} s)")
    finally:
        gone.cancel()
        for future in futures:
            future.cancel()  # no effect on a job already running or done
        if not results.done():
            results.cancel()
            results.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no "never retrieved" log


def decode_config(model: LoadedModel, alternatives: int) -> DecodeConfig:
    """The model's own decoding config, with n-best = 1 + alternatives (the beam widened to hold them)."""
    config = model.translator.config()
    n_best = alternatives + 1
    return model.translator.config(beam_size=max(config.beam_size, n_best), n_best=n_best)


def alternatives_of(nbest: list[Translation], wanted: int) -> list[str]:
    """Up to `wanted` other translations, best first, each different from the best and each other."""
    seen = {nbest[0].text}
    others = []
    for translation in nbest[1:]:
        if translation.text not in seen and len(others) < wanted:
            seen.add(translation.text)
            others.append(translation.text)
    return others


def sources_of(request: TranslateRequest, models: ModelSet) -> list[Detection]:
    """The source language of each text: the one given, or detected among those a model
    translates into the target."""
    if request.source != "auto":
        return [Detection(request.source, 100.0)] * len(request.texts)
    readers = [source for source in models.sources if request.target in models.targets(source)] or models.sources
    return [detect(text, readers)[0] for text in request.texts]


async def translate_texts(request: TranslateRequest, models: ModelSet, receive: Receive, timeout: float) -> dict[str, Any]:
    """POST /translate's answer: {"translatedText", "alternatives"?, "detectedLanguage"?}."""
    sources = sources_of(request, models)
    chosen = [models.pick(source.language, request.target, request.model) for source in sources]
    nbests: list[list[Translation]] = [[] for _ in request.texts]
    by_model: dict[str, list[int]] = {}
    for index, model in enumerate(chosen):
        by_model.setdefault(model.id, []).append(index)
    for indices in by_model.values():
        model = chosen[indices[0]]
        config = decode_config(model, request.alternatives)
        texts = model.tagged([request.texts[i] for i in indices], request.target)
        if request.format == "html":
            results = await html_texts(texts, model, config, timeout)
        else:
            (results,) = await wait_for([model.batcher.submit(texts, config)], receive, timeout)
        for index, nbest in zip(indices, results):
            nbests[index] = nbest
    answer: dict[str, Any] = {"translatedText": [nbest[0].text for nbest in nbests]}
    if request.alternatives:
        answer["alternatives"] = [alternatives_of(nbest, request.alternatives) for nbest in nbests]
    if request.source == "auto":
        answer["detectedLanguage"] = [source.as_json() for source in sources]
    return answer if request.batch else {key: value[0] for key, value in answer.items()}


async def html_texts(texts: list[str], model: LoadedModel, config: DecodeConfig, timeout: float) -> list[list[Translation]]:
    """HTML fragments translated through the documents feature (tags kept), one n-best entry each."""

    def one(text: str) -> list[Translation]:
        html = documents_bridge.translate_document(text.encode("utf-8"), "html", model, config, timeout)
        return [Translation(html.decode("utf-8"), 0.0)]

    return [await run_in_threadpool(one, text) for text in texts]

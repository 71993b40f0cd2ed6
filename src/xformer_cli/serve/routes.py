"""LibreTranslate's routes: /translate, /languages, /detect, /translate_file, /download_file/<id>,
/frontend/settings and /health, with LibreTranslate's parameters and answers.

The routes read their parameters themselves (JSON or form, see `params.py`), as LibreTranslate
does, rather than through FastAPI's models: one route takes both body kinds.
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from importlib.resources import files
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from xformer_cli.serve import documents_bridge
from xformer_cli.serve.api_errors import ApiError, bad_request
from xformer_cli.serve.files import download_name
from xformer_cli.serve.languages import detect as detect_languages
from xformer_cli.serve.params import read_params, text_param, translate_request
from xformer_cli.serve.translation import decode_config, translate_texts

router = APIRouter()


@functools.cache
def page_html() -> str:
    """The page (page.html next to this module), read once."""
    return files("xformer_cli.serve").joinpath("page.html").read_text(encoding="utf-8")


def address(request: Request) -> str:
    """The client's address, for the rate limit of callers without a key."""
    return request.client.host if request.client else "unknown"


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json"


@router.post("/translate", summary="Translate text (q: a string or a list of strings)")
async def translate(request: Request) -> dict[str, Any]:
    """LibreTranslate's /translate: q, source (a code or auto), target, format (text or html),
    alternatives, api_key; xformer adds `model` (a model id, where several serve one pair)."""
    state = request.app.state.xformer
    params = await read_params(request)
    state.access.check(text_param(params, "api_key", required=False), address(request))
    checked = translate_request(params, state.settings, from_form=is_form(request))
    return await translate_texts(checked, state.models, request.receive, state.settings.request_timeout)


@router.get("/languages", summary="The languages read and written, with the targets of each")
async def languages(request: Request) -> list[dict[str, Any]]:
    """[{"code", "name", "targets"}] for every language some loaded model reads or writes."""
    return request.app.state.xformer.models.languages()


@router.post("/detect", summary="The language of a text, among those the loaded models read")
async def detect(request: Request) -> list[dict[str, Any]]:
    """[{"confidence", "language"}], most likely first (see `languages.py` for the method)."""
    state = request.app.state.xformer
    params = await read_params(request)
    state.access.check(text_param(params, "api_key", required=False), address(request))
    q = text_param(params, "q")
    return [found.as_json() for found in detect_languages(q, state.models.sources)]


@router.get("/frontend/settings", summary="The settings the page reads")
async def frontend_settings(request: Request) -> dict[str, Any]:
    """LibreTranslate's frontend settings, plus `models` (id, source, target, name) for the page."""
    return request.app.state.xformer.frontend_settings()


@router.get("/health", summary="Whether the server is up, and what each model's batcher has done")
async def health(request: Request) -> dict[str, Any]:
    """{"status": "ok"} as LibreTranslate answers, plus each model's batcher counters."""
    models = request.app.state.xformer.models.models
    return {"status": "ok", "batching": {model.id: asdict(model.batcher.stats) for model in models}}


@router.post("/translate_file", summary="Translate a file (multipart: file, source, target, api_key)")
async def translate_file(request: Request) -> dict[str, str]:
    """The file translated with its structure kept (the documents feature's formats); answers
    {"translatedFileUrl"} to download it from, by its id, until the file's time is up."""
    state = request.app.state.xformer
    params = await read_params(request)
    state.access.check(text_param(params, "api_key", required=False), address(request))
    upload = params.get("file")
    if not isinstance(upload, UploadFile):
        raise bad_request("Invalid request: missing file parameter")
    source, target = text_param(params, "source"), text_param(params, "target")
    fmt = documents_bridge.file_format(upload.filename, text_param(params, "format", required=False))
    data = await upload.read()
    if not data:
        raise bad_request("Invalid request: empty file")
    if source == "auto":
        source = detect_languages(data[:4096].decode("utf-8", "ignore"), state.models.sources)[0].language
    model = state.models.pick(source, target, text_param(params, "model", required=False))
    config = decode_config(model, 0)
    timeout = state.settings.request_timeout
    translated = await run_in_threadpool(documents_bridge.translate_document, data, fmt, model, config, timeout)
    file_id = state.files.store(data, translated, upload.filename)
    return {"translatedFileUrl": f"{str(request.base_url).rstrip('/')}/download_file/{file_id}"}


@router.get("/download_file/{file_id}", summary="Download a translated file by its id")
async def download_file(request: Request, file_id: str) -> Response:
    """The translated file, as an attachment under the uploaded file's name."""
    found = request.app.state.xformer.files.fetch(file_id)
    if found is None:
        raise ApiError(404, "Invalid file id, or the file has expired")
    filename, data = found
    ascii_name = download_name(filename).encode("ascii", "replace").decode().replace("?", "_")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"},
    )

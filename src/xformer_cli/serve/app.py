"""The FastAPI app: LibreTranslate's routes over the loaded models, built by `create_app`.

Everything the app holds (models and batchers, keys and rate counts, stored files) lives on the
app made by the factory, none at module level, so tests build as many apps as they like. Every
error is answered {"error": "..."}: an ApiError with its status, FastAPI's validation errors as
400, another XformerError as 400 (a worker that died: 500), anything else as 500 without a
traceback (the traceback goes to the server's log only).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from xformer_cli.decoding.translator import Translator
from xformer_cli.errors import WorkerError, XformerError
from xformer_cli.serve import documents_bridge, routes
from xformer_cli.serve.api_errors import ApiError
from xformer_cli.serve.body_limit import BodyLimit
from xformer_cli.serve.files import FileStore
from xformer_cli.serve.languages import name
from xformer_cli.serve.limits import Access
from xformer_cli.serve.models import ModelSet
from xformer_cli.serve.settings import ServeSettings
from xformer_cli.serve.translation import ClientGone

log = logging.getLogger("xformer.serve")


class ServerState:
    """What one app holds: its settings, models, access checks and files."""

    def __init__(self, settings: ServeSettings, translators: Sequence[Translator]) -> None:
        self.settings = settings
        self.models = ModelSet(translators, settings.batch_wait_ms)
        self.access = Access(settings)
        self.files = FileStore(settings.file_ttl)

    def frontend_settings(self) -> dict[str, object]:
        """GET /frontend/settings: LibreTranslate's keys, plus the loaded models for the page."""
        first = self.models.models[0]
        return {
            "charLimit": self.settings.char_limit,
            "frontendTimeout": self.settings.frontend_timeout_ms,
            "apiKeys": self.settings.keys_enabled,
            "keyRequired": self.settings.require_api_key,
            "suggestions": False,
            "filesTranslation": documents_bridge.available(),
            "supportedFilesFormat": list(documents_bridge.FILE_EXTENSIONS) if documents_bridge.available() else [],
            "language": {
                "source": {"code": first.source, "name": name(first.source)},
                "target": {"code": first.target, "name": name(first.target)},
            },
            "models": [model.as_json() for model in self.models.models],
        }

    def close(self) -> None:
        """Finish queued translations, end the worker processes, delete the stored files."""
        self.models.close()
        self.files.close()


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(settings: ServeSettings, translators: Sequence[Translator]) -> FastAPI:
    """The app serving `translators` (at least one) under `settings`; closing it (the lifespan's
    end, e.g. leaving a TestClient block or uvicorn's shutdown) closes their batchers and workers."""
    if not translators:
        raise ValueError("create_app needs at least one translator")
    state = ServerState(settings, translators)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="xformer serve",
        summary="LibreTranslate's API over xformer models, with batching across requests.",
        lifespan=lifespan,
    )
    app.state.xformer = state
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    add_error_handlers(app)
    app.include_router(routes.router)
    app.add_api_route("/", page, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    return app


async def page(request: Request) -> HTMLResponse:
    """The page for people without a terminal (one self-contained file)."""
    return HTMLResponse(routes.page_html())


def add_error_handlers(app: FastAPI) -> None:
    """Every error as {"error": ...} with its status, never a traceback in a response."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return error(err.status, str(err))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return error(400, f"Invalid request: {where or 'body'}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return error(err.status_code, str(err.detail))

    @app.exception_handler(XformerError)
    async def xformer_error(request: Request, err: XformerError) -> JSONResponse:
        if isinstance(err, WorkerError):
            log.error("translation failed: %s", err)
            return error(500, f"Cannot translate text: {err}")
        return error(400, str(err))

    @app.exception_handler(TimeoutError)
    async def timed_out(request: Request, err: TimeoutError) -> JSONResponse:
        return error(503, f"translation took longer than the request timeout ({request.app.state.xformer.settings.request_timeout:g} s)")

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, err: ClientGone) -> Response:
        return Response(status_code=499)  # nginx's "client closed request": nobody reads it

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return error(500, f"Internal error: {type(err).__name__}")

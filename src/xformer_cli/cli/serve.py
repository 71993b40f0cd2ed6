"""`xformer serve`: LibreTranslate's HTTP API and a page over one or more models."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from xformer_cli.cli.common import model_ref, stderr, user_errors
from xformer_cli.errors import ConfigError


@user_errors
def serve(
    model: Annotated[
        Optional[list[str]],
        typer.Option(
            "--model",
            "-m",
            help="Bundle folder or Hugging Face Hub id; repeat it to serve several, each adding its language pair [default: the "
            "shipped model].",
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    workers: Annotated[
        int, typer.Option(help="Worker processes per model, each translating a batch at a time (as translate --workers).")
    ] = 1,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads, shared out among the workers.")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    engine: Annotated[str, typer.Option(help="xformer or ctranslate2 (as translate --engine).")] = "xformer",
    batch_wait_ms: Annotated[
        float, typer.Option(help="Milliseconds to gather the sentences of other requests into one batch before translating.")
    ] = 5.0,
    char_limit: Annotated[int, typer.Option(help="Characters per request (-1: no limit).")] = 5000,
    batch_limit: Annotated[int, typer.Option(help="Items per list in q (-1: no limit).")] = 128,
    req_limit: Annotated[int, typer.Option(help="Requests per minute per API key, or per address without one (-1: no limit).")] = -1,
    api_keys: Annotated[
        Optional[Path], typer.Option(help="File of API keys, one per line; a request that gives a key must give one of them.")
    ] = None,
    require_api_key: Annotated[bool, typer.Option(help="Refuse requests without a valid API key (needs --api-keys).")] = False,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body (and uploaded file) in bytes; larger gets 413.")] = 10_000_000,
    request_timeout: Annotated[float, typer.Option(help="Seconds a request may wait for its translation (then 503).")] = 60.0,
    file_ttl: Annotated[float, typer.Option(help="Seconds a translated file stays downloadable.")] = 600.0,
) -> None:
    """Serve LibreTranslate's API (/translate, /languages, /detect, /translate_file ...) and a page at /."""
    from xformer_cli.serve.limits import read_keys
    from xformer_cli.serve.server import serve as run_server
    from xformer_cli.serve.settings import ServeSettings

    if require_api_key and api_keys is None:
        raise ConfigError("--require-api-key needs --api-keys FILE")
    if not 0 < port < 65536:
        raise ConfigError(f"port must be between 1 and 65535 (got {port})")
    for flag, value in (("--batch-wait-ms", batch_wait_ms), ("--request-timeout", request_timeout), ("--file-ttl", file_ttl)):
        if value < 0 or (flag != "--batch-wait-ms" and value == 0):
            raise ConfigError(f"{flag} must be positive (got {value:g})")
    settings = ServeSettings(
        host=host,
        port=port,
        batch_wait_ms=batch_wait_ms,
        char_limit=char_limit,
        batch_limit=batch_limit,
        req_limit=req_limit,
        api_keys=read_keys(api_keys) if api_keys else frozenset(),
        require_api_key=require_api_key,
        max_body_bytes=max_body_bytes,
        request_timeout=request_timeout,
        file_ttl=file_ttl,
    )
    console = stderr()
    refs = model or [model_ref(None)]
    run_server(settings, refs, device, workers, threads, lambda line: console.print(line, highlight=False, markup=False), engine)

"""Running the app: load the models, start their worker processes, listen, serve until told to stop.

Uvicorn serves the app. On SIGTERM or Ctrl-C it stops accepting connections, lets the requests
in flight finish (for up to the request timeout and a little more), then runs the app's shutdown:
the batchers finish what is queued and the worker processes end. Uvicorn then raises the signal
again, so the process ends as the signal says (Ctrl-C: status 130 from the CLI).

The worker processes are forked before the port is opened, so they hold no copy of the listening
socket; the port is opened by this module so that a port already taken is one clear error.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import replace

from xformer_cli.decoding.translator import Translator, share_threads
from xformer_cli.errors import ConfigError
from xformer_cli.serve.app import create_app
from xformer_cli.serve.settings import ServeSettings


def load_translators(refs: Sequence[str], device: str, workers: int, threads: int | None, engine: str = "xformer") -> list[Translator]:
    """The models, each with its worker processes started (when `workers` > 1) by a first
    translation of two one-sentence batches, which also warms the model up."""
    translators = [Translator.load(ref, device=device, workers=workers, engine=engine) for ref in refs]
    share_threads(threads, workers)
    for translator in translators:
        translator.translate_nbest(["Hallo.", "Guten Tag."], replace(translator.config(), batch_size=1))
    return translators


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (a ConfigError where that cannot be)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except socket.gaierror as err:
        raise ConfigError(f"cannot listen on {host}:{port}: unknown host ({err.strerror})") from None
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror}") from None


def serve(
    settings: ServeSettings, refs: Sequence[str], device: str, workers: int, threads: int | None, say, engine: str = "xformer"
) -> None:
    """Serve the bundles `refs` until SIGTERM or Ctrl-C; `say` prints a line of talk (stderr)."""
    import uvicorn

    translators = load_translators(refs, device, workers, threads, engine)
    try:
        sock = listen(settings.host, settings.port)
        app = create_app(settings, translators)
        config = uvicorn.Config(
            app,
            log_level="warning",
            loop="auto",  # uvloop where installed (the extra `serve` brings it), else asyncio's
            http="auto",  # httptools where installed, else h11: a request alone took 92 ms with h11, 47 with httptools
            timeout_graceful_shutdown=int(settings.request_timeout) + 5,
            timeout_keep_alive=30,
        )
        pairs = ", ".join(f"{model.id} ({model.source}→{model.target})" for model in app.state.xformer.models.models)
        shown = f"[{settings.host}]" if ":" in settings.host else settings.host
        say(f"xformer serve: {pairs}; {workers} worker(s) per model; http://{shown}:{settings.port}/ (Ctrl-C to stop)")
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for translator in translators:  # the app's shutdown closed them already, unless it never started
            translator.close()

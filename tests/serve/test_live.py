"""A real `xformer serve` on a free port: LibreTranslate's own Python client and the curl calls of
LibreTranslate's API docs work unchanged; SIGTERM lets the request in flight finish; a client that
hangs up costs nothing further; the command's own errors are one line."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time

import httpx
from libretranslatepy import LibreTranslateAPI
from live_server import free_port, hold_translations, start_server, stop_server
from typer.testing import CliRunner

from xformer_cli.cli.app import app as cli_app
from xformer_cli.serve.app import create_app
from xformer_cli.serve.settings import ServeSettings


def test_libretranslatepy_client(live_url, reference):
    client = LibreTranslateAPI(live_url)
    assert client.translate("Wir sind verärgert.", "de", "en") == reference.translate(["Wir sind verärgert."])[0]
    assert client.translate("Ich bin im Netz und du nicht.", "auto", "en") == reference.translate(["Ich bin im Netz und du nicht."])[0]
    assert [language["code"] for language in client.languages()] == ["de", "en"]
    assert client.detect("Ich bin der Mann und das ist mein Haus.")[0]["language"] == "de"


def curl(url: str, *args: str) -> tuple[int, dict]:
    """curl as LibreTranslate's docs call it (httpx with the same request where curl is missing)."""
    if shutil.which("curl"):
        out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args, url], capture_output=True, text=True, check=True).stdout
        body, status = out.rsplit("\n", 1)
        return int(status), json.loads(body)
    data = args[args.index("-d") + 1] if "-d" in args else None
    if data and "-H" in args:
        response = httpx.post(url, content=data, headers={"Content-Type": "application/json"})
    elif "-F" in args:
        fields = dict(arg.split("=", 1) for arg in args[1::2])
        response = httpx.post(url, data=fields)
    else:
        response = httpx.get(url)
    return response.status_code, response.json()


def test_the_curl_calls_of_libretranslates_docs(live_url, reference):
    json_body = json.dumps({"q": "Guter Schuss!", "source": "de", "target": "en", "format": "text", "alternatives": 2, "api_key": ""})
    status, body = curl(f"{live_url}/translate", "-X", "POST", "-H", "Content-Type: application/json", "-d", json_body)
    assert status == 200 and body["translatedText"] == reference.translate(["Guter Schuss!"])[0]
    assert isinstance(body["alternatives"], list)
    status, body = curl(f"{live_url}/translate", "-F", "q=Wir sind verärgert.", "-F", "source=auto", "-F", "target=en")
    assert status == 200 and body["detectedLanguage"]["language"] == "de"
    status, body = curl(f"{live_url}/detect", "-X", "POST", "-H", "Content-Type: application/json", "-d", '{"q": "Das ist gut."}')
    assert status == 200 and body[0]["language"] == "de"
    assert curl(f"{live_url}/languages")[1][0]["targets"] == ["en"]
    status, body = curl(f"{live_url}/translate", "-X", "POST", "-H", "Content-Type: application/json", "-d", '{"q": "x"}')
    assert status == 400 and body == {"error": "Invalid request: missing source parameter"}


def test_sigterm_finishes_the_request_in_flight(trained_bundle_dir, reference):
    process, url = start_server("-m", str(trained_bundle_dir), "--batch-wait-ms", "1500")
    answer: list[httpx.Response] = []
    request = threading.Thread(
        target=lambda: answer.append(httpx.post(f"{url}/translate", json={"q": "Hallo.", "source": "de", "target": "en"}))
    )
    request.start()
    time.sleep(0.5)  # the request waits in the batcher's 1.5 s window
    process.send_signal(signal.SIGTERM)
    request.join(30)
    process.wait(30)
    assert answer and answer[0].status_code == 200
    assert answer[0].json() == {"translatedText": reference.translate(["Hallo."])[0]}
    assert "Traceback" not in process.stderr.read()


def test_a_client_that_hangs_up_costs_nothing_further(serve_translator, reference, monkeypatch):
    import uvicorn

    held = hold_translations(serve_translator, monkeypatch)
    seen, started, release = held.seen, held.started, held.release
    app = create_app(ServeSettings(batch_wait_ms=0), [serve_translator])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        while not server.started:
            time.sleep(0.05)
        first: list[httpx.Response] = []
        busy = threading.Thread(
            target=lambda: first.append(httpx.post(f"{url}/translate", json={"q": "Erster.", "source": "de", "target": "en"}))
        )
        busy.start()
        assert started.wait(10)  # the batcher is busy with the first request
        body = json.dumps({"q": "Zweiter.", "source": "de", "target": "en"}).encode()
        with socket.create_connection(("127.0.0.1", port)) as sock:
            head = f"POST /translate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            sock.sendall(head.encode() + body)
            time.sleep(0.5)  # queued behind the first
        time.sleep(0.5)  # hung up: the server notices
        release.set()
        busy.join(10)
        assert first[0].status_code == 200
        good = httpx.post(f"{url}/translate", json={"q": "Dritter.", "source": "de", "target": "en"})
        assert good.json() == {"translatedText": reference.translate(["Dritter."])[0]}
        assert seen == [["Erster."], ["Dritter."]]  # the gone client's text was never translated
        assert app.state.xformer.models.models[0].batcher.stats.skipped == 1
    finally:
        release.set()
        server.should_exit = True
        thread.join(10)


def assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


def test_command_errors_are_one_line(trained_bundle_dir, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli_app, ["serve", "-m", str(trained_bundle_dir), "--require-api-key"])
    assert_one_line_error(result, "--require-api-key needs --api-keys FILE")
    empty = tmp_path / "keys.txt"
    empty.write_text("# no keys yet\n\n")
    result = runner.invoke(cli_app, ["serve", "-m", str(trained_bundle_dir), "--api-keys", str(empty)])
    assert_one_line_error(result, "holds no key")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(cli_app, ["serve", "-m", str(trained_bundle_dir), "--port", str(port)])
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}")
    result = runner.invoke(cli_app, ["serve", "-m", str(tmp_path / "missing")])
    assert_one_line_error(result, "model not found")


def test_two_worker_processes_serve_in_a_subprocess(trained_bundle_dir, reference):
    process, url = start_server("-m", str(trained_bundle_dir), "--workers", "2")
    try:
        texts = ["Guter Schuss!", "Zieh mich hoch!", "Gehe Tom suchen!", "Wir sind verärgert."]
        response = httpx.post(f"{url}/translate", json={"q": texts, "source": "de", "target": "en"}, timeout=30)
        assert response.json() == {"translatedText": reference.translate(texts)}
    finally:
        stop_server(process)
    assert process.returncode in (0, -signal.SIGTERM)

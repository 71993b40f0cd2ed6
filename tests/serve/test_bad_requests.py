"""The battery of bad requests: each gets its status and a JSON {"error": ...} without a
traceback, and the server answers the next good request correctly."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading

import pytest
from fastapi.testclient import TestClient

from xformer_cli.decoding.translator import Translator
from xformer_cli.serve.app import create_app
from xformer_cli.serve.settings import ServeSettings

GOOD = {"q": "Guter Schuss!", "source": "de", "target": "en"}


def assert_error(response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and isinstance(body["error"], str)
    assert "Traceback" not in response.text
    for fragment in fragments:
        assert fragment in body["error"], body["error"]


def assert_good(client, reference) -> None:
    response = client.post("/translate", json=GOOD)
    assert response.status_code == 200
    assert response.json() == {"translatedText": reference.translate([GOOD["q"]])[0]}


@pytest.fixture
def client(serve_translator):
    settings = ServeSettings(char_limit=40, batch_limit=3, max_body_bytes=2000)
    with TestClient(create_app(settings, [serve_translator]), raise_server_exceptions=False) as test_client:
        yield test_client


BAD = [
    ("malformed JSON", dict(content=b'{"q": "Hallo', headers={"content-type": "application/json"}), "malformed JSON"),
    ("JSON not an object", dict(json=["Hallo"]), "must be an object"),
    ("q missing", dict(json={"source": "de", "target": "en"}), "missing q parameter"),
    ("q a number", dict(json={**GOOD, "q": 3}), "q must be a string"),
    ("q a list of numbers", dict(json={**GOOD, "q": ["a", 1]}), "q must be a string"),
    ("source missing", dict(json={"q": "Hallo", "target": "en"}), "missing source parameter"),
    ("target a list", dict(json={**GOOD, "target": ["en"]}), "target must be a string"),
    ("unknown source", dict(json={**GOOD, "source": "xx"}), "xx is not supported"),
    ("unknown target", dict(json={**GOOD, "target": "fr"}), "fr is not supported"),
    ("unsupported pair", dict(json={**GOOD, "source": "en", "target": "de"}), "not available as a target language"),
    ("unknown format", dict(json={**GOOD, "format": "pdf"}), "pdf format is not supported"),
    ("alternatives a word", dict(json={**GOOD, "alternatives": "many"}), "alternatives must be a whole number"),
    ("alternatives negative", dict(data={**GOOD, "alternatives": "-1"}), "between 0 and 8"),
    ("alternatives a bool", dict(json={**GOOD, "alternatives": True}), "alternatives must be a whole number"),
    ("too many characters", dict(json={**GOOD, "q": "Hallo " * 10}), "exceeds text limit (40)"),
    ("too many items", dict(json={**GOOD, "q": ["a", "b", "c", "d"]}), "request (4) exceeds text limit (3)"),
    ("unknown model", dict(json={**GOOD, "model": "nope"}), "model nope is not loaded"),
    ("q as an uploaded file", dict(files={"q": ("q.txt", b"Hallo")}, data={"source": "de", "target": "en"}), "q must be a string"),
]


@pytest.mark.parametrize("kwargs, fragment", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_translate_requests_get_400(client, reference, kwargs, fragment):
    assert_error(client.post("/translate", **kwargs), 400, fragment)
    assert_good(client, reference)


def test_other_bad_requests(client, reference):
    assert_error(client.post("/detect", json={}), 400, "missing q parameter")
    assert_error(client.get("/translate"), 405)
    assert_error(client.get("/no/such/route"), 404)
    assert_error(client.get("/download_file/../../etc/passwd"), 404)
    assert_error(client.post("/translate_file", data={"source": "de", "target": "en"}), 400)
    assert_error(client.post("/translate", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"}), 400)
    assert_good(client, reference)


def test_huge_bodies_get_413(client, reference):
    huge = b'{"q": "' + b"a" * 5000 + b'", "source": "de", "target": "en"}'
    assert_error(client.post("/translate", content=huge, headers={"content-type": "application/json"}), 413, "limit is 2000 bytes")
    chunked = client.post("/translate", content=iter([huge[:1500], huge[1500:]]), headers={"content-type": "application/json"})
    assert_error(chunked, 413)  # no Content-Length: refused once the body passes the limit
    assert_error(client.post("/translate_file", files={"file": ("big.srt", b"x" * 5000)}, data={"source": "de", "target": "en"}), 413)
    assert_good(client, reference)


def test_keys_are_checked(serve_translator, reference, tmp_path):
    settings = ServeSettings(api_keys=frozenset({"secret-1", "secret-2"}), require_api_key=True)
    with TestClient(create_app(settings, [serve_translator])) as client:
        assert_error(client.post("/translate", json=GOOD), 403, "get an API key")
        assert_error(client.post("/translate", json={**GOOD, "api_key": "secret-3"}), 403, "Invalid API key")
        assert_error(client.post("/translate", json={**GOOD, "api_key": "secret-"}), 403, "Invalid API key")
        assert_error(client.post("/detect", data={"q": "Hallo", "api_key": "wrong"}), 403)
        response = client.post("/translate", data={**GOOD, "api_key": "secret-2"})
        assert response.json() == {"translatedText": reference.translate([GOOD["q"]])[0]}
        assert client.get("/frontend/settings").json()["keyRequired"] is True


def test_keys_optional_but_checked_when_given(serve_translator):
    with TestClient(create_app(ServeSettings(api_keys=frozenset({"k"})), [serve_translator])) as client:
        assert client.post("/translate", json=GOOD).status_code == 200
        assert_error(client.post("/translate", json={**GOOD, "api_key": "x"}), 403, "Invalid API key")


def test_a_flood_past_the_rate_gets_429(serve_translator, reference):
    settings = ServeSettings(req_limit=3, api_keys=frozenset({"k"}))
    with TestClient(create_app(settings, [serve_translator])) as client:
        for _ in range(3):
            assert client.post("/translate", json=GOOD).status_code == 200
        assert_error(client.post("/translate", json=GOOD), 429, "Slowdown: 3 per 1 minute")
        assert_error(client.post("/detect", data={"q": "Hallo"}), 429)
        assert client.get("/languages").status_code == 200  # not limited
        response = client.post("/translate", json={**GOOD, "api_key": "k"})  # a key is counted apart from the address
        assert response.json() == {"translatedText": reference.translate([GOOD["q"]])[0]}


def test_an_unexpected_exception_is_500_without_traceback(client, serve_translator, reference, monkeypatch):
    original = serve_translator.translate_nbest
    monkeypatch.setattr(serve_translator, "translate_nbest", lambda *a, **k: 1 / 0)
    assert_error(client.post("/translate", json=GOOD), 500, "Internal error: ZeroDivisionError")
    monkeypatch.setattr(serve_translator, "translate_nbest", original)
    assert_good(client, reference)


def test_a_slow_translation_gets_503_and_the_next_request_works(serve_translator, reference, monkeypatch):
    release = threading.Event()
    original = serve_translator.translate_nbest

    def stuck_once(*args, **kwargs):
        release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(serve_translator, "translate_nbest", stuck_once)
    with TestClient(create_app(ServeSettings(request_timeout=0.3), [serve_translator])) as client:
        assert_error(client.post("/translate", json=GOOD), 503, "longer than the request timeout (0.3 s)")
        release.set()
        assert_good(client, reference)


def worker_pids() -> list[int]:
    return [child.pid for child in multiprocessing.active_children() if child.name.startswith("xformer-worker")]


def test_a_dying_worker_gives_500_then_the_next_request_works(trained_bundle_dir, reference, monkeypatch):
    texts = ["Guter Schuss!", "Zieh mich hoch!", "Gehe Tom suchen!", "Wir sind verärgert."] * 4  # two batches of MIN_BATCH
    with Translator.load(str(trained_bundle_dir), device="cpu", workers=2) as serve_translator:
        with TestClient(create_app(ServeSettings(), [serve_translator])) as client:
            first = client.post("/translate", json={"q": texts, "source": "de", "target": "en"})
            assert first.json() == {"translatedText": reference.translate(texts)}
            assert len(worker_pids()) == 2  # the call was cut into batches for both workers
            original = serve_translator.translate_nbest

            def kill_a_worker_then_translate(*args, **kwargs):
                os.kill(worker_pids()[0], signal.SIGKILL)  # mid-request: the job is being translated
                return original(*args, **kwargs)

            monkeypatch.setattr(serve_translator, "translate_nbest", kill_a_worker_then_translate)
            assert_error(client.post("/translate", json={"q": texts, "source": "de", "target": "en"}), 500, "killed by SIGKILL")
            monkeypatch.setattr(serve_translator, "translate_nbest", original)
            again = client.post("/translate", json={"q": texts, "source": "de", "target": "en"})
            assert again.json() == {"translatedText": reference.translate(texts)}  # a new pool took over
            assert len(worker_pids()) == 2

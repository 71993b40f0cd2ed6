"""format=html and POST /translate_file, through the documents feature.

The tests marked `needs_documents` check the real translated output of `xformer_cli.documents`
and are skipped only while that feature does not offer `translate_document` yet; the others run
always: the answer where it is missing, and the whole file path (upload, store, download by id,
batching) over a stand-in documents module."""

from __future__ import annotations

import types

import pytest
from fastapi.testclient import TestClient

import xformer_cli.documents
from xformer_cli.serve import documents_bridge
from xformer_cli.serve.app import create_app
from xformer_cli.serve.settings import ServeSettings

needs_documents = pytest.mark.skipif(
    not hasattr(xformer_cli.documents, "translate_document"), reason="xformer_cli.documents.translate_document does not exist yet"
)
SRT = "1\n00:00:01,000 --> 00:00:02,000\nGuter Schuss!\n\n2\n00:00:03,000 --> 00:00:04,000\nWir sind verärgert.\n".encode()


@pytest.fixture
def client(serve_translator):
    with TestClient(create_app(ServeSettings(), [serve_translator])) as test_client:
        yield test_client


@needs_documents
def test_html_goes_through_the_documents_path(client, reference):
    html = "<p>Guter <b>Schuss</b>!</p>"
    response = client.post("/translate", json={"q": html, "source": "de", "target": "en", "format": "html"})
    expected = xformer_cli.documents.translate_document(html.encode(), "html", reference, reference.config())
    assert response.status_code == 200 and response.json() == {"translatedText": expected.decode("utf-8")}


@needs_documents
def test_a_subtitle_file_is_translated_and_downloaded(client, reference):
    response = client.post("/translate_file", files={"file": ("film.srt", SRT)}, data={"source": "de", "target": "en"})
    assert response.status_code == 200, response.text
    url = response.json()["translatedFileUrl"]
    download = client.get(url)
    assert download.status_code == 200
    assert download.content == xformer_cli.documents.translate_document(SRT, "srt", reference, reference.config())
    assert "film.srt" in download.headers["content-disposition"]
    assert client.post("/translate_file", files={"file": ("x.pdf", b"%PDF")}, data={"source": "de", "target": "en"}).status_code == 400


def test_without_the_documents_feature_html_and_files_are_400(client, monkeypatch):
    monkeypatch.setattr(documents_bridge, "documents", lambda: None)
    html = client.post("/translate", json={"q": "<p>Hallo</p>", "source": "de", "target": "en", "format": "html"})
    assert html.status_code == 400 and html.json() == {"error": "format html is not available"}
    upload = client.post("/translate_file", files={"file": ("a.srt", SRT)}, data={"source": "de", "target": "en"})
    assert upload.status_code == 400 and upload.json() == {"error": "file translation is not available"}
    settings = client.get("/frontend/settings").json()
    assert settings["filesTranslation"] is False and settings["supportedFilesFormat"] == []


def stand_in() -> types.SimpleNamespace:
    """A documents module that translates each line of a text file through the translator given."""

    def format_for(filename, name):
        if not (filename or "").endswith(".txt"):
            raise documents_bridge.XformerError(f"unknown file format: {filename}")
        return "text"

    def translate_document(data, fmt, serve_translator, config):
        lines = data.decode("utf-8").splitlines()
        return "\n".join(n[0].text for n in serve_translator.translate_nbest(lines, config)).encode("utf-8")

    return types.SimpleNamespace(format_for=format_for, translate_document=translate_document)


def test_the_file_path_over_a_stand_in_documents_module(client, reference, serve_translator, monkeypatch):
    fake = stand_in()
    monkeypatch.setattr(documents_bridge, "documents", lambda: fake)
    lines = ["Guter Schuss!", "Wir sind verärgert."]
    response = client.post(
        "/translate_file", files={"file": ("brief.txt", "\n".join(lines).encode())}, data={"source": "auto", "target": "en"}
    )
    assert response.status_code == 200, response.text
    url = response.json()["translatedFileUrl"]
    assert url.startswith("http://testserver/download_file/")
    download = client.get(url)
    assert download.content.decode("utf-8") == "\n".join(reference.translate(lines))
    assert 'filename="brief.txt"' in download.headers["content-disposition"]
    bad = client.post("/translate_file", files={"file": ("x.pdf", b"%PDF")}, data={"source": "de", "target": "en"})
    assert bad.status_code == 400 and bad.json() == {"error": "unknown file format: x.pdf"}
    empty = client.post("/translate_file", files={"file": ("e.txt", b"")}, data={"source": "de", "target": "en"})
    assert empty.status_code == 400 and "empty file" in empty.json()["error"]
    html = client.post("/translate", json={"q": "Guter Schuss!", "source": "de", "target": "en", "format": "html"})
    assert html.json() == {"translatedText": reference.translate(["Guter Schuss!"])[0]}
    stats = client.app.state.xformer.models.models[0].batcher.stats
    assert stats.jobs >= 2  # the document's sentences went through the batcher

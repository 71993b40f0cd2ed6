"""Every route of the API through FastAPI's TestClient, with LibreTranslate's parameters and answer
shapes, the answers checked against the translator's own output."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from xformer_cli.serve.app import create_app
from xformer_cli.serve.settings import ServeSettings

GERMAN = ["Guter Schuss!", "Wir sind verärgert.", "Ich bin im Netz. Zieh mich hoch!"]


@pytest.fixture
def client(serve_translator):
    with TestClient(create_app(ServeSettings(), [serve_translator])) as test_client:
        yield test_client


def test_translate_json_string(client, reference):
    response = client.post("/translate", json={"q": GERMAN[0], "source": "de", "target": "en"})
    assert response.status_code == 200
    assert response.json() == {"translatedText": reference.translate([GERMAN[0]])[0]}


def test_translate_json_list_keeps_order(client, reference):
    response = client.post("/translate", json={"q": GERMAN, "source": "de", "target": "en"})
    assert response.status_code == 200
    assert response.json() == {"translatedText": reference.translate(GERMAN)}


def test_translate_form_data_and_repeated_q(client, reference):
    single = client.post("/translate", data={"q": GERMAN[1], "source": "de", "target": "en"})
    assert single.json() == {"translatedText": reference.translate([GERMAN[1]])[0]}
    repeated = client.post("/translate", data={"q": GERMAN[:2], "source": "de", "target": "en"})
    assert repeated.json() == {"translatedText": reference.translate(GERMAN[:2])}


def test_translate_form_normalises_line_endings(client, reference):
    response = client.post("/translate", data={"q": "Guter Schuss!\r\nWir sind verärgert.", "source": "de", "target": "en"})
    assert response.json()["translatedText"] == reference.translate(["Guter Schuss!\nWir sind verärgert."])[0]


def test_alternatives_are_the_other_nbest_entries(client, reference):
    response = client.post("/translate", json={"q": GERMAN[0], "source": "de", "target": "en", "alternatives": 2})
    body = response.json()
    config = reference.config(n_best=3)
    nbest = [t.text for t in reference.translate_nbest([GERMAN[0]], config)[0]]
    assert body["translatedText"] == nbest[0]
    assert body["alternatives"] == [text for text in dict.fromkeys(nbest[1:]) if text != nbest[0]]
    assert 1 <= len(body["alternatives"]) <= 2


def test_alternatives_for_a_list_are_a_list_of_lists(client):
    body = client.post("/translate", json={"q": GERMAN[:2], "source": "de", "target": "en", "alternatives": 1}).json()
    assert len(body["alternatives"]) == 2 and all(isinstance(a, list) for a in body["alternatives"])


def test_auto_source_reports_the_detected_language(client, reference):
    body = client.post("/translate", json={"q": "Ich bin im Netz und du bist es nicht.", "source": "auto", "target": "en"}).json()
    assert body["detectedLanguage"]["language"] == "de"
    assert body["detectedLanguage"]["confidence"] > 50
    assert body["translatedText"] == reference.translate(["Ich bin im Netz und du bist es nicht."])[0]
    listed = client.post("/translate", json={"q": GERMAN[:2], "source": "auto", "target": "en"}).json()
    assert [d["language"] for d in listed["detectedLanguage"]] == ["de", "de"]


def test_languages(client):
    assert client.get("/languages").json() == [
        {"code": "de", "name": "German", "targets": ["en"]},
        {"code": "en", "name": "English", "targets": []},
    ]


def test_detect_is_among_the_loaded_source_languages(client):
    german = client.post("/detect", data={"q": "Das ist der Hund und er ist nicht mein Hund."}).json()
    assert [entry["language"] for entry in german] == ["de"] and german[0]["confidence"] > 80
    english = client.post("/detect", json={"q": "This is the dog and it is not my dog."}).json()
    assert english[0]["language"] == "de" and english[0]["confidence"] < 20  # the only language read, and little evidence for it


def test_frontend_settings(client):
    body = client.get("/frontend/settings").json()
    assert body["charLimit"] == 5000 and body["keyRequired"] is False and body["apiKeys"] is False
    assert body["language"] == {"source": {"code": "de", "name": "German"}, "target": {"code": "en", "name": "English"}}
    assert body["models"] == [{"id": "tiny-bundle", "source": "de", "target": "en", "name": "tiny-bundle (de→en)"}]


def test_health_page_and_openapi_docs(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["batching"]["tiny-bundle"]["calls"] == 0
    page = client.get("/")
    assert page.status_code == 200 and 'id="source"' in page.text
    assert "http://" not in page.text.replace("http://www.w3.org", "")  # nothing fetched from the network
    assert client.get("/docs").status_code == 200
    assert "/translate" in client.get("/openapi.json").json()["paths"]


def test_several_models_each_add_their_pair(trained_bundle_dir, reference):
    from xformer_cli.decoding.translator import Translator

    german = Translator.load(str(trained_bundle_dir), device="cpu")
    reverse = Translator.load(str(trained_bundle_dir), device="cpu")
    reverse.bundle.src_lang, reverse.bundle.tgt_lang = "en", "de"  # the same weights, served as another pair
    twin = Translator.load(str(trained_bundle_dir), device="cpu")
    with TestClient(create_app(ServeSettings(), [german, reverse, twin])) as client:
        languages = {entry["code"]: entry["targets"] for entry in client.get("/languages").json()}
        assert languages == {"de": ["en"], "en": ["de"]}
        ids = [model["id"] for model in client.get("/frontend/settings").json()["models"]]
        assert ids == ["tiny-bundle", "tiny-bundle-2", "tiny-bundle-3"]
        body = client.post("/translate", json={"q": "Wir sind verärgert.", "source": "en", "target": "de"}).json()
        assert body == {"translatedText": reference.translate(["Wir sind verärgert."])[0]}
        by_id = client.post("/translate", json={"q": "Guter Schuss!", "source": "de", "target": "en", "model": "tiny-bundle-3"})
        assert by_id.json() == {"translatedText": reference.translate(["Guter Schuss!"])[0]}
        wrong = client.post("/translate", json={"q": "x", "source": "de", "target": "en", "model": "tiny-bundle-2"})
        assert wrong.status_code == 400 and "translates en to de" in wrong.json()["error"]
        auto = client.post("/translate", json={"q": "Wir sind nicht im Netz.", "source": "auto", "target": "de"}).json()
        assert auto["detectedLanguage"]["language"] == "en"  # the only language translated into German

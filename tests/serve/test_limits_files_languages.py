"""The small parts on their own: the rate limit's window, key comparison and key files, the
file store's names and time to live, and language detection."""

from __future__ import annotations

import pytest

from xformer_cli.errors import ConfigError
from xformer_cli.serve.api_errors import ApiError
from xformer_cli.serve.files import FileStore, download_name
from xformer_cli.serve.languages import detect
from xformer_cli.serve.limits import Access, RateLimiter, read_keys
from xformer_cli.serve.settings import ServeSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limit_is_a_sliding_minute_per_caller():
    clock = Clock()
    limiter = RateLimiter(2, clock)
    assert limiter.allow("a") and limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")
    clock.now += 59.9
    assert not limiter.allow("a")
    clock.now += 0.2
    assert limiter.allow("a")
    clock.now += 120
    limiter.allow("c")
    assert set(limiter._seen) == {"c"}  # quiet callers are forgotten


def test_no_rate_limit():
    limiter = RateLimiter(-1)
    assert all(limiter.allow("a") for _ in range(1000))


def test_key_checks():
    access = Access(ServeSettings(api_keys=frozenset({"alpha", "beta"}), require_api_key=True))
    assert access.valid("alpha") and access.valid("beta")
    assert not access.valid("alph") and not access.valid("alphaa") and not access.valid("")
    with pytest.raises(ApiError) as missing:
        access.check(None, "1.2.3.4")
    assert missing.value.status == 403
    access.check("beta", "1.2.3.4")


def test_key_file(tmp_path):
    path = tmp_path / "keys"
    path.write_text("# operators\nalpha\n\n  beta  \n", encoding="utf-8")
    assert read_keys(path) == frozenset({"alpha", "beta"})
    with pytest.raises(ConfigError, match="cannot read the API-key file"):
        read_keys(tmp_path / "missing")


def test_files_are_stored_under_ids_and_expire():
    clock = Clock()
    store = FileStore(ttl=10, clock=clock)
    try:
        file_id = store.store(b"Hallo", b"Hello", "../../etc/Untertitel \u00fcber.srt")
        assert sorted(p.name for p in store.folder.iterdir()) == [file_id, f"{file_id}.source"]
        assert store.fetch(file_id) == ("Untertitel \u00fcber.srt", b"Hello")
        assert store.fetch("../" + file_id) is None and store.fetch(file_id.upper()) is None
        clock.now += 10
        assert store.fetch(file_id) is None
        assert list(store.folder.iterdir()) == []
    finally:
        store.close()
    assert not store.folder.exists()


@pytest.mark.parametrize(
    "given, safe", [("a/b/c.srt", "c.srt"), ("..", "file"), (None, "file"), ("C:\\x\\y.po", "y.po"), ("a<b>.md", "a_b_.md")]
)
def test_download_names_are_safe(given, safe):
    assert download_name(given) == safe


def test_detection_among_candidates():
    assert detect("Der Hund ist nicht im Haus.", ["de"])[0].language == "de"
    both = detect("The dog is not in the house.", ["de", "en"])
    assert [d.language for d in both] == ["en", "de"] and both[0].confidence > 80
    assert detect("Straße", ["en", "de"])[0].language == "de"  # a letter only German uses
    nothing = detect("Tom", ["en", "de"])
    assert [(d.language, d.confidence) for d in nothing] == [("en", 0.0), ("de", 0.0)]  # no evidence: load order
    assert detect("Le chien", ["xx"])[0].confidence == 0.0  # a language without a word list

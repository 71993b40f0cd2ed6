"""The server's settings: one frozen dataclass, filled from the flags of `xformer serve`.

A limit of -1 means no limit, as in LibreTranslate's own flags.
"""

from __future__ import annotations

from dataclasses import dataclass

NO_LIMIT = -1


@dataclass(frozen=True)
class ServeSettings:
    """Where the server listens, how it batches, and what it allows."""

    host: str = "127.0.0.1"  # loopback only: other machines reach it only when asked for (--host 0.0.0.0)
    port: int = 5000  # LibreTranslate's port, so its clients' default URL works
    batch_wait_ms: float = 5.0  # how long the batcher gathers the sentences of other requests before translating
    char_limit: int = 5000  # characters per request (all items of a list together); -1: no limit
    batch_limit: int = 128  # items per list in q; -1: no limit
    req_limit: int = NO_LIMIT  # requests per minute per API key (or per address without one); -1: no limit
    api_keys: frozenset[str] = frozenset()  # the keys of --api-keys FILE; a key given must be one of them
    require_api_key: bool = False  # refuse requests without a valid key (403)
    max_body_bytes: int = 10_000_000  # request bodies larger than this get 413 (uploaded files included)
    request_timeout: float = 60.0  # seconds a request may wait for its translation before it gets 503
    file_ttl: float = 600.0  # seconds a translated file stays downloadable before it is deleted
    frontend_timeout_ms: int = 500  # the page's debounce: how long after the last key press it translates
    max_alternatives: int = 8  # at most this many alternatives (n-best beyond the first) per text

    @property
    def keys_enabled(self) -> bool:
        """True when an API-key file was given (LibreTranslate's `apiKeys` setting)."""
        return bool(self.api_keys) or self.require_api_key

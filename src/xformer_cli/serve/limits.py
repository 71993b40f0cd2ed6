"""API keys and the request rate limit.

Keys come from a file, one per line (blank lines and lines starting with # skipped). A request's
key is compared with every key in constant time: both are hashed with SHA-256 and the digests
compared with `hmac.compare_digest`, and no comparison stops early, so neither the time taken
nor its length tells how much of a key was right. A key that is given must be valid (403), and
with `require_api_key` one must be given (403).

The rate limit counts requests per minute in a sliding window, per key where one is given, else
per client address; past the limit a request gets 429.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from xformer_cli.errors import ConfigError
from xformer_cli.serve.api_errors import ApiError
from xformer_cli.serve.settings import NO_LIMIT, ServeSettings

WINDOW = 60.0  # seconds: the rate limit is per minute


def read_keys(path: Path) -> frozenset[str]:
    """The keys of an API-key file: one per line; blank lines and # comments skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read the API-key file {path}: {getattr(err, 'strerror', None) or err}") from None
    keys = frozenset(line.strip() for line in lines if line.strip() and not line.strip().startswith("#"))
    if not keys:
        raise ConfigError(f"the API-key file {path} holds no key")
    return keys


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class RateLimiter:
    """At most `per_minute` requests per caller in any 60 seconds (-1: no limit)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}  # caller -> times of its requests within the window
        self._lock = threading.Lock()

    def allow(self, caller: str) -> bool:
        """Count a request of `caller`; False if it is one too many."""
        if self.per_minute == NO_LIMIT:
            return True
        now = self.clock()
        with self._lock:
            for name in [name for name, times in self._seen.items() if times[-1] <= now - WINDOW]:
                del self._seen[name]  # callers quiet for a minute are forgotten: memory stays bounded
            times = self._seen.setdefault(caller, deque())
            while times and times[0] <= now - WINDOW:
                times.popleft()
            if len(times) >= self.per_minute:
                return False
            times.append(now)
            return True


class Access:
    """The key check and the rate limit of the routes that translate or detect."""

    def __init__(self, settings: ServeSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._digests = [digest(key) for key in sorted(settings.api_keys)]
        self.rate = RateLimiter(settings.req_limit, clock)

    def valid(self, key: str) -> bool:
        """True if `key` is one of the keys, compared with all of them in constant time."""
        given = digest(key)
        found = False
        for known in self._digests:
            found |= hmac.compare_digest(given, known)
        return found

    def check(self, api_key: str | None, address: str) -> None:
        """An ApiError (403 or 429) unless the request may go on."""
        if api_key:
            if not self.valid(api_key):
                raise ApiError(403, "Invalid API key")
        elif self.settings.require_api_key:
            raise ApiError(403, "Please contact the server operator to get an API key")
        caller = f"key {api_key}" if api_key else f"address {address}"
        if not self.rate.allow(caller):
            raise ApiError(429, f"Slowdown: {self.settings.req_limit} per 1 minute")

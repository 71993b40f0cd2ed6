"""Uploaded files and their translations: a temporary folder, generated names, a time to live.

Each upload gets a random id (uuid4, 32 hex digits). The upload is kept as `<id>.source` and its
translation as `<id>`, in a folder made by `tempfile.mkdtemp` (readable by its owner only); the
name the client gave is kept in memory for the download's Content-Disposition only, never used as
a path. A translation is downloadable by its id alone (GET /download_file/<id>), until `ttl`
seconds after it was made: then both files are deleted (at the next store, fetch or sweep).
`close()` deletes the folder.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FILE_ID = re.compile(r"[0-9a-f]{32}")
SAFE_NAME = re.compile(r"[^\w.\- ]+", re.UNICODE)


@dataclass(frozen=True)
class StoredFile:
    """A translated file: its download name and when it is deleted (clock seconds)."""

    name: str
    expires: float


def download_name(filename: str | None) -> str:
    """The client's file name reduced to a safe base name (no folders, no odd characters)."""
    base = Path((filename or "file").replace("\\", "/")).name
    return SAFE_NAME.sub("_", base).strip(". ") or "file"


class FileStore:
    """The uploaded files and translations of one server."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self.folder = Path(tempfile.mkdtemp(prefix="xformer-serve-"))
        self._files: dict[str, StoredFile] = {}
        self._lock = threading.Lock()

    def store(self, upload: bytes, translation: bytes, filename: str | None) -> str:
        """Keep an upload and its translation; the id to download the translation by."""
        self.sweep()
        file_id = uuid.uuid4().hex
        (self.folder / f"{file_id}.source").write_bytes(upload)
        (self.folder / file_id).write_bytes(translation)
        with self._lock:
            self._files[file_id] = StoredFile(download_name(filename), self.clock() + self.ttl)
        return file_id

    def fetch(self, file_id: str) -> tuple[str, bytes] | None:
        """(download name, bytes) of a translation not yet expired, else None."""
        self.sweep()
        if not FILE_ID.fullmatch(file_id):
            return None
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            return None
        return stored.name, (self.folder / file_id).read_bytes()

    def sweep(self) -> int:
        """Delete the files whose time is up; how many translations were deleted."""
        now = self.clock()
        with self._lock:
            expired = [file_id for file_id, stored in self._files.items() if stored.expires <= now]
            for file_id in expired:
                del self._files[file_id]
        for file_id in expired:
            for path in (self.folder / file_id, self.folder / f"{file_id}.source"):
                path.unlink(missing_ok=True)
        return len(expired)

    def close(self) -> None:
        """Delete the folder and everything in it."""
        with self._lock:
            self._files.clear()
        shutil.rmtree(self.folder, ignore_errors=True)

"""The one door to the documents feature (`xformer_cli.documents`): HTML text and uploaded files.

`documents.translate_document(data, fmt, translator, config)` translates a file with its structure
kept, and `documents.format_for(filename, name)` names a file's format (an XformerError for one
it does not know). They are imported when first needed; where they are missing, format=html and
POST /translate_file answer 400 and /frontend/settings lists no file formats.

The translator handed to them is a `BatchedTranslator`: its `translate_nbest` goes through the
model's batcher, so a document's sentences are batched with those of every other request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from xformer_cli.config import DecodeConfig
from xformer_cli.decoding.translator import LineWarning, Translation
from xformer_cli.errors import XformerError
from xformer_cli.serve.api_errors import bad_request
from xformer_cli.serve.models import LoadedModel

# The file extensions of the documents feature's formats, as /frontend/settings lists them.
FILE_EXTENSIONS = (".txt", ".srt", ".vtt", ".md", ".html", ".htm", ".docx", ".po")


def documents() -> ModuleType | None:
    """The documents module if it offers `translate_document` and `format_for`, else None."""
    try:
        from xformer_cli import documents as module
    except ImportError:
        return None
    return module if hasattr(module, "translate_document") and hasattr(module, "format_for") else None


def available() -> bool:
    """True where HTML text and files can be translated."""
    return documents() is not None


class BatchedTranslator:
    """A loaded model's translator whose `translate_nbest` waits on the model's batcher."""

    def __init__(self, model: LoadedModel, timeout: float) -> None:
        self._model = model
        self._timeout = timeout

    def translate_nbest(
        self, texts: Sequence[str], config: DecodeConfig, warn: Callable[[LineWarning], None] | None = None
    ) -> list[list[Translation]]:
        """As `Translator.translate_nbest`, batched with the other requests in flight."""
        return self._model.batcher.submit(texts, config).result(timeout=self._timeout)

    def translate(self, texts: Sequence[str], beam_size: int | None = None, **options: Any) -> list[str]:
        """As `Translator.translate`, batched."""
        config = self._model.translator.config(beam_size=beam_size, **options)
        return [nbest[0].text for nbest in self.translate_nbest(texts, config)]

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._model.translator, attribute)  # bundle, config, tokenizer ...


def file_format(filename: str | None, name: str | None = None) -> str:
    """The documents feature's format name for an upload (400 where it has none)."""
    module = documents()
    if module is None:
        raise bad_request("file translation is not available")
    try:
        return module.format_for(filename, name)
    except XformerError as err:
        raise bad_request(str(err)) from None


def translate_document(data: bytes, fmt: str, model: LoadedModel, config: DecodeConfig, timeout: float) -> bytes:
    """A document translated with its structure kept (blocking: run it on a thread)."""
    module = documents()
    if module is None:
        raise bad_request(f"format {fmt} is not available")
    return module.translate_document(data, fmt, BatchedTranslator(model, timeout), config)

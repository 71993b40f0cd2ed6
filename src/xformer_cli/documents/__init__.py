"""Files with structure translated with their structure kept: subtitles (SubRip, WebVTT),
Markdown, HTML, Word and gettext catalogs, besides plain text lines.

>>> translate_file(Path("talk.srt"), Path("talk.en.srt"), Translator.load("models/de-en-general"))

Each format reads its file into blocks of marked text (`inline.py`), all blocks of the file are
translated together (`blocks.py`, one batched search, inline tags carried by the model's
attention, `alignment.py`), and the format writes its file back around the translations. The
format modules and their parsers (markdown-it-py, python-docx, polib: the extra `documents`) are
imported only when a file of theirs is translated.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from xformer_cli.errors import DocumentError

if TYPE_CHECKING:
    from xformer_cli.config import DecodeConfig
    from xformer_cli.decoding.translator import Translator

FORMATS = {  # format name -> the file name endings that mean it
    "text": (".txt",),
    "srt": (".srt",),
    "vtt": (".vtt",),
    "markdown": (".md", ".markdown"),
    "html": (".html", ".htm", ".xhtml"),
    "docx": (".docx",),
    "po": (".po", ".pot"),
}
# Files people try that xformer cannot read: named in the error rather than read as lines.
UNSUPPORTED = (".doc", ".odt", ".pptx", ".ppt", ".xlsx", ".xls", ".pdf", ".rtf", ".epub", ".zip", ".ass", ".ssa", ".sub", ".xliff", ".xlf")


def format_names() -> str:
    return ", ".join(f"{name} ({' '.join(ends)})" for name, ends in FORMATS.items())


def format_for(filename: str | None, name: str | None = None) -> str:
    """The format of a file: `name` when given (checked), else by the file name's ending; a file
    of any other ending is text lines (`xformer translate -i news.de`). A DocumentError for an
    unknown format name or a kind of file that no format reads."""
    if name is not None:
        if name not in FORMATS:
            raise DocumentError(f"unknown format {name!r}; the formats are: {format_names()}")
        return name
    suffix = Path(filename).suffix.lower() if filename else ""
    for fmt, endings in FORMATS.items():
        if suffix in endings:
            return fmt
    if suffix in UNSUPPORTED:
        raise DocumentError(f"{filename}: xformer cannot translate {suffix} files; the formats are: {format_names()}")
    return "text"


def translate_document(data: bytes, fmt: str, translator: "Translator", config: "DecodeConfig", name: str = "<input>") -> bytes:
    """A whole file's bytes translated as format `fmt` (see FORMATS); a DocumentError, naming
    `name`, for input that is not of the format."""
    format_for(None, fmt)
    if fmt == "text":
        from xformer_cli.documents.text import translate_text as translate
    elif fmt in ("srt", "vtt"):
        from xformer_cli.documents.subtitles import translate_subtitles

        return translate_subtitles(data, translator, config, name, vtt=fmt == "vtt")
    elif fmt == "markdown":
        from xformer_cli.documents.markdown import translate_markdown as translate
    elif fmt == "html":
        from xformer_cli.documents.html import translate_html as translate
    elif fmt == "docx":
        from xformer_cli.documents.docx import translate_docx as translate
    else:
        from xformer_cli.documents.gettext import translate_po as translate
    return translate(data, translator, config, name)


def translate_file(source: Path, out: Path, translator: "Translator", fmt: str | None = None, config: "DecodeConfig | None" = None) -> None:
    """Translate the file `source` into `out`, written whole or not at all (a temporary file in
    the same folder, renamed into place when complete). The format is `fmt`, else `source`'s ending."""
    fmt = format_for(str(source), fmt)
    try:
        data = Path(source).read_bytes()
    except OSError as err:
        raise DocumentError(f"cannot read {source}: {err.strerror}") from None
    result = translate_document(data, fmt, translator, config or translator.config(), str(source))
    write_atomically(Path(out), result)


def write_atomically(path: Path, data: bytes) -> None:
    """`data` into `path` through a temporary file renamed into place: readers see the old file
    or the whole new one, and an interrupted write leaves no half-written file."""
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    except OSError as err:
        raise DocumentError(f"cannot write {path}: {err.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

"""Request parameters as LibreTranslate reads them: a JSON object, or form data (URL-encoded or
multipart), with the query string as a fallback; then checked into a `TranslateRequest`.

Every problem is a 400 naming the parameter ("Invalid request: missing q parameter").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from xformer_cli.serve.api_errors import bad_request
from xformer_cli.serve.settings import NO_LIMIT, ServeSettings

FORMATS = ("text", "html")


async def read_params(request: Any) -> dict[str, Any]:
    """The request's parameters: its JSON object, else its form fields over its query string.
    A form field given several times (q=a&q=b) is a list."""
    params: dict[str, Any] = dict(request.query_params)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            data = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise bad_request("Invalid request: malformed JSON body") from None
        if not isinstance(data, dict):
            raise bad_request("Invalid request: the JSON body must be an object")
        return {**params, **data}
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except Exception as err:  # python-multipart's parse errors, Starlette's limits
            raise bad_request(f"Invalid request: malformed form data ({err})") from None
        for key in form.keys():
            values = form.getlist(key)
            params[key] = values if len(values) > 1 else values[0]
    return params


def text_param(params: dict[str, Any], key: str, required: bool = True) -> str | None:
    """A string parameter (None where it is optional and missing or empty)."""
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise bad_request(f"Invalid request: missing {key} parameter")
        return None
    if not isinstance(value, str):
        raise bad_request(f"Invalid request: {key} must be a string (got {type(value).__name__})")
    return value


def texts_param(params: dict[str, Any], from_form: bool) -> tuple[list[str], bool]:
    """q as (texts, whether it was a list); form text with its line endings made \\n."""
    q = params.get("q")
    if q is None or q == "" or q == []:
        raise bad_request("Invalid request: missing q parameter")
    batch = isinstance(q, list)
    texts = q if batch else [q]
    if not all(isinstance(text, str) for text in texts):
        raise bad_request("Invalid request: q must be a string or a list of strings")
    if from_form:
        texts = ["\n".join(text.splitlines()) for text in texts]
    return texts, batch


def int_param(params: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    """A whole number between `low` and `high` (a form's digits included)."""
    value = params.get(key, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if value in ("", None):
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"Invalid request: {key} must be a whole number (got {value!r})")
    if not low <= value <= high:
        raise bad_request(f"Invalid request: {key} must be between {low} and {high} (got {value})")
    return value


@dataclass(frozen=True)
class TranslateRequest:
    """A checked POST /translate."""

    texts: list[str]  # q as a list (one item where q was a string)
    batch: bool  # q was a list: the answer's fields are lists too
    source: str  # a language code, or auto
    target: str
    format: str  # text or html
    alternatives: int  # other translations wanted besides the best
    api_key: str | None
    model: str | None  # xformer's own parameter: a model id, where several serve one pair


def translate_request(params: dict[str, Any], settings: ServeSettings, from_form: bool = False) -> TranslateRequest:
    """The parameters of POST /translate, checked against the limits."""
    texts, batch = texts_param(params, from_form)
    source, target = text_param(params, "source"), text_param(params, "target")
    text_format = text_param(params, "format", required=False) or "text"
    if text_format not in FORMATS:
        raise bad_request(f"{text_format} format is not supported")
    if batch and settings.batch_limit != NO_LIMIT and len(texts) > settings.batch_limit:
        raise bad_request(f"Invalid request: request ({len(texts)}) exceeds text limit ({settings.batch_limit})")
    chars = sum(len(text) for text in texts)
    if settings.char_limit != NO_LIMIT and chars > settings.char_limit:
        raise bad_request(f"Invalid request: request ({chars}) exceeds text limit ({settings.char_limit})")
    return TranslateRequest(
        texts=texts,
        batch=batch,
        source=source,
        target=target,
        format=text_format,
        alternatives=int_param(params, "alternatives", 0, 0, settings.max_alternatives),
        api_key=text_param(params, "api_key", required=False),
        model=text_param(params, "model", required=False),
    )

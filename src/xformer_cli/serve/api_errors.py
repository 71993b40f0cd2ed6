"""The server's errors: an `XformerError` that knows its HTTP status, answered as {"error": "..."}."""

from __future__ import annotations

from xformer_cli.errors import XformerError


class ApiError(XformerError):
    """A request the server refuses: `status` is the HTTP status, the message the JSON `error`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def bad_request(message: str) -> ApiError:
    """A 400: a missing or bad parameter, an unsupported pair or format, a limit passed."""
    return ApiError(400, message)

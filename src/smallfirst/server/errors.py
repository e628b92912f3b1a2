"""The one place where errors become HTTP: OpenAI's error body, the right status, no traces."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from smallfirst.errors import INTERNAL_ERROR_MESSAGE, InvalidRequest, SmallfirstError
from smallfirst.server.responses import JSONResponse

log = logging.getLogger("smallfirst.server")


def error_body(error: SmallfirstError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": error.param,
            "code": error.code,
        }
    }


REQUEST_ID_HEADER = "x-request-id"  # as OpenAI's; the openai SDK shows it as `_request_id`


def error_response(error: SmallfirstError, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if error.retry_after_s is not None:
        headers["retry-after"] = str(error.retry_after_s)
    if error.request_id is not None:
        headers[REQUEST_ID_HEADER] = error.request_id
    return JSONResponse(error_body(error), status_code=error.status, headers=headers or None)


def validation_error(exc: ValidationError) -> InvalidRequest:
    """Pydantic's complaint -> one readable 400 naming the field, like OpenAI's."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    if first["type"] == "extra_forbidden":
        return InvalidRequest(f"Unrecognized request argument supplied: {where}", param=where)
    if first["type"] == "json_invalid":
        return InvalidRequest("We could not parse the JSON body of your request.")
    message = first["msg"].removeprefix("Value error, ")
    return InvalidRequest(
        f"Invalid value for '{where}': {message}" if where else message, param=where or None
    )


async def handle_smallfirst_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SmallfirstError)
    return error_response(exc)


async def handle_unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return error_response(SmallfirstError(INTERNAL_ERROR_MESSAGE))


async def handle_http_exception(_: Request, exc: Exception) -> JSONResponse:
    from starlette.exceptions import HTTPException

    assert isinstance(exc, HTTPException)
    error = InvalidRequest(str(exc.detail))
    error.status = exc.status_code
    if exc.status_code == 404:
        error.message = "Unknown request URL. See the API reference (/v1/...)."
        error.code = "unknown_url"
    return error_response(error)

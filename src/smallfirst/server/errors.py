"""The one place where errors become HTTP: OpenAI's error body, the right status, no traces."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request

from smallfirst.api_model import FieldError
from smallfirst.errors import InvalidRequest, SmallfirstError, json_kind, served
from smallfirst.server.responses import JSONResponse
from smallfirst.surrogates import may_hold_surrogates, surrogate_path


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


READ_ERRORS = 100


def validation_error(
    exc: ValidationError, *, within: str = "", rename: Rename | None = None
) -> InvalidRequest:
    """Pydantic's complaint -> one readable 400 naming the field, like OpenAI's. `within`:
    where the validated object sits in the body ("tools.2"); `rename`: the body's names for
    a path in the model validated (a Responses request checked as the chat request it makes).
    Of a union's complaints (one per alternative), the one that got furthest is told."""
    # A body of thousands of bad items has an error each: the first ones say what is wrong
    # (reading all of them took seconds per megabyte, with every other request waiting).
    errors = exc.errors(include_url=False)[:READ_ERRORS]
    # the furthest, and there a wrong value over a wrong type (another union member's)
    chosen = max(errors, key=lambda e: (len(_field_path(e)), e["type"] not in _JSON_TYPES))
    path = _field_path(chosen)
    named = rename(path) if rename is not None and path else path
    where = ".".join(str(part) for part in [*filter(None, [within]), *named])
    if chosen["type"] == "extra_forbidden":
        return unknown_field(where)
    if chosen["type"] == "missing":  # OpenAI's words and code
        return InvalidRequest(
            f"Missing required parameter: '{where}'.",
            param=where,
            code="missing_required_parameter",
        )
    if chosen["type"] == "json_invalid":  # pydantic's reason: "EOF while parsing a value at ..."
        reason = str(chosen.get("ctx", {}).get("error", "")).strip()
        reason = reason.replace(_NOT_UTF8, "bytes that are not UTF-8")
        return InvalidRequest(
            "We could not parse the JSON body of your request" + (f": {reason}." if reason else ".")
        )
    wanted = [
        _JSON_TYPES[e["type"]]
        for e in errors
        if e["type"] in _JSON_TYPES and _field_path(e) == path
    ]
    if chosen["type"] in _JSON_TYPES:
        expected = " or ".join(dict.fromkeys(wanted))
        field = f"'{where}'" if where else "the request body"  # a JSON array, string or null
        return InvalidRequest(
            f"Invalid type for {field}: expected {expected}, but got"
            f" {json_kind(chosen['input'])} instead.",
            param=where or None,
        )
    message = chosen["msg"].removeprefix("Value error, ")
    cause = (chosen.get("ctx") or {}).get("error")
    return InvalidRequest(
        f"Invalid value for '{where}': {message}" if where else message,
        param=where or None,
        code=cause.code if isinstance(cause, FieldError) else None,
    )


def unknown_field(where: str) -> InvalidRequest:
    """The 400 for a field OpenAI's API does not have, at `where` ("input.0.bogus")."""
    return InvalidRequest(f"Unrecognized request argument supplied: {where}", param=where)


UTF8_BOM = b"\xef\xbb\xbf"
_NOT_UTF8 = "invalid unicode code point"  # pydantic's parser, of bytes that are not UTF-8


def lone_surrogate_error(exc: ValidationError, body: bytes) -> InvalidRequest | None:
    """The 400 for a body whose only fault is half a UTF-16 surrogate pair escaped in a
    string (`"\\ud800"`), naming its field: pydantic's parser says "unexpected end of hex
    escape" at a column. It is JSON (Python's parser reads it), but no character: such text
    could be neither tokenized nor logged nor sent on."""
    if exc.errors()[0]["type"] != "json_invalid" or not may_hold_surrogates(body):
        return None
    try:
        path = surrogate_path(json.loads(body))
    except (ValueError, RecursionError):  # not JSON for another reason as well
        return None
    if path is None:
        return None
    where = ".".join(str(part) for part in path)
    problem = (
        "holds half a UTF-16 surrogate pair (an escape from \\ud800 to \\udfff without its"
        " other half), which is no Unicode character; send text as UTF-8, or escape a"
        " character beyond U+FFFF as a whole pair"
    )
    if not where:
        return InvalidRequest(f"The request body {problem}.")
    return InvalidRequest(f"Invalid value for '{where}': it {problem}.", param=where)


Rename = Callable[[list[str | int]], list[str | int]]
# pydantic's type errors -> the JSON type the field takes
_JSON_TYPES = {
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
    "string_type": "a string",
    "list_type": "an array",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}
# A step of pydantic's error location that is not a field: the alternative of a union it
# tried ("str", "list[str]", "literal['auto','none']", a model's class name).
_NOT_A_FIELD = re.compile(r"^(str|int|float|bool|none|list|dict)$|[\[A-Z-]")


def _field_path(error: Mapping[str, Any]) -> list[str | int]:
    path = [p for p in error["loc"] if isinstance(p, int) or not _NOT_A_FIELD.search(p)]
    cause = (error.get("ctx") or {}).get("error")
    if not isinstance(cause, FieldError):
        return path
    return [*path, *(int(p) if p.isdigit() else p for p in cause.param.split("."))]


async def handle_smallfirst_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SmallfirstError)
    return error_response(exc)


async def handle_unexpected(_: Request, exc: Exception) -> JSONResponse:
    return error_response(served(exc))  # logs the trace, tells the client nothing of it


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    from starlette.exceptions import HTTPException

    assert isinstance(exc, HTTPException)
    error = InvalidRequest(str(exc.detail))
    error.status = exc.status_code
    if exc.status_code == 404:  # OpenAI's words: the URL shown, so that a typo shows
        error.message = f"Invalid URL ({request.method} {request.url.path})."
        error.code = "unknown_url"
    if exc.status_code == 405:  # OpenAI's words; `allow` (in exc.headers) names the methods
        error.message = f"Invalid method for URL ({request.method} {request.url.path})."
        error.code = "method_not_allowed"
    return error_response(error, dict(exc.headers or {}))

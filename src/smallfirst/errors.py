"""Typed errors. Each carries its HTTP status and OpenAI error type; the mapping to an HTTP
response lives in exactly one place, `smallfirst.server.errors`."""

from __future__ import annotations

import logging
from typing import overload

INTERNAL_ERROR_MESSAGE = "The server had an error while processing your request."
# Logged (never sent) when the client went away before its answer was done; nginx's code.
CLIENT_CLOSED_REQUEST = 499


def json_kind(value: object) -> str:
    """A JSON value's type as an error message names it (OpenAI's words)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


class SmallfirstError(Exception):
    """Base class: a message safe to show a client, never a stack trace."""

    status: int = 500
    error_type: str = "server_error"
    code: str | None = None
    retry_after_s: int | None = None  # sent as `retry-after`; the openai SDK waits that long
    request_id: str | None = None  # the request log's id for it, sent as `x-request-id`
    # The message without an upstream's own words, which may quote the request (its values
    # even, where the policy let them go): set on errors that quote an upstream.
    summary: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    @property
    def shareable_message(self) -> str:
        """What may be told beyond the client whose request failed: the route reason in the
        request log, a skipped model's description in other clients' errors and on the
        dashboard."""
        return self.summary or self.message


@overload
def served(error: Exception) -> SmallfirstError: ...
@overload
def served(error: BaseException) -> SmallfirstError | None: ...
def served(error: BaseException) -> SmallfirstError | None:
    """What a client is told of `error`: itself if it is ours; for a bug, a 500 that says
    nothing of it (the trace goes to the log); None when the request was cancelled."""
    if isinstance(error, SmallfirstError):
        return error
    if not isinstance(error, Exception):
        return None
    logging.getLogger("smallfirst").error("unhandled error", exc_info=error)
    return SmallfirstError(INTERNAL_ERROR_MESSAGE)


class InvalidRequest(SmallfirstError):
    status = 400
    error_type = "invalid_request_error"


class BeyondThisModel(InvalidRequest):
    """A request beyond the model asked to answer it (its context, its grammar), not a wrong
    one: `auto` may still send it to a stronger model."""

    def beyond(self, model_id: str) -> str:
        """Why `model_id` could not take it, for the route reason."""
        return f"{model_id} cannot take the request"


class ContextLengthExceeded(BeyondThisModel):
    code = "context_length_exceeded"

    def beyond(self, model_id: str) -> str:
        return f"the prompt does not fit {model_id}"

    @classmethod
    def told(
        cls, context: int, prompt: int, completion: int, *, completion_text: str, param: str
    ) -> ContextLengthExceeded:
        """OpenAI's wording: `completion` tokens asked for beside a `prompt` of that many."""
        return cls(
            f"This model's maximum context length is {context} tokens. However, you requested "
            f"{prompt + completion} tokens ({prompt} in the prompt, {completion_text}). Please "
            "reduce the length of the prompt or the completion.",
            param=param,
        )

    @classmethod
    def at_least(cls, context: int, fewest: int, *, param: str) -> ContextLengthExceeded:
        """A prompt refused before it was tokenized: `fewest` is the least it can be."""
        return cls(
            f"This model's maximum context length is {context} tokens. However, your prompt is"
            f" at least {fewest} tokens long. Please reduce the length of the prompt.",
            param=param,
        )


class BeyondLocalGrammar(BeyondThisModel):
    """A schema (response format, tool parameters) that a local model's grammar cannot
    express, though an upstream that enforces schemas itself may take it."""

    def beyond(self, model_id: str) -> str:
        return f"{model_id}'s grammar cannot express the schema"


class PolicyBlocked(InvalidRequest):
    code = "pii_blocked"


class BatchStopped(SmallfirstError):
    """A batch's prompt left unanswered because another of its prompts failed: logged with
    the status the client got for the batch (never sent itself)."""

    code = "batch_stopped"

    def __init__(self, position: int, cause: SmallfirstError) -> None:
        super().__init__(f"prompt {position} of the batch failed: {cause.message}")
        self.status = cause.status


class ClientLeft(SmallfirstError):
    """The client closed the connection before its request was read (logged, never sent)."""

    status = CLIENT_CLOSED_REQUEST
    error_type = "invalid_request_error"
    code = "client_closed_request"


class Unauthorized(SmallfirstError):
    status = 401
    error_type = "invalid_request_error"  # OpenAI's type for a missing or wrong key
    code = "invalid_api_key"


class Forbidden(SmallfirstError):
    """A request a browser made on a page's behalf that the page may not make."""

    status = 403
    error_type = "invalid_request_error"
    code = "forbidden"


class ModelNotFound(SmallfirstError):
    status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"

    @classmethod
    def named(cls, model_id: str) -> ModelNotFound:
        """A request named a model this gateway does not serve."""
        return cls(f"The model `{model_id}` does not exist; see GET /v1/models", param="model")


class NotStored(SmallfirstError):
    status = 404
    error_type = "invalid_request_error"
    code = "not_found"


class UnsupportedEncoding(InvalidRequest):
    status = 415
    code = "unsupported_content_encoding"


class RequestTooLarge(SmallfirstError):
    status = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class RequestHeadTooLarge(SmallfirstError):
    status = 431
    error_type = "invalid_request_error"
    code = "request_header_fields_too_large"


class BudgetSpent(SmallfirstError):
    """A remote model asked for by id while the daily budget is spent (OpenAI's status and
    type for a spent quota)."""

    status = 429
    error_type = "insufficient_quota"
    code = "insufficient_quota"
    spent = ""  # which budget ("daily budget $5 spent"), for route reasons

    @classmethod
    def remote(cls, spent: str, model_id: str) -> BudgetSpent:
        """`spent`: which budget (`SpendTracker.exhausted`)."""
        error = cls(
            f"{spent}: model {model_id!r} is remote, and remote tiers are off limits until the"
            " UTC day ends; ask a local model, or `auto`",
            param="model",
        )
        error.spent = spent
        return error

    @classmethod
    def nothing_local(cls, spent: str) -> BudgetSpent:
        """`auto` while the budget is spent on a gateway whose every model is remote."""
        error = cls(
            f"{spent}: every model of this gateway is remote, and remote tiers are off limits"
            " until the UTC day ends",
            param="model",
        )
        error.spent = spent
        return error


class QueueFull(SmallfirstError):
    status = 429
    error_type = "rate_limit_error"
    code = "queue_full"
    retry_after_s = 1  # a local model finishes a short answer in about that time here


class UpstreamError(SmallfirstError):
    status = 502
    error_type = "api_error"
    code = "upstream_error"
    # the upstream's answer broke off after it began: it bills it, as a timed-out call's
    received = False


class UpstreamQuotaSpent(UpstreamError):
    """An upstream said its account's quota is spent: retrying will not help, and the client
    is told as OpenAI tells it. An upstream failure all the same, for the fallback chain."""

    status = 429
    error_type = "insufficient_quota"
    code = "insufficient_quota"


class ModelUnavailable(SmallfirstError):
    status = 503
    error_type = "api_error"
    code = "model_unavailable"


class ShuttingDown(SmallfirstError):
    """The server is stopping: the answers under way end with this. Not a ModelUnavailable,
    so that no fallback starts another model (or a paid call) on the way out."""

    status = 503
    error_type = "api_error"
    code = "server_shutting_down"


class UpstreamTimeout(SmallfirstError):
    status = 504
    error_type = "api_error"
    code = "upstream_timeout"
    received = True  # the upstream had the request (False: the connection timed out)


class ConfigError(Exception):
    """A configuration problem; the message names the file and the key."""

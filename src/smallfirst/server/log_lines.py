"""The log's lines as text (uvicorn's format) or as JSON, one object per line (`server.
log_format`), for collectors under systemd or Kubernetes that read fields, not prose."""

from __future__ import annotations

import copy
import json
import logging
from datetime import UTC, datetime
from typing import Any

from uvicorn.config import LOGGING_CONFIG

from smallfirst.answers import current_request_id

JSON_FORMATTER = {"()": "smallfirst.server.log_lines.JsonLogFormatter"}


class JsonLogFormatter(logging.Formatter):
    """time (UTC, ISO 8601), level, logger, message, and the request's id (as its
    `x-request-id`) when written while a request was served; a traceback as `exc_info`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id.get()
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def gateway_formatter(log_format: str) -> logging.Formatter:
    """The formatter of the gateway's own messages: uvicorn's text, or JSON."""
    if log_format == "json":
        return JsonLogFormatter()
    from uvicorn.logging import DefaultFormatter

    return DefaultFormatter("%(levelprefix)s %(message)s")


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's logging config, its lines (access log included) in `log_format`."""
    config = copy.deepcopy(LOGGING_CONFIG)
    if log_format == "json":
        config["formatters"] = {name: dict(JSON_FORMATTER) for name in config["formatters"]}
    return config

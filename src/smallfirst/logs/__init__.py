"""The request log (SQLite, named migrations) and cost accounting."""

from smallfirst.logs.costs import request_cost
from smallfirst.logs.store import RequestLog, RequestRecord, migrate

__all__ = ["RequestLog", "RequestRecord", "migrate", "request_cost"]

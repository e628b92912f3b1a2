"""HTTP only: parse, validate, map errors, SSE framing."""

from smallfirst.server.app import create_app

__all__ = ["create_app"]

"""What web pages may do with the gateway. A server on loopback without API keys is reachable
from any page the user's browser opens, in two ways that CORS alone does not stop:

- a cross-site POST with a "simple" content type (text/plain, a form) is sent without a
  preflight: the page cannot read the answer, but the request runs (and may cost money on a
  cloud tier). Requests whose `Origin` is not allowed are therefore refused, not only left
  without CORS headers.
- DNS rebinding: a page on attacker.example whose name is later resolved to 127.0.0.1 is
  "same origin" with the gateway and reads every answer. Its requests carry
  `Host: attacker.example`, so a key-less server answers only Host values that name this
  machine: IP literals, localhost, the machine's own name, and `server.allowed_hosts`.
"""

from __future__ import annotations

import ipaddress
import socket

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from smallfirst.config import ServerConfig
from smallfirst.errors import Forbidden
from smallfirst.server.errors import REQUEST_ID_HEADER, error_response
from smallfirst.server.render import ROUTE_HEADER_NAMES

LOCAL_ORIGIN = r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?"


class BrowserGuard:
    """Host check (key-less servers), then the Origin check and Starlette's CORSMiddleware
    for requests that carry an Origin header: SDKs and curl send none and go straight on
    (the CORS middleware wraps every response otherwise: ~20 us per request)."""

    def __init__(self, app: ASGIApp, config: ServerConfig, check_host: bool) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=config.cors_origins,
            allow_origin_regex=LOCAL_ORIGIN if config.cors_local_origins else None,
            # DELETE: a page deletes the responses it stored (`DELETE /v1/responses/{id}`)
            allow_methods=["GET", "POST", "DELETE"],
            # Any header a page's client sends (the openai JS SDK's x-stainless-*): which pages
            # may call is the origin check's to say, not the headers'.
            allow_headers=["*"],
            # Chrome asks before a public site's page calls this machine; an allowed origin
            # (the only kind left here) may (Starlette's default answered 400: CORS failed).
            allow_private_network=True,
            expose_headers=[*ROUTE_HEADER_NAMES, "retry-after", REQUEST_ID_HEADER],
        )
        self.hosts = _HostNames(config.allowed_hosts) if check_host else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(headers)
        if refusal is not None:
            await error_response(refusal)(scope, receive, send)
        elif "origin" in headers:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _refusal(self, headers: Headers) -> Forbidden | None:
        host = headers.get("host")
        if self.hosts is not None and host is not None and not self.hosts.allow(host):
            return Forbidden(
                f"Host {host!r} does not name this machine; a server without API keys answers"
                " only its own names (add the name to server.allowed_hosts if it is yours)."
            )
        origin = headers.get("origin")
        if origin is None or self.cors.is_allowed_origin(origin) or _same_origin(origin, host):
            return None
        return Forbidden(
            f"Web pages from {origin} may not call this server; list the origin in"
            " server.cors_origins to allow it."
        )


def _same_origin(origin: str, host: str | None) -> bool:
    """A page the gateway served itself (the dashboard) calling back to it."""
    return host is not None and origin.partition("://")[2] == host


class _HostNames:
    def __init__(self, allowed: list[str]) -> None:
        self.any = "*" in allowed
        own = socket.gethostname().lower()
        self.names = {name.lower().rstrip(".") for name in allowed} | {own, f"{own}.local"}

    def allow(self, host: str) -> bool:
        name = _without_port(host).lower().rstrip(".")
        if self.any or name in self.names or name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
        except ValueError:
            return False
        return True  # an address, not a name: nothing a rebinding page can put there


def _without_port(host: str) -> str:
    if host.startswith("["):  # [::1]:8080
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if host.count(":") == 1 else host

"""API keys: stored as sha256 hashes; required on /v1, /metrics and /dashboard unless the
server binds loopback only. /healthz and /readyz stay open for probes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import os

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from smallfirst.config import HASH_PREFIX, ServerConfig, usable_key
from smallfirst.errors import Unauthorized
from smallfirst.server.errors import error_response

# Everything else needs a key: the API, the tokenizer endpoints (they show the chat
# template and take large bodies), and spend, routing and PII counts (metrics, dashboard).
OPEN_PATHS = ("/healthz", "/readyz")
# A browser cannot send a bearer token; it asks for Basic credentials: the key as password.
BROWSER_PATHS = ("/dashboard",)
# A 401 names the scheme to answer with (RFC 9110 requires it); a browser shows a password
# dialog only for Basic, so API clients are told Bearer.
BASIC_CHALLENGE = 'Basic realm="smallfirst", charset="UTF-8"'
BEARER_CHALLENGE = 'Bearer realm="smallfirst"'
# Clients made for Azure OpenAI (`openai.AzureOpenAI`) send the key as `api-key`, and
# Anthropic-style ones as `x-api-key`: read like a bearer token when no Authorization is sent.
KEY_HEADERS = (b"api-key", b"x-api-key")


def hash_key(key: str) -> str:
    return HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def hashed(keys: list[str]) -> list[str]:
    """Configured keys as hashes: plain keys are hashed, hashes kept."""
    return [key if key.startswith(HASH_PREFIX) else hash_key(key) for key in keys]


def keys_in_env(variable: str) -> list[str]:
    """The comma-separated keys in `variable`, read as `server.api_keys` entries are (a
    `sha256:` one is a hash); ValueError names an entry that would match no client."""
    entries = [entry.strip() for entry in os.environ.get(variable, "").split(",")]
    keys = []
    for number, entry in enumerate(filter(None, entries), 1):
        try:
            keys.append(usable_key(entry))
        except ValueError as error:
            raise ValueError(f"{variable}, key {number}: {error}") from None
    return keys


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class KeyRing:
    def __init__(self, config: ServerConfig) -> None:
        self.hashes = frozenset(hashed([*config.api_keys, *keys_in_env(config.api_keys_env)]))
        self.required = (
            config.require_api_key
            if config.require_api_key is not None
            else not is_loopback(config.host)
        )

    def check(self, authorization: str | None) -> str | None:
        """Returns a short key id for the log, or None when no key is needed."""
        if not self.required and not authorization:
            return None
        token = _key_in(authorization or "")
        if not token:
            if not self.required:
                return None
            raise Unauthorized("You didn't provide an API key (Authorization: Bearer <key>).")
        digest = hash_key(token)
        if not any(hmac.compare_digest(digest, known) for known in self.hashes):
            if not self.required:
                return None
            raise Unauthorized("Incorrect API key provided.")
        return digest[len(HASH_PREFIX) : len(HASH_PREFIX) + 12]


def _key_in(authorization: str) -> str:
    """The key from `Bearer <key>`, or the password of Basic credentials; "" if none."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if scheme.lower() != "basic":
        return ""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return ""
    return decoded.partition(":")[2]


def _authorization(headers: dict[bytes, bytes]) -> str | None:
    """The request's credentials as an Authorization value: its own, else a key header's."""
    if b"authorization" in headers:
        return headers[b"authorization"].decode("latin-1")
    key = next((headers[name] for name in KEY_HEADERS if headers.get(name)), None)
    return "Bearer " + key.decode("latin-1") if key else None


class ApiKeyGate:
    """Checks the key on gated routes before any handler runs (a plain ASGI middleware:
    cheaper per request than a FastAPI dependency). The key id lands in
    `request.state.api_key_id`."""

    def __init__(self, app: ASGIApp, keyring: KeyRing) -> None:
        self.app = app
        self.keyring = keyring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path not in OPEN_PATHS:
            try:
                key_id = self.keyring.check(_authorization(dict(scope["headers"])))
            except Unauthorized as error:
                challenge = BASIC_CHALLENGE if path in BROWSER_PATHS else BEARER_CHALLENGE
                await error_response(error, {"www-authenticate": challenge})(scope, receive, send)
                return
            scope.setdefault("state", {})["api_key_id"] = key_id
        await self.app(scope, receive, send)


def api_key_of(request: Request) -> str | None:
    """The id of the key `ApiKeyGate` let the request in with (None: none needed)."""
    key: str | None = getattr(request.state, "api_key_id", None)
    return key

"""Browsers: which web pages may call the API (CORS)."""

from pathlib import Path

import pytest

from smallfirst.server.render import ROUTE_HEADER_NAMES
from tests.helpers import chat_body, fake_client, fake_settings

PREFLIGHT = {
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization,content-type",
}


def allowed(tmp_path: Path, origin: str, **server: object) -> bool:
    """Does a browser's preflight from `origin` get a yes?"""
    client, _ = fake_client(fake_settings(tmp_path, server=server))
    with client:
        response = client.options("/v1/chat/completions", headers={**PREFLIGHT, "origin": origin})
    granted = response.headers.get("access-control-allow-origin") == origin
    assert granted == (response.status_code == 200)
    return granted


@pytest.mark.parametrize(
    "origin", ["http://localhost:3000", "http://127.0.0.1:5173", "http://[::1]:8000"]
)
def test_pages_served_from_this_machine_may_call(tmp_path: Path, origin: str) -> None:
    assert allowed(tmp_path, origin)


def test_other_sites_may_not_unless_listed(tmp_path: Path) -> None:
    assert not allowed(tmp_path, "https://evil.example")
    assert not allowed(tmp_path, "http://localhost.evil.example")
    assert allowed(tmp_path, "https://app.example", cors_origins=["https://app.example"])
    assert not allowed(tmp_path, "http://localhost:3000", cors_local_origins=False)


def test_a_preflight_needs_no_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMALLFIRST_API_KEYS", "sekret")
    assert allowed(tmp_path, "http://localhost:3000", host="0.0.0.0")


def test_answers_expose_the_routing_headers_to_pages(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        response = client.post(
            "/v1/chat/completions", json=chat_body(), headers={"origin": "http://localhost:3000"}
        )
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    exposed = set(response.headers["access-control-expose-headers"].split(", "))
    assert exposed == {*ROUTE_HEADER_NAMES, "retry-after"}
    sent = {name for name in response.headers if name.startswith("x-smallfirst-")}
    assert sent
    assert sent <= exposed

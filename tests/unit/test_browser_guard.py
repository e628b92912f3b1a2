"""Browsers: which web pages may call the API (CORS, cross-site requests, DNS rebinding)."""

import json
import socket
from pathlib import Path

import pytest

from smallfirst.server.render import ROUTE_HEADER_NAMES
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings, keyed_client

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


def test_answers_expose_the_routing_headers_and_request_id_to_pages(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        response = client.post(
            "/v1/chat/completions", json=chat_body(), headers={"origin": "http://localhost:3000"}
        )
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    exposed = set(response.headers["access-control-expose-headers"].split(", "))
    # x-request-id: the openai JS SDK's `_request_id` in a page (unreadable if not exposed)
    assert exposed == {*ROUTE_HEADER_NAMES, "retry-after", "x-request-id"}
    sent = {name for name in response.headers if name.startswith("x-smallfirst-")}
    assert sent
    assert "x-request-id" in response.headers


def test_a_page_may_delete_the_responses_it_stored(tmp_path: Path) -> None:
    """`DELETE /v1/responses/{id}` is part of the API a page may call: its preflight was a
    400 ("Disallowed CORS method"), so the browser never sent the DELETE."""
    client, _ = fake_client(fake_settings(tmp_path))
    page = {"origin": "http://localhost:3000"}
    with client:
        stored = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}, headers=page)
        path = f"/v1/responses/{stored.json()['id']}"
        asking = {**PREFLIGHT, "access-control-request-method": "DELETE", **page}
        preflight = client.options(path, headers=asking)
        deleted = client.delete(path, headers=page)
    assert preflight.status_code == 200
    assert "DELETE" in preflight.headers["access-control-allow-methods"].split(", ")
    assert deleted.json()["deleted"] is True
    assert deleted.headers["access-control-allow-origin"] == "http://localhost:3000"


def test_chromes_private_network_preflight_is_granted_to_allowed_origins_only(
    tmp_path: Path,
) -> None:
    """Chrome asks with `Access-Control-Request-Private-Network` before a public site's page
    calls a local server: a 400 ("Disallowed CORS private-network") failed the whole preflight
    for an origin listed in `cors_origins`."""
    client, _ = fake_client(
        fake_settings(tmp_path, server={"cors_origins": ["https://app.example"]})
    )
    asking = {**PREFLIGHT, "access-control-request-private-network": "true"}
    with client:
        listed = client.options(
            "/v1/chat/completions", headers={**asking, "origin": "https://app.example"}
        )
        other = client.options(
            "/v1/chat/completions", headers={**asking, "origin": "https://evil.example"}
        )
    assert listed.status_code == 200
    assert listed.headers["access-control-allow-private-network"] == "true"
    assert other.status_code == 403
    assert "access-control-allow-private-network" not in other.headers


def test_a_page_of_another_site_cannot_make_the_gateway_answer(tmp_path: Path) -> None:
    """A cross-site form-style POST (text/plain: no preflight) would run the model, and a
    cloud tier's bill, though the page could not read the answer. It is refused unrun."""
    client, gateway = fake_client(fake_settings(tmp_path))
    with client:
        response = client.post(
            "/v1/chat/completions",
            content=json.dumps(chat_body("big")),
            headers={"origin": "https://evil.example", "content-type": "text/plain"},
        )
        preflight = client.options(
            "/v1/chat/completions", headers={**PREFLIGHT, "origin": "https://evil.example"}
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    assert "https://evil.example" in response.json()["error"]["message"]
    assert fake_backend(gateway, "big").requests == []
    assert preflight.status_code == 403
    assert preflight.json()["error"]["type"] == "invalid_request_error"


def test_a_page_the_gateway_served_may_call_it_back(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path, server={"cors_local_origins": False}))
    with client:
        response = client.post(
            "/v1/chat/completions",
            json=chat_body(),
            headers={"origin": "http://192.168.1.5:8080", "host": "192.168.1.5:8080"},
        )
    assert response.status_code == 200


def status_for_host(tmp_path: Path, host: str, **server: object) -> int:
    client, _ = fake_client(fake_settings(tmp_path, server=server))
    with client:
        return client.get("/v1/models", headers={"host": host}).status_code


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:8080",
        "localhost:8080",
        "LOCALHOST",
        "[::1]:8080",
        "app.localhost:3000",
        "192.168.1.5",
        socket.gethostname(),
    ],
)
def test_a_keyless_server_answers_the_names_of_this_machine(tmp_path: Path, host: str) -> None:
    assert status_for_host(tmp_path, host) == 200


def test_a_keyless_server_refuses_other_names_as_dns_rebinding_would_send(
    tmp_path: Path,
) -> None:
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        response = client.get("/v1/models", headers={"host": "attacker.example:8080"})
    assert response.status_code == 403
    assert "server.allowed_hosts" in response.json()["error"]["message"]
    assert status_for_host(tmp_path, "localhost.attacker.example") == 403
    assert status_for_host(tmp_path, "gw.example", allowed_hosts=["gw.example"]) == 200
    assert status_for_host(tmp_path, "any.example", allowed_hosts=["*"]) == 200


def test_a_server_with_api_keys_answers_any_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebinding page cannot send the key: behind a reverse proxy the key is the guard."""
    client, _ = keyed_client(tmp_path, monkeypatch, "sekret")
    with client:
        response = client.get(
            "/v1/models", headers={"host": "gw.example", "authorization": "Bearer sekret"}
        )
    assert response.status_code == 200


def test_a_page_may_send_the_headers_its_sdk_adds(tmp_path: Path) -> None:
    """The openai JS SDK sends x-stainless-* headers: its preflight was a plain-text 400."""
    client, _ = fake_client(fake_settings(tmp_path))
    asked = "authorization,content-type,x-stainless-os,x-stainless-retry-count"
    with client:
        response = client.options(
            "/v1/chat/completions",
            headers={
                **PREFLIGHT,
                "access-control-request-headers": asked,
                "origin": "http://localhost:3000",
            },
        )
    assert response.status_code == 200
    assert "x-stainless-os" in response.headers["access-control-allow-headers"].lower()

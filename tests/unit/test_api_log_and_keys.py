"""What the HTTP surface logs of each request (never its prompt unless asked), and which
routes need an API key where."""

import base64
import logging
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from smallfirst.errors import UpstreamError
from smallfirst.logs.store import MAX_LOGGED_MODEL_CHARS
from smallfirst.service import Gateway
from tests.helpers import (
    chat_body,
    fake_backend,
    fake_client,
    fake_settings,
    keyed_client,
)


def test_health_ready_and_metrics(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"status": "ready"}
    client.post("/v1/chat/completions", json=chat_body("big"))
    text = client.get("/metrics").text
    assert 'smallfirst_requests_total{model="big",status="200",tier="cloud"} 1.0' in text
    assert 'smallfirst_tokens_total{direction="output",model="big",tier="cloud"} 3.0' in text
    assert 'smallfirst_queue_depth{model="tiny"} 0.0' in text


def test_a_failed_request_is_logged_once_by_its_id(
    api: tuple[TestClient, Gateway], caplog: pytest.LogCaptureFixture
) -> None:
    """The server's log had uvicorn's access line alone ("502 Bad Gateway"): nothing in it
    matched the client's `x-request-id`, nor said why."""
    client, gateway = api
    fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 500: boom"))
    with caplog.at_level(logging.WARNING, logger="smallfirst"):
        failed = client.post("/v1/chat/completions", json=chat_body("big"))
        client.post("/v1/chat/completions", json=chat_body("nope"))  # the client's mistake
    request_id = failed.headers["x-request-id"]
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("smallfirst")]
    assert len(lines) == 1
    assert request_id in lines[0]
    assert "502 upstream_error" in lines[0]


def test_every_answer_and_error_names_its_request_log_row(tmp_path: Path) -> None:
    """`x-request-id`, as OpenAI sends it (the openai SDK's `_request_id`): the id of the
    request's row in the log, for answers, streams, errors, and bodies that do not parse."""
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        responses = [
            client.post("/v1/chat/completions", json=chat_body("big")),
            client.post("/v1/chat/completions", json=chat_body("tiny", stream=True)),
            client.post("/v1/completions", json={"model": "tiny", "prompt": ["a", "b"]}),
            client.post("/v1/chat/completions", json=chat_body("nope")),
            client.post("/v1/chat/completions", content=b"{not json"),
        ]
    assert [r.status_code for r in responses] == [200, 200, 200, 404, 400]
    ids = [r.headers["x-request-id"] for r in responses]
    assert len(set(ids)) == len(ids)
    logged = dict(
        sqlite3.connect(tmp_path / "requests.db").execute("SELECT id, status FROM requests")
    )
    assert [logged[i] for i in (ids[0], ids[1], ids[3], ids[4])] == [200, 200, 404, 400]
    assert logged[f"{ids[2]}-0"] == logged[f"{ids[2]}-1"] == 200  # a batch: one row a prompt
    assert responses[0].json()["id"].endswith(ids[0])


def test_each_request_is_logged_with_cost_and_no_prompt(tmp_path: Path) -> None:
    settings = fake_settings(tmp_path)
    client, _ = fake_client(settings)
    with client:
        client.post("/v1/chat/completions", json=chat_body("big"))
        client.post("/v1/chat/completions", json=chat_body("nope"))
    rows = (
        sqlite3.connect(tmp_path / "requests.db")
        .execute(
            "SELECT model_answered, tier, status, prompt_tokens, completion_tokens, cost_usd,"
            " prompt FROM requests ORDER BY created_at"
        )
        .fetchall()
    )
    answered, tier, status, prompt_tokens, completion_tokens, cost, prompt = rows[0]
    assert (answered, tier, status, prompt) == ("big", "cloud", 200, None)
    assert cost == pytest.approx((prompt_tokens * 2.0 + completion_tokens * 8.0) / 1e6)
    assert rows[1][2] == 404


def test_requests_refused_before_routing_are_logged_and_counted(tmp_path: Path) -> None:
    """Under the model the body asked for (they were all "unknown"); an id that is no model
    here is one metrics label, "unknown", as for any request."""
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        client.post("/v1/chat/completions", json=chat_body(temperature=3))
        client.post("/v1/completions", content=b"{nope")
        client.post("/v1/responses", json={"model": "made-up", "input": "hi", "top_p": 9})
        metrics = client.get("/metrics").text
    assert 'smallfirst_requests_total{model="tiny",status="400",tier="none"} 1.0' in metrics
    assert 'smallfirst_requests_total{model="unknown",status="400",tier="none"} 2.0' in metrics
    rows = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT endpoint, model_requested, status FROM requests ORDER BY endpoint"
    )
    assert rows.fetchall() == [
        ("chat", "tiny", 400),
        ("completions", "unknown", 400),
        ("responses", "made-up", 400),
    ]


@pytest.mark.parametrize("body", [b"[1, 2]", b'{"model": 5}', b'{"model": ""}', b"[" * 5000])
def test_a_refused_body_naming_no_model_is_logged_as_unknown(tmp_path: Path, body: bytes) -> None:
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        assert client.post("/v1/chat/completions", content=body).status_code == 400
    (logged,) = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT model_requested FROM requests"
    )
    assert logged == ("unknown",)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/responses", "/v1/embeddings"])
def test_a_model_id_holding_a_lone_surrogate_is_logged_and_so_are_the_requests_after(
    tmp_path: Path, path: str
) -> None:
    """Its refusal's row held a character UTF-8 cannot encode: the request log's writer
    thread died on it, and no request was logged after (nor with it), so `stats` and the
    dashboard showed nothing more."""
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        refused = client.post(path, content=b'{"model": "x\\ud800", "input": "hi"}')
        assert refused.status_code == 400
        assert client.post("/v1/chat/completions", json=chat_body("big")).status_code == 200
    rows = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT model_requested, status FROM requests ORDER BY created_at"
    )
    assert rows.fetchall() == [("x\ufffd", 400), ("big", 200)]


def test_a_made_up_model_id_is_logged_cut(tmp_path: Path) -> None:
    """The client's text: 3.5 MB of model id made a 3.5 MB row per request refused for it."""
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        assert client.post("/v1/chat/completions", json=chat_body("m" * 100_000)).status_code == 404
    (logged,) = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT model_requested FROM requests"
    )
    assert logged[0] == "m" * MAX_LOGGED_MODEL_CHARS + "…"


def test_prompts_are_logged_only_when_asked(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path, log_prompts=True))
    with client:
        client.post("/v1/chat/completions", json=chat_body())
    prompt, response = (
        sqlite3.connect(tmp_path / "requests.db")
        .execute("SELECT prompt, response FROM requests")
        .fetchone()
    )
    assert prompt == "user: Hi there"
    assert response == "Hello from tiny."


def test_a_logged_prompt_of_text_parts_has_them_on_lines(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path, log_prompts=True))
    parts = [{"type": "text", "text": "When is the kettle"}, {"type": "text", "text": "descaled?"}]
    body = chat_body(messages=[{"role": "user", "content": parts}])
    with client:
        assert client.post("/v1/chat/completions", json=body).status_code == 200
    (prompt,) = sqlite3.connect(tmp_path / "requests.db").execute("SELECT prompt FROM requests")
    assert prompt[0] == "user: When is the kettle\ndescaled?"


def test_api_keys_required_off_loopback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = keyed_client(tmp_path, monkeypatch, "sekret-1,sekret-2")
    with client:
        missing = client.post("/v1/chat/completions", json=chat_body())
        wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
        right = client.get("/v1/models", headers={"Authorization": "Bearer sekret-2"})
        health = client.get("/healthz")
        tokenizer = [
            client.post("/tokenize", json={"model": "tiny", "prompt": "hi"}),
            client.post("/detokenize", json={"model": "tiny", "tokens": [104]}),
            client.get("/tokenizer_info"),
        ]
        keyed = client.post(
            "/tokenize",
            json={"model": "tiny", "prompt": "hi"},
            headers={"Authorization": "Bearer sekret-1"},
        )
    assert [r.status_code for r in tokenizer] == [401, 401, 401]
    assert keyed.status_code == 200
    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert health.status_code == 200


def test_a_401_is_openais_and_names_the_bearer_scheme(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its type was "authentication_error" (OpenAI's is invalid_request_error), and it had no
    WWW-Authenticate header, which RFC 9110 requires of a 401."""
    client, _ = keyed_client(tmp_path, monkeypatch, "sekret-1")
    with client:
        answers = [
            client.post("/v1/chat/completions", json=chat_body()),
            client.get("/v1/models", headers={"Authorization": "Bearer sekret-2"}),
            client.post("/v1/embeddings", json={"input": "hi"}, headers={"api-key": "nope"}),
        ]
    for answer in answers:
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Bearer realm="smallfirst"'
        assert answer.json()["error"]["type"] == "invalid_request_error"
        assert answer.json()["error"]["code"] == "invalid_api_key"
        assert "sekret" not in answer.text


def test_metrics_and_dashboard_need_a_key_off_loopback_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _ = keyed_client(tmp_path, monkeypatch, "sekret-1")
    with client:
        metrics = client.get("/metrics")
        scraped = client.get("/metrics", headers={"Authorization": "Bearer sekret-1"})
        page = client.get("/dashboard")
        browser = client.get("/dashboard", auth=("anyone", "sekret-1"))
        wrong = client.get("/dashboard", auth=("anyone", "nope"))
        garbled = [  # not base64, or not UTF-8 inside: no key, not a 500
            client.get("/dashboard", headers={"Authorization": f"Basic {credentials}"})
            for credentials in ("not base64!", base64.b64encode(b"anyone:\xff").decode())
        ]
        ready = client.get("/readyz")
    assert metrics.status_code == 401
    assert metrics.headers["www-authenticate"] == 'Bearer realm="smallfirst"'  # no dialog
    assert scraped.status_code == 200
    assert page.status_code == 401
    assert page.headers["www-authenticate"].startswith('Basic realm="smallfirst"')
    assert browser.status_code == 200
    assert wrong.status_code == 401
    assert [r.status_code for r in garbled] == [401, 401]
    assert ready.status_code == 200


def test_on_loopback_metrics_and_dashboard_stay_open(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    assert client.get("/metrics").status_code == 200
    assert client.get("/dashboard").status_code == 200


def test_a_key_sent_as_azures_api_key_or_as_x_api_key_is_checked_like_a_bearer_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """openai.AzureOpenAI sends `api-key` and no Authorization: it was a 401 with a right key."""
    client, _ = keyed_client(tmp_path, monkeypatch, "sekret-1")
    with client:
        statuses = [
            client.get("/v1/models", headers=headers).status_code
            for headers in (
                {"api-key": "sekret-1"},
                {"x-api-key": "sekret-1"},
                {"api-key": "nope"},
                {"api-key": ""},
                {"Authorization": "Bearer nope", "api-key": "sekret-1"},
            )
        ]
    assert statuses == [200, 200, 401, 401, 401]

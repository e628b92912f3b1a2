"""`/v1/embeddings` with fake backends: listed and logged like the other models, in OpenAI's
limits, and never holding up chat."""

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from smallfirst.config import EMBEDDING_MODEL_IDS
from smallfirst.service import Gateway
from tests.helpers import (
    chat_body,
    fake_client,
    fake_settings,
)


def test_the_embedding_model_is_listed_and_its_requests_logged(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
        body = {"model": "all-minilm-l6-v2", "input": ["two words", "three more words"]}
        embedded = client.post("/v1/embeddings", json=body)
        embedding_model = client.get("/v1/models/text-embedding-local").json()
        unknown = client.post("/v1/embeddings", json={"model": "nope", "input": "x"})
        too_long = {"model": "all-minilm-l6-v2", "input": "word " * 400}
        refused = client.post("/v1/embeddings", json=too_long)
        chat = client.post("/v1/chat/completions", json=chat_body("all-minilm-l6-v2"))
    assert listed["all-minilm-l6-v2"]["dimensions"] == 384
    assert embedding_model["loaded"] is True  # as every other model has it (the entry had none)
    rows = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT id, status, tier, prompt_tokens FROM requests WHERE endpoint = 'embeddings'"
    )
    logged = {row[0]: row[1:] for row in rows}
    tokens = embedded.json()["usage"]["prompt_tokens"]
    assert logged[embedded.headers["x-request-id"]] == (200, "embeddings", tokens)
    assert logged[unknown.headers["x-request-id"]] == (404, None, 0)
    # a request for the embedding model keeps it, failed or not (it was "unknown", in 0 ms)
    assert logged[refused.headers["x-request-id"]] == (400, "embeddings", 0)
    assert chat.status_code == 400
    assert "is an embedding model: send it to /v1/embeddings" in chat.json()["error"]["message"]


def test_embedding_requests_do_not_hold_up_chat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """QA: six large embedding requests took every thread of asyncio's default pool, and a
    chat request (its privacy scan runs there) waited until all six were done."""
    pytest.importorskip("onnxruntime")
    import asyncio
    import threading

    import numpy as np

    from smallfirst.embed import DIMENSIONS, encoder

    release = threading.Event()

    def held(self: Any, token_ids: list[int]) -> Any:
        release.wait(timeout=30)  # the embeddings go on until the chat has its answer
        return np.zeros(DIMENSIONS, dtype=np.float32)

    monkeypatch.setattr(encoder.LocalEmbedder, "_embed_ids", held)
    client, _ = fake_client(fake_settings(tmp_path))  # the privacy guard is on: a thread each

    async def chat_beside_embeddings() -> int:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            body = {"model": "all-minilm-l6-v2", "input": ["a text"] * 4}
            embeddings = [
                asyncio.ensure_future(http.post("/v1/embeddings", json=body)) for _ in range(40)
            ]
            await asyncio.sleep(0.2)  # all are in: more than the default pool has threads
            try:
                chat = await asyncio.wait_for(
                    http.post("/v1/chat/completions", json=chat_body()), timeout=20
                )
            finally:
                release.set()
                await asyncio.gather(*embeddings)
            return chat.status_code

    with client:
        assert client.portal is not None
        assert client.portal.call(chat_beside_embeddings) == 200


def test_embeddings_refuse_a_size_the_model_cannot_make(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    body = {"model": "all-minilm-l6-v2", "input": "x", "dimensions": 256}
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "dimensions"
    assert "384-dimensional vectors only" in response.json()["error"]["message"]


def test_embeddings_take_at_most_2048_inputs_as_openai_does(
    api: tuple[TestClient, Gateway],
) -> None:
    client, _ = api
    body = {"model": "all-minilm-l6-v2", "input": ["x"] * 2049}
    response = client.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    assert "at most 2048 inputs per request; got 2049" in response.json()["error"]["message"]


@pytest.mark.parametrize("tokens", [[1, 2, 3], [[1, 2], [3]]])
def test_embeddings_refuse_token_arrays_by_name(
    api: tuple[TestClient, Gateway], tokens: list[object]
) -> None:
    client, _ = api
    response = client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": tokens})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"
    assert "token arrays are not supported" in response.json()["error"]["message"]


def test_a_refused_embeddings_body_is_logged_under_the_model_it_named(tmp_path: Path) -> None:
    """As on the other endpoints, the operator looking for a client's 400s and 404s finds them
    under the model it asked for (they were all logged as model "unknown"), and so do the
    metrics for the embedding model, while an id that is no model here stays "unknown"."""
    client, _ = fake_client(fake_settings(tmp_path))
    bodies = [
        {"model": "all-minilm-l6-v2", "input": ""},
        {"model": "text-embedding-3-small", "input": "x"},
        {"input": "x"},
    ]
    with client:
        ids = [client.post("/v1/embeddings", json=body).headers["x-request-id"] for body in bodies]
        metrics = client.get("/metrics").text
    rows = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT id, model_requested, status, tier FROM requests WHERE endpoint = 'embeddings'"
    )
    logged = {row[0]: row[1:] for row in rows}
    assert [logged[request_id] for request_id in ids] == [
        ("all-minilm-l6-v2", 400, None),
        ("text-embedding-3-small", 404, None),
        ("unknown", 400, None),
    ]
    counted = 'smallfirst_requests_total{model="%s",status="%s",tier="none"} 1.0'
    assert counted % ("all-minilm-l6-v2", 400) in metrics
    assert counted % ("unknown", 404) in metrics


@pytest.mark.parametrize("model", EMBEDDING_MODEL_IDS)
@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/chat/completions", chat_body(), "is an embedding model: send it to /v1/embeddings"),
        ("/v1/completions", {"prompt": "x"}, "is an embedding model: send it to /v1/embeddings"),
        ("/v1/completions", {"prompt": [1, 2]}, "is not one"),
        ("/tokenize", {"prompt": "x"}, "is not one"),
    ],
)
def test_both_names_of_the_embedding_model_are_told_apart_from_unknown_models(
    api: tuple[TestClient, Gateway], model: str, path: str, body: dict[str, Any], message: str
) -> None:
    """`GET /v1/models/text-embedding-local` describes the model and /v1/embeddings takes
    that name, yet the other endpoints answered it with a 404 saying it did not exist."""
    client, _ = api
    response = client.post(path, json={**body, "model": model})
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("items", "param", "got"),
    [
        ([["a text"]], "input.0", "an array"),
        ([True], "input.0", "a boolean"),
        (["a", 1], "input.1", "an integer"),
    ],
)
def test_embedding_inputs_that_are_no_token_arrays_get_the_type_error_of_the_item(
    api: tuple[TestClient, Gateway], items: list[object], param: str, got: str
) -> None:
    """A text wrapped in a list, or `true`, was refused as a token array, which it is not."""
    client, _ = api
    response = client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": items})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert (
        error["message"] == f"Invalid type for '{param}': expected a string, but got {got} instead."
    )


@pytest.mark.parametrize(
    ("items", "param", "counted"),
    [
        (["two words", "three more words", "word " * 400], "input.2", "input 2 has 402 tokens"),
        (
            ["two words", "word " * 3000],
            "input.1",
            "input 1 has at least",
        ),  # refused before it is read
        ("word " * 400, "input", "input 0 has 402 tokens"),  # a lone text
    ],
    ids=["counted", "long text", "lone text"],
)
def test_an_input_too_long_is_named_by_its_param(
    api: tuple[TestClient, Gateway], items: str | list[str], param: str, counted: str
) -> None:
    """Its message named the item ("input 2 has ..."), its `param` only `input`."""
    pytest.importorskip("onnxruntime")
    client, _ = api
    response = client.post("/v1/embeddings", json={"model": "all-minilm-l6-v2", "input": items})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == (param, "context_length_exceeded")
    assert counted in error["message"]


def test_a_large_embeddings_answer_is_built_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """2,048 vectors of 384 floats took ~0.2 s to build and serialise on the event loop, and
    every other request waited. The building here waits until a coroutine on the loop has
    run (a hang guard bounds it): it can run only if the loop is free meanwhile."""
    import asyncio
    import threading

    import numpy as np

    from smallfirst import embed
    from smallfirst.server import embeddings_route
    from tests.helpers import until

    building, loop_ran = threading.Event(), threading.Event()
    vectors_written: list[bool] = []

    class InstantEmbedder:
        def embed_counted(self, texts: list[str], **_: object) -> tuple[Any, int]:
            return np.zeros((len(texts), embed.DIMENSIONS), dtype=np.float32), len(texts)

    def encode_once_the_loop_ran(vector: list[float], encoding: str) -> list[float] | str:
        building.set()
        vectors_written.append(loop_ran.wait(timeout=5))  # a hang guard, not a timing
        return list(vector)

    monkeypatch.setattr(embed, "get_embedder", InstantEmbedder)
    monkeypatch.setattr(embeddings_route, "_encode", encode_once_the_loop_ran)
    client, _ = fake_client(fake_settings(tmp_path))

    async def embed_while_the_loop_runs() -> int:
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            body = {"model": "all-minilm-l6-v2", "input": ["a text"] * 3}
            answer = asyncio.ensure_future(http.post("/v1/embeddings", json=body))
            await until(building.is_set)
            loop_ran.set()
            return (await asyncio.wait_for(answer, 30)).status_code

    with client:
        assert client.portal is not None
        assert client.portal.call(embed_while_the_loop_runs) == 200
    assert vectors_written == [True, True, True]

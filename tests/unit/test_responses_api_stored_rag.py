"""Stored responses grounded in a RAG collection: a conversation that goes on from an answer
grounded in a private collection stays on local tiers, as the collection's own requests do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.rag import ingest_paths, open_store
from smallfirst.service import Gateway
from tests.helpers import fake_backend, fake_client, fake_settings

STRONG_ROUTING = {"router": "rules", "threshold": 0.0}  # every `auto` request goes to big
PUBLIC = {"collections": {"office": {"private": False}}}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rag")
    folder = root / "docs"
    folder.mkdir()
    (folder / "kettle.md").write_text("# Kettle\n\nThe kettle is descaled every Friday.")
    ingest_paths(open_store(root), [folder], collection="office")
    return root


def rag_api(data_dir: Path, **overrides: Any) -> Iterator[tuple[TestClient, Gateway]]:
    client, gateway = fake_client(fake_settings(data_dir, routing=STRONG_ROUTING, **overrides))
    with client:
        yield client, gateway


def turn(client: TestClient, model: str, text: str, previous: str | None = None) -> Any:
    body = {"model": model, "input": text, "previous_response_id": previous}
    return client.post("/v1/responses", json=body)


def test_a_chain_from_an_answer_grounded_in_a_private_collection_stays_local(
    data_dir: Path,
) -> None:
    """The answer quotes the documents; before, the next turn under `auto` went to the cloud
    with it, and a cloud model asked for by id got it too."""
    for client, gateway in rag_api(data_dir):
        fake_backend(gateway, "tiny").queue("The kettle is descaled every Friday.")
        grounded = turn(client, "rag/office", "When is the kettle descaled?").json()
        assert grounded["model"] == "tiny"
        follow_up = turn(client, "auto", "Say it as a poem.", grounded["id"])
        assert follow_up.status_code == 200, follow_up.text
        assert follow_up.json()["model"] == "tiny"
        assert "collection 'office' is private" in follow_up.json()["smallfirst"]["reason"]
        # and the turn after that, which no document grounded either
        later = turn(client, "auto", "Shorter, please.", follow_up.json()["id"])
        assert later.json()["model"] == "tiny"
        by_id = turn(client, "big", "Say it as a poem.", grounded["id"])
        assert by_id.status_code == 400
        assert by_id.json()["error"]["code"] == "private_collection"
        assert not fake_backend(gateway, "big").requests
    for client, _ in rag_api(data_dir, rag=PUBLIC):  # a public one's chain may leave
        grounded = turn(client, "rag/office", "When is the kettle descaled?").json()
        assert grounded["model"] == "big"
        assert turn(client, "auto", "Say it as a poem.", grounded["id"]).json()["model"] == "big"


def test_a_reference_to_an_answer_grounded_in_a_private_collection_stays_local(
    data_dir: Path,
) -> None:
    """`item_reference` brings the quotes along as `previous_response_id` does."""
    for client, gateway in rag_api(data_dir):
        fake_backend(gateway, "tiny").queue("The kettle is descaled every Friday.")
        grounded = turn(client, "rag/office", "When is the kettle descaled?").json()
        quoted = {"type": "item_reference", "id": grounded["output"][0]["id"]}
        asked = [quoted, {"role": "user", "content": "Say it as a poem."}]
        follow_up = client.post("/v1/responses", json={"model": "auto", "input": asked}).json()
        assert follow_up["model"] == "tiny"
        later = turn(client, "auto", "Shorter, please.", follow_up["id"])  # kept down its chain
        assert later.json()["model"] == "tiny"
        by_id = client.post("/v1/responses", json={"model": "big", "input": asked})
        assert by_id.json()["error"]["code"] == "private_collection"
        assert not fake_backend(gateway, "big").requests

"""How a chain of stored responses is kept: each turn once, linked to the one before it (not a
copy of the whole chain), and what deleting or expiring one leaves on disk."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from smallfirst.stored_responses import RESPONSES_FILE, ResponseStore, StoredResponse
from tests.helpers import fake_client, fake_settings
from tests.unit.test_responses_api_stored import sent_messages

DAY_S = 86400.0


def rows(tmp_path: Path) -> dict[str, tuple[int, str]]:
    """id -> (how many input items its row holds, its row's text)."""
    with sqlite3.connect(tmp_path / RESPONSES_FILE) as connection:
        found = connection.execute(
            "SELECT id, json_array_length(input_items), input_items || response FROM responses"
        )
        return {row[0]: (row[1], row[2]) for row in found}


def answer(response_id: str, text: str, previous: str | None = None) -> dict[str, Any]:
    item = {"id": f"msg_{response_id}", "type": "message", "role": "assistant", "content": text}
    return {"id": response_id, "output": [item], "previous_response_id": previous}


def put_turn(
    store: ResponseStore, response_id: str, text: str, previous: StoredResponse | None = None
) -> StoredResponse:
    item = {"id": f"in_{response_id}", "type": "message", "role": "user", "content": text}
    previous_id = previous.response["id"] if previous is not None else None
    store.put(response_id, None, [item], answer(response_id, text.upper(), previous_id), previous)
    found = store.get(response_id, None)
    assert found is not None
    return found


def contents(stored: StoredResponse) -> list[str]:
    return [item["content"] for item in stored.conversation]


def test_each_turn_is_stored_once_and_the_chain_read_whole(tmp_path: Path) -> None:
    client, gateway = fake_client(fake_settings(tmp_path))
    with client:
        previous = None
        for turn in range(6):
            asked: dict[str, Any] = {"model": "tiny", "input": f"Turn {turn}"}
            if previous is not None:
                asked["previous_response_id"] = previous
            previous = client.post("/v1/responses", json=asked).json()["id"]
        listed = client.get(f"/v1/responses/{previous}/input_items", params={"order": "asc"})
        texts = [item["content"][0]["text"] for item in listed.json()["data"]]
    assert texts == [t for n in range(6) for t in (f"Turn {n}", "Hello from tiny.")][:-1]
    assert [text for _, text in sent_messages(gateway)] == texts
    assert {held for held, _ in rows(tmp_path).values()} == {1}  # its own input only


def test_a_deleted_response_keeps_only_what_later_ones_read(tmp_path: Path) -> None:
    client, gateway = fake_client(fake_settings(tmp_path))
    with client:
        asked = {"model": "tiny", "input": "One", "instructions": "Call me Captain."}
        first = client.post("/v1/responses", json=asked).json()["id"]
        asked = {"model": "tiny", "input": "Two", "previous_response_id": first}
        second = client.post("/v1/responses", json=asked).json()["id"]
        assert client.delete(f"/v1/responses/{first}").status_code == 200
        assert client.get(f"/v1/responses/{first}").status_code == 404
        assert client.get(f"/v1/responses/{first}/input_items").status_code == 404
        assert client.delete(f"/v1/responses/{first}").status_code == 404
        assert "Captain" not in rows(tmp_path)[first][1]  # its instructions: no later one's
        asked = {"model": "tiny", "input": "Three", "previous_response_id": second}
        third = client.post("/v1/responses", json=asked).json()["id"]
        assert [text for _, text in sent_messages(gateway)][:2] == ["One", "Hello from tiny."]
        for response_id in (second, third):
            assert client.delete(f"/v1/responses/{response_id}").status_code == 200
    assert rows(tmp_path) == {}  # no later one reads them any more


def test_a_chain_deleted_in_any_order_leaves_nothing(tmp_path: Path) -> None:
    for order in ("abc", "bac", "cab", "acb"):
        store = ResponseStore(tmp_path / order / RESPONSES_FILE)
        a = put_turn(store, "a", "one")
        b = put_turn(store, "b", "two", a)
        put_turn(store, "c", "three", b)
        put_turn(store, "d", "four", b)  # a branch: b goes on in two ways
        for response_id in order:
            assert store.delete(response_id, None)
            assert store.get(response_id, None) is None
        found = store.get("d", None)
        assert found is not None
        assert contents(found) == ["one", "ONE", "two", "TWO", "four", "FOUR"]
        assert store.delete("d", None)
        store.close()
        assert rows(tmp_path / order) == {}


def age(path: Path, where: str = "1") -> None:
    """Make responses two days old."""
    with sqlite3.connect(path) as connection:
        connection.execute(
            f"UPDATE responses SET created_at = created_at - 2 * {DAY_S} WHERE {where}"
        )


def pruning_store(path: Path) -> ResponseStore:
    """A store that prunes at its first write (a gateway's first after it starts)."""
    return ResponseStore(path, retention_s=DAY_S)


def test_expired_responses_stay_while_a_kept_one_goes_on_from_them(tmp_path: Path) -> None:
    path = tmp_path / RESPONSES_FILE
    store = pruning_store(path)
    put_turn(store, "b", "two", put_turn(store, "a", "one"))
    store.close()
    age(path, "id = 'a'")
    store = pruning_store(path)
    put_turn(store, "x", "unrelated")
    assert store.get("a", None) is None  # expired
    found = store.get("b", None)
    assert found is not None
    assert contents(found) == ["one", "ONE", "two", "TWO"]
    store.close()
    age(path)
    store = pruning_store(path)
    put_turn(store, "y", "fresh")
    store.close()
    assert set(rows(tmp_path)) == {"y"}


def test_a_previous_response_deleted_meanwhile_is_copied_in(tmp_path: Path) -> None:
    """Another gateway on the data dir may delete it between this one reading it and storing
    the answer that goes on from it."""
    store = ResponseStore(tmp_path / RESPONSES_FILE)
    a = put_turn(store, "a", "one")
    assert store.delete("a", None)
    b = put_turn(store, "b", "two", a)
    assert contents(b) == ["one", "ONE", "two", "TWO"]
    store.close()
    assert set(rows(tmp_path)) == {"b"}

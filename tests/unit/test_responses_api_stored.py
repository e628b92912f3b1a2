"""Stored responses with fake backends: `store`, `previous_response_id`, and reading them back
(`GET /v1/responses/{id}`, `.../input_items`, `DELETE`), through HTTP and the openai SDK."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.responses import ResponseItem
from pydantic import TypeAdapter
from starlette.testclient import TestClient

from smallfirst.service import Gateway
from smallfirst.stored_responses import RESPONSES_FILE, ResponseStore
from smallfirst.types import ChatRequest
from tests.helpers import (
    LOOPBACK,
    RESPONSES_WEATHER_TOOL,
    fake_backend,
    fake_client,
    fake_settings,
    two_keys_client,
)
from tests.unit.test_responses_api import events_of

EMAIL = "john.smith@example.com"


def stored_ids(tmp_path: Path) -> list[str]:
    path = tmp_path / RESPONSES_FILE
    if not path.exists():
        return []
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT id FROM responses ORDER BY id")]


def sent_messages(gateway: Gateway, model: str = "tiny") -> list[tuple[str, str]]:
    sent = fake_backend(gateway, model).requests[-1]
    assert isinstance(sent, ChatRequest)
    return [(m.role, m.text) for m in sent.messages]


@pytest.fixture
def stored_api(tmp_path: Path) -> Iterator[tuple[TestClient, Gateway]]:
    client, gateway = fake_client(fake_settings(tmp_path))
    with client:
        yield client, gateway


def test_a_response_is_stored_and_read_back_as_it_was_returned(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    client, _ = stored_api
    body = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}).json()
    assert body["store"] is True
    assert body["previous_response_id"] is None
    again = client.get(f"/v1/responses/{body['id']}")
    assert again.status_code == 200
    assert again.json() == body


def test_a_streamed_response_is_stored_as_its_last_event_has_it(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    client, _ = stored_api
    asked = {"model": "tiny", "input": "Hi", "stream": True}
    events = events_of(client.post("/v1/responses", json=asked).text)
    completed = events[-1]
    assert completed["type"] == "response.completed"
    assert completed["response"]["store"] is True
    stored = client.get(f"/v1/responses/{completed['response']['id']}").json()
    assert stored == completed["response"]


def test_previous_response_id_goes_on_from_the_stored_conversation(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    client, gateway = stored_api
    first = client.post(
        "/v1/responses",
        json={"model": "tiny", "input": "My name is Ada.", "instructions": "Be brief."},
    ).json()
    fake_backend(gateway, "tiny").queue("You are Ada.")
    second = client.post(
        "/v1/responses",
        json={"model": "tiny", "input": "Who am I?", "previous_response_id": first["id"]},
    ).json()
    # the first turn's instructions are not carried over (OpenAI's rule)
    assert sent_messages(gateway) == [
        ("user", "My name is Ada."),
        ("assistant", "Hello from tiny."),
        ("user", "Who am I?"),
    ]
    assert second["previous_response_id"] == first["id"]
    client.post(
        "/v1/responses",
        json={"model": "tiny", "input": "And again?", "previous_response_id": second["id"]},
    )
    assert [text for _, text in sent_messages(gateway)] == [
        "My name is Ada.",
        "Hello from tiny.",
        "Who am I?",
        "You are Ada.",
        "And again?",
    ]


def test_a_function_call_is_answered_in_the_next_turn(
    stored_api: tuple[TestClient, Gateway], tmp_path: Path
) -> None:
    client, gateway = stored_api
    tools = {"tools": [RESPONSES_WEATHER_TOOL]}
    named = {"type": "function", "name": "get_weather"}
    asked = {"model": "big", "input": "Weather in Paris?", "tool_choice": named, **tools}
    first = client.post("/v1/responses", json=asked).json()
    (call,) = first["output"]
    assert call["type"] == "function_call"
    # its output is missing: refused as OpenAI refuses it, and nothing is stored
    on = {"model": "big", "previous_response_id": first["id"], **tools}
    missing = client.post("/v1/responses", json={**on, "input": "Well?"})
    assert missing.status_code == 400
    error = missing.json()["error"]["message"]
    assert error == f"No tool output found for function call {call['call_id']}."
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}
    answered = client.post("/v1/responses", json={**on, "input": [output]})
    assert answered.status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert [m.role for m in sent.messages] == ["user", "assistant", "tool"]
    assert sent.messages[1].tool_calls is not None
    assert sent.messages[1].tool_calls[0].id == sent.messages[2].tool_call_id  # (pseudonymous)
    assert stored_ids(tmp_path) == sorted([first["id"], answered.json()["id"]])


def test_an_unknown_previous_response_is_a_404_and_nothing_is_stored(
    stored_api: tuple[TestClient, Gateway], tmp_path: Path
) -> None:
    client, gateway = stored_api
    asked = {"model": "tiny", "input": "Hi", "previous_response_id": "resp_nope"}
    response = client.post("/v1/responses", json=asked)
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": "Previous response with id 'resp_nope' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }
    assert fake_backend(gateway, "tiny").requests == []
    assert stored_ids(tmp_path) == []


def test_a_failed_answer_is_not_stored(
    stored_api: tuple[TestClient, Gateway], tmp_path: Path
) -> None:
    client, _ = stored_api
    first = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}).json()
    bad = {
        "model": "tiny",
        "input": [{"role": "robot", "content": "x"}],
        "previous_response_id": first["id"],
    }
    assert client.post("/v1/responses", json=bad).status_code == 400
    assert client.post("/v1/responses", json={"model": "nope", "input": "Hi"}).status_code == 404
    assert stored_ids(tmp_path) == [first["id"]]


def test_store_false_is_honoured_and_reported(
    stored_api: tuple[TestClient, Gateway], tmp_path: Path
) -> None:
    client, _ = stored_api
    for stream in (False, True):
        asked = {"model": "tiny", "input": "Hi", "store": False, "stream": stream}
        response = client.post("/v1/responses", json=asked)
        body = events_of(response.text)[-1]["response"] if stream else response.json()
        assert body["store"] is False
        assert client.get(f"/v1/responses/{body['id']}").status_code == 404
    assert stored_ids(tmp_path) == []


def test_another_keys_response_is_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, one, two = two_keys_client(tmp_path, monkeypatch)
    with client:
        body = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}, headers=one)
        response_id = body.json()["id"]
        assert client.get(f"/v1/responses/{response_id}", headers=one).status_code == 200
        for method, path in (
            ("GET", f"/v1/responses/{response_id}"),
            ("GET", f"/v1/responses/{response_id}/input_items"),
            ("DELETE", f"/v1/responses/{response_id}"),
        ):
            assert client.request(method, path, headers=two).status_code == 404
        chained = {"model": "tiny", "input": "Hi", "previous_response_id": response_id}
        refused = client.post("/v1/responses", json=chained, headers=two)
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "previous_response_not_found"
        assert client.get(f"/v1/responses/{response_id}", headers=one).status_code == 200


def test_input_items_are_listed_as_openai_lists_them(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    client, _ = stored_api
    first = client.post("/v1/responses", json={"model": "tiny", "input": "One"}).json()
    turn = [
        {"role": "developer", "content": "Two"},
        {"role": "user", "content": [{"type": "input_text", "text": "Three"}]},
    ]
    asked = {"model": "tiny", "input": turn, "previous_response_id": first["id"]}
    second = client.post("/v1/responses", json=asked).json()
    listed = client.get(f"/v1/responses/{second['id']}/input_items").json()
    assert listed["object"] == "list"
    texts = [item["content"][0]["text"] for item in listed["data"]]
    assert texts == ["Three", "Two", "Hello from tiny.", "One"]  # newest first by default
    assert listed["has_more"] is False
    assert listed["first_id"] == listed["data"][0]["id"]
    assert listed["data"][2] == first["output"][0]  # the answer, as it was returned
    TypeAdapter(list[ResponseItem]).validate_python(listed["data"])  # the SDK's types
    page = client.get(
        f"/v1/responses/{second['id']}/input_items", params={"order": "asc", "limit": 2}
    ).json()
    assert [item["content"][0]["text"] for item in page["data"]] == ["One", "Hello from tiny."]
    assert page["has_more"] is True
    rest = client.get(
        f"/v1/responses/{second['id']}/input_items",
        params={"order": "asc", "after": page["last_id"]},
    ).json()
    assert [item["content"][0]["text"] for item in rest["data"]] == ["Two", "Three"]
    assert rest["has_more"] is False


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"order": "up"}, "order"),
        ({"after": "msg_x"}, "after"),
    ],
)
def test_a_bad_list_query_is_a_400_naming_it(
    stored_api: tuple[TestClient, Gateway], query: dict[str, str], param: str
) -> None:
    client, _ = stored_api
    body = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}).json()
    response = client.get(f"/v1/responses/{body['id']}/input_items", params=query)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_input_items_honour_include_and_refuse_a_value_openai_has_not(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    """`include` was not read: an earlier answer's logprobs were listed unasked, and any
    value was accepted. Its logprobs now come when asked for (the openai SDK's `include=`, or
    `include[]=`); another of OpenAI's values has nothing here to add; an unknown one is a
    400."""
    client, _ = stored_api
    asked = {"include": ["message.output_text.logprobs"], "top_logprobs": 1}
    first = client.post("/v1/responses", json={"model": "tiny", "input": "One", **asked}).json()
    answered = first["output"][0]["content"][0]["logprobs"]
    assert answered
    chained = {"model": "tiny", "input": "Two", "previous_response_id": first["id"]}
    second = client.post("/v1/responses", json=chained).json()
    url = f"/v1/responses/{second['id']}/input_items"

    def logprobs_listed(query: list[tuple[str, str]]) -> list[Any]:
        listed = client.get(url, params=[("order", "asc"), *query]).json()["data"]
        return listed[1]["content"][0]["logprobs"]  # type: ignore[no-any-return]

    assert logprobs_listed([]) == []
    assert logprobs_listed([("include", "file_search_call.results")]) == []
    assert logprobs_listed([("include", "message.output_text.logprobs")]) == answered
    assert logprobs_listed([("include[]", "message.output_text.logprobs")]) == answered
    refused = client.get(url, params={"include": "message.output_text.logprob"})
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "include"
    assert "message.output_text.logprob'" in refused.json()["error"]["message"]


def test_a_deleted_response_is_gone_and_the_ones_after_it_go_on(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    client, gateway = stored_api
    first = client.post("/v1/responses", json={"model": "tiny", "input": "One"}).json()
    asked = {"model": "tiny", "input": "Two", "previous_response_id": first["id"]}
    second = client.post("/v1/responses", json=asked).json()
    deleted = client.delete(f"/v1/responses/{first['id']}")
    assert deleted.json() == {"id": first["id"], "object": "response", "deleted": True}
    assert client.get(f"/v1/responses/{first['id']}").status_code == 404
    assert client.delete(f"/v1/responses/{first['id']}").status_code == 404
    asked = {"model": "tiny", "input": "Three", "previous_response_id": second["id"]}
    assert client.post("/v1/responses", json=asked).status_code == 200
    assert sent_messages(gateway)[0] == ("user", "One")


def test_cancel_is_for_background_responses_only(stored_api: tuple[TestClient, Gateway]) -> None:
    client, _ = stored_api
    body = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}).json()
    assert client.post(f"/v1/responses/{body['id']}/cancel").status_code == 400
    assert client.post("/v1/responses/resp_nope/cancel").status_code == 404


@pytest.mark.parametrize(
    ("method", "part", "status", "code", "allow"),
    [
        ("POST", "input_items", 405, "method_not_allowed", "GET, HEAD"),
        ("GET", "cancel", 405, "method_not_allowed", "POST"),
        ("GET", "bogus", 404, "unknown_url", None),
        ("GET", "input_items/extra", 404, "unknown_url", None),
    ],
)
def test_a_wrong_method_or_part_of_a_stored_response_is_answered_as_every_route_answers(
    stored_api: tuple[TestClient, Gateway],
    method: str,
    part: str,
    status: int,
    code: str,
    allow: str | None,
) -> None:
    """Before, a POST to `input_items` and a GET of `cancel` were 404 `not_found` ("Not
    found: ..."), while a DELETE of `input_items` was the 405 that OpenAI answers."""
    client, _ = stored_api
    path = f"/v1/responses/resp_nope/{part}"
    response = client.request(method, path)
    assert response.status_code == status
    verb = "Invalid method for URL" if status == 405 else "Invalid URL"
    assert response.json()["error"] == {
        "message": f"{verb} ({method} {path}).",
        "type": "invalid_request_error",
        "param": None,
        "code": code,
    }
    assert response.headers.get("allow") == allow


def test_with_storing_off_nothing_is_kept(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path, server={"store_responses": False}))
    with client:
        body = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}).json()
        assert body["store"] is False
        missing = client.get(f"/v1/responses/{body['id']}")
        assert missing.status_code == 404
        assert "server.store_responses" in missing.json()["error"]["message"]
        asked = {"model": "tiny", "input": "Hi", "previous_response_id": body["id"]}
        refused = client.post("/v1/responses", json=asked)
        assert refused.status_code == 400
        assert refused.json()["error"]["param"] == "previous_response_id"
    assert not (tmp_path / RESPONSES_FILE).exists()


def test_a_response_past_its_retention_is_not_found(tmp_path: Path) -> None:
    client, _ = fake_client(fake_settings(tmp_path, server={"stored_responses_days": 1}))
    with client:
        body = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}).json()
        with sqlite3.connect(tmp_path / RESPONSES_FILE) as connection:
            connection.execute("UPDATE responses SET created_at = created_at - 2 * 86400")
        assert client.get(f"/v1/responses/{body['id']}").status_code == 404


def test_the_stored_conversations_are_readable_by_this_user_only(
    stored_api: tuple[TestClient, Gateway], tmp_path: Path
) -> None:
    client, _ = stored_api
    assert client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}).status_code == 200
    assert (tmp_path / RESPONSES_FILE).stat().st_mode & 0o777 == 0o600


def test_another_callers_stored_response_cannot_be_found_from_ones_own_id(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    """Without API keys any local user may call the server: one request's id must not tell
    the ids of the conversations stored before it."""
    client, _ = stored_api
    theirs = client.post("/v1/responses", json={"model": "tiny", "input": "My PIN is 4921"})
    mine = client.post("/v1/responses", json={"model": "tiny", "input": "Hi", "store": False})
    my_id = mine.headers["x-request-id"]
    counted_down = {
        f"{int(my_id, 16) - 1:0{len(my_id)}x}",  # the whole id as one number
        f"{my_id[:12]}{int(my_id[12:24], 16) - 1:012x}{my_id[24:]}",  # a count inside it
    }
    assert client.get(f"/v1/responses/{theirs.json()['id']}").status_code == 200
    assert theirs.json()["id"] not in {f"resp_{guess}" for guess in counted_down}
    for guess in counted_down:
        assert client.get(f"/v1/responses/resp_{guess}").status_code == 404


def test_a_store_that_cannot_be_written_answers_with_store_false(tmp_path: Path) -> None:
    (tmp_path / RESPONSES_FILE).mkdir()  # a folder where the file should be
    client, _ = fake_client(fake_settings(tmp_path))
    with client:
        response = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"})
        assert response.status_code == 200
        assert response.json()["store"] is False
        missing = client.get(f"/v1/responses/{response.json()['id']}")
        assert missing.status_code == 503
        assert str(tmp_path) not in missing.text


def test_concurrent_writers_and_readers_lose_nothing(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / RESPONSES_FILE)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(25):
                response_id = f"resp_{worker}_{n}"
                store.put(response_id, None, [{"n": n}], {"id": response_id, "output": []})
                found = store.get(response_id, None)
                assert found is not None
                assert found.input_items == [{"n": n}]
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store.close()
    assert errors == []
    assert len(stored_ids(tmp_path)) == 150


def test_the_openai_sdk_chains_reads_lists_and_deletes(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    client, gateway = stored_api
    sdk = openai.OpenAI(base_url=f"{LOOPBACK}/v1", api_key="unused", http_client=client)
    first = sdk.responses.create(model="tiny", input="My name is Ada.")
    assert first.store is True
    fake_backend(gateway, "tiny").queue("You are Ada.")
    second = sdk.responses.create(model="tiny", input="Who am I?", previous_response_id=first.id)
    assert second.output_text == "You are Ada."
    assert second.previous_response_id == first.id
    assert sdk.responses.retrieve(second.id).model_dump() == second.model_dump()
    items = list(sdk.responses.input_items.list(second.id, order="asc", limit=1))  # pages
    assert [item.type for item in items] == ["message", "message", "message"]
    assert [json.loads(item.model_dump_json())["role"] for item in items] == [
        "user",
        "assistant",
        "user",
    ]
    sdk.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        sdk.responses.retrieve(first.id)
    with pytest.raises(openai.NotFoundError) as missing:
        sdk.responses.create(model="tiny", input="Hi", previous_response_id=first.id)
    assert missing.value.code == "previous_response_not_found"


def test_stored_turns_are_guarded_before_a_remote_tier_sees_them(
    stored_api: tuple[TestClient, Gateway],
) -> None:
    """A value from an earlier, local turn goes to the cloud model as its placeholder, as
    if the client had sent the whole conversation itself."""
    client, gateway = stored_api
    fake_backend(gateway, "tiny").queue(f"Noted: {EMAIL}.")
    first = client.post("/v1/responses", json={"model": "tiny", "input": f"Mail me at {EMAIL}."})
    assert EMAIL in sent_messages(gateway, "tiny")[0][1]  # local: as written
    fake_backend(gateway, "big").queue("I will write to <EMAIL_ADDRESS_1>.")
    asked = {
        "model": "big",
        "input": "Where will you write?",
        "previous_response_id": first.json()["id"],
    }
    answer = client.post("/v1/responses", json=asked).json()
    upstream = "\n".join(text for _, text in sent_messages(gateway, "big"))
    assert EMAIL not in upstream
    assert upstream.count("<EMAIL_ADDRESS_1>") == 2  # the question and the answer
    assert answer["output"][0]["content"][0]["text"] == f"I will write to {EMAIL}."


def test_stored_turns_with_pii_keep_a_local_only_chain_local(tmp_path: Path) -> None:
    policy = {"tier_policy": {"edge": "allow", "onprem": "allow", "cloud": "local_only"}}
    client, gateway = fake_client(fake_settings(tmp_path, privacy=policy))
    with client:
        first = client.post(
            "/v1/responses", json={"model": "tiny", "input": f"Mail me at {EMAIL}."}
        )
        asked = {"model": "auto", "input": "Summarize.", "previous_response_id": first.json()["id"]}
        routed = client.post("/v1/responses", json=asked, headers={"x-smallfirst-route": "cloud"})
        assert routed.json()["model"] == "tiny"
        direct = client.post("/v1/responses", json={**asked, "model": "big"})
        assert direct.status_code == 400
        assert fake_backend(gateway, "big").requests == []


def test_an_item_sent_again_after_previous_response_id_is_refused_as_openai_does(
    stored_api: tuple[TestClient, Gateway], tmp_path: Path
) -> None:
    """The stored response holds its output already: sent back too, the model read it twice."""
    client, gateway = stored_api
    first = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"}).json()
    (answer,) = first["output"]
    again = [answer, {"role": "user", "content": "And?"}]
    for asked in (
        {"model": "tiny", "input": again, "previous_response_id": first["id"]},
        {"model": "tiny", "input": [*again, answer]},  # twice in one input
    ):
        refused = client.post("/v1/responses", json=asked)
        assert refused.status_code == 400
        assert refused.json()["error"] == {
            "message": f"Duplicate item found with id {answer['id']}. Remove duplicate items"
            " from your input and try again.",
            "type": "invalid_request_error",
            "param": "input",
            "code": None,
        }
    assert len(fake_backend(gateway, "tiny").requests) == 1
    assert stored_ids(tmp_path) == [first["id"]]
    answered = client.post("/v1/responses", json={"model": "tiny", "input": again})
    assert answered.status_code == 200  # without previous_response_id: the items once each


@pytest.mark.parametrize("command", [["serve"], ["config", "check"]])
def test_serve_and_config_check_refuse_a_damaged_stored_responses_file_naming_it(
    tmp_path: Path, served: list[Any], command: list[str]
) -> None:
    """It started, answered every Responses request `store: false` and every chained one a
    503, and logged the file's error again at each; `config check` said OK."""
    from typer.testing import CliRunner

    from smallfirst.cli import app

    (tmp_path / RESPONSES_FILE).write_bytes(b"not a database, " * 512)
    config = tmp_path / "config.yaml"
    config.write_text(f"data_dir: {tmp_path}\n")
    result = CliRunner().invoke(app, [*command, "-c", str(config)])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: {tmp_path / RESPONSES_FILE} cannot be used for stored responses (file is not"
        " a database): move it aside to start a new one, or set server.store_responses: false\n"
    )
    assert served == []
    config.write_text(f"data_dir: {tmp_path}\nserver: {{store_responses: false}}\n")
    assert CliRunner().invoke(app, [*command, "-c", str(config)]).exit_code == 0
    assert len(served) == (command == ["serve"])

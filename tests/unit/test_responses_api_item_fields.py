"""The fields of /v1/responses input items and their content parts: an unknown one is a 400
naming it, as an unknown field of the request is; those OpenAI's items have are accepted,
the ones an earlier answer's items come back with included."""

from typing import Any

import pytest
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputRefusal,
    ResponseOutputText,
)
from starlette.testclient import TestClient

from smallfirst.backends.local_tools import prompt_messages
from smallfirst.service import Gateway
from smallfirst.types import ChatRequest
from tests.helpers import RESPONSES_WEATHER_TOOL, fake_backend

QUESTION = {"role": "user", "content": "Weather in Oslo?"}
CALL = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}
RESULT = {"type": "function_call_output", "call_id": "c1", "output": "rain"}


def with_bogus(item: dict[str, Any]) -> dict[str, Any]:
    return {**item, "bogus": 1}


def message(role: str, *parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": role, "content": list(parts)}


TEXT = {"type": "input_text", "text": "a"}
ANSWER = {"type": "output_text", "text": "Rain.", "annotations": []}
REFUSAL = {"type": "refusal", "refusal": "No."}


@pytest.mark.parametrize(
    ("items", "param"),
    [
        ([with_bogus(QUESTION)], "input.0.bogus"),
        ([{**with_bogus(QUESTION), "type": "message"}], "input.0.bogus"),
        ([message("user", with_bogus(TEXT))], "input.0.content.0.bogus"),
        (
            [message("user", {"type": "text", "text": "a", "cache": True})],
            "input.0.content.0.cache",
        ),
        ([QUESTION, message("assistant", ANSWER, with_bogus(REFUSAL))], "input.1.content.1.bogus"),
        (
            [QUESTION, message("assistant", {"type": "output_text", "text": "x", "citations": []})],
            "input.1.content.0.citations",
        ),
        ([QUESTION, with_bogus(CALL), RESULT], "input.1.bogus"),
        ([QUESTION, {**CALL, "function": {"name": "f"}}, RESULT], "input.1.function"),
        ([QUESTION, CALL, with_bogus(RESULT)], "input.2.bogus"),
        ([QUESTION, CALL, {**RESULT, "output": [with_bogus(TEXT)]}], "input.2.output.0.bogus"),
        ([QUESTION, CALL, {**RESULT, "content": "rain"}], "input.2.content"),
        ([QUESTION, {"type": "item_reference", "id": "msg_1", "role": "user"}], "input.1.role"),
    ],
)
def test_an_unknown_field_of_an_input_item_is_a_400_naming_it(
    api: tuple[TestClient, Gateway], items: list[dict[str, Any]], param: str
) -> None:
    """They were dropped without a word: `bogus` read as nothing, `citations` as no
    annotations, a chat-shaped `function` beside the call's own name as nothing at all."""
    client, _ = api
    body = {"model": "tiny", "input": items, "tools": [RESPONSES_WEATHER_TOOL]}
    response = client.post("/v1/responses", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["message"] == f"Unrecognized request argument supplied: {param}"
    assert error["type"] == "invalid_request_error"


def test_an_earlier_openai_answer_sent_back_as_input_is_accepted(
    api: tuple[TestClient, Gateway],
) -> None:
    """`input += response.output`, the items made by the openai SDK's own types with every
    field they have (as the SDK sends them: what the answer held, no more), and the input
    fields OpenAI's items have beside their text."""
    client, gateway = api
    answer = ResponseOutputMessage(
        id="msg_1",
        type="message",
        role="assistant",
        status="completed",
        phase="commentary",
        content=[
            ResponseOutputText.model_validate(
                {
                    "type": "output_text",
                    "text": "Let me look.",
                    "annotations": [
                        {"type": "url_citation", "url": "https://x.test", "title": "X",
                         "start_index": 0, "end_index": 3},
                    ],
                    "logprobs": [{"token": "Let", "logprob": -0.1, "bytes": [76, 101, 116],
                                  "top_logprobs": []}],
                }
            ),
            ResponseOutputRefusal(type="refusal", refusal="Not that."),
        ],
    )  # fmt: skip
    call = ResponseFunctionToolCall.model_validate(
        {**CALL, "id": "fc_1", "status": "completed", "caller": {"type": "direct"}}
    )
    result = {**RESULT, "id": "fco_1", "status": "completed", "name": "get_weather"}
    question = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "Weather in Oslo?"}],
        "phase": None,
    }
    items = [
        question,
        answer.model_dump(mode="json", exclude_unset=True),
        call.model_dump(mode="json", exclude_unset=True),
        result,
    ]
    body = {"model": "big", "input": items, "tools": [RESPONSES_WEATHER_TOOL]}
    response = client.post("/v1/responses", json=body)
    assert response.status_code == 200, response.json()
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert [m.role for m in sent.messages] == ["user", "assistant", "tool"]
    assert (sent.messages[1].text, sent.messages[1].refusal) == ("Let me look.", "Not that.")


def test_this_gateways_answer_and_stored_input_items_go_back_as_input(
    api: tuple[TestClient, Gateway],
) -> None:
    """Its answer's items, and its listing of a stored response's input items (ids,
    statuses, annotations and logprobs included), read as the conversation they were."""
    client, _ = api
    asked = {"model": "tiny", "input": [QUESTION], "include": ["message.output_text.logprobs"]}
    first = client.post("/v1/responses", json=asked).json()
    listed = client.get(f"/v1/responses/{first['id']}/input_items", params={"order": "asc"})
    assert [item["id"] for item in listed.json()["data"]] == [f"msg_{first['id'][5:]}_in0"]
    conversation = [*listed.json()["data"], *first["output"], {"role": "user", "content": "Ok"}]
    response = client.post("/v1/responses", json={"model": "tiny", "input": conversation})
    assert response.status_code == 200, response.json()


def test_a_prompt_cache_hint_goes_on_with_its_part(api: tuple[TestClient, Gateway]) -> None:
    """OpenAI's `prompt_cache_breakpoint` of an `input_text` part reaches a remote tier as
    chat's does (it was dropped); a wrong one is a 400 naming it."""
    client, gateway = api
    hint = {"mode": "explicit", "ttl": "12h"}
    part = {"type": "input_text", "text": "A shared preamble.", "prompt_cache_breakpoint": hint}
    body = {"model": "big", "input": [{"role": "system", "content": [part]}, QUESTION]}
    assert client.post("/v1/responses", json=body).status_code == 200
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert sent.openai_body()["messages"][0]["content"][0]["prompt_cache_breakpoint"] == hint
    part["prompt_cache_breakpoint"] = {"mode": "explicit", "ttl": "1h"}
    refused = client.post("/v1/responses", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "input.0.content.0.prompt_cache_breakpoint.ttl"


def test_input_text_parts_reach_a_local_model_on_lines(api: tuple[TestClient, Gateway]) -> None:
    """As chat's text parts: a line break between them, where they were glued."""
    client, gateway = api
    first = {"type": "input_text", "text": "When is the kettle"}
    second = {"type": "input_text", "text": "descaled?"}
    body = {"model": "tiny", "input": [message("user", first, second)]}
    assert client.post("/v1/responses", json=body).status_code == 200
    sent = fake_backend(gateway, "tiny").requests[-1]
    assert isinstance(sent, ChatRequest)
    assert prompt_messages(sent)[-1]["content"] == "When is the kettle\ndescaled?"

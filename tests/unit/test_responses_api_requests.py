"""POST /v1/responses requests: what is refused (a 400 naming the field in the Responses API's
terms), what is accepted though it changes nothing here, and input checked as chat checks it."""

from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.errors import ContextLengthExceeded
from smallfirst.service import Gateway
from tests.helpers import RESPONSES_WEATHER_TOOL, chat_body, fake_backend


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ({"reasoning": {"effort": "low"}}, "reasoning", "not supported"),
        ({"tools": [{"type": "web_search"}]}, "tools.0", "'web_search' are not supported"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
            "input.0.content.0.type",
            "'input_image' are not supported",
        ),
        ({"input": [{"type": "reasoning", "summary": []}]}, "input.0", "'reasoning' are not"),
        # OpenAI's fields for state it keeps; they read as unrecognized arguments
        ({"conversation": "conv_1"}, "conversation", "stores no conversations"),
        ({"conversation": {"id": "conv_1"}}, "conversation", "stores no conversations"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt", "stores no prompt templates"),
        ({"context_management": [{"type": "compaction"}]}, "context_management", "compacts"),
        ({"max_tool_calls": -1}, "max_tool_calls", "greater than or equal to 0"),
        # was "Invalid value for 'tool_choice.name': Field required"
        (
            {"tools": [RESPONSES_WEATHER_TOOL], "tool_choice": {"type": "web_search_preview"}},
            "tool_choice",
            "tool_choice of type 'web_search_preview' is not supported",
        ),
        (
            {"tools": [RESPONSES_WEATHER_TOOL], "tool_choice": {"type": "function"}},
            "tool_choice.name",
            "Missing required parameter: 'tool_choice.name'.",
        ),
        ({"background": True}, "background", "each answer here comes in the request"),
        ({"stream_options": {"include_usage": True}}, "stream_options.include_usage", ""),
        ({"temperature": 3}, "temperature", "less than or equal to 2"),
        # named as the Responses API names them, not as the chat request made of them
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema", ""),
        ({"max_output_tokens": "5"}, "max_output_tokens", "expected an integer"),
        (
            {"tools": [{"type": "function", "name": "bad name", "parameters": {}}]},
            "tools.0.name",
            "should match pattern",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_text"}]}]},
            "input.0.content.0.text",
            "a part of type 'input_text' needs its text",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Weather in Oslo?"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": {"a": 1}},
                ]
            },
            "input.1.arguments",
            "expected a string",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Weather in Oslo?"},
                    {"type": "function_call_output", "call_id": "c9", "output": "rain"},
                ]
            },
            "input",
            "No tool call found for function call output with call_id c9.",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Weather in Oslo?"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {
                        "type": "function_call_output",
                        "call_id": "c1",
                        "output": [{"type": "input_text", "text": "a"}, {"type": "input_image"}],
                    },
                ]
            },
            "input.2.output.1.type",  # was input.2
            "'input_image' are not supported",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Weather in Oslo?"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                ]
            },
            "input",
            "No tool output found for function call c1.",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Weather in Oslo and Bergen?"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c1", "output": "rain"},
                    {"role": "user", "content": "thanks"},  # was worded for chat messages
                    {"type": "function_call_output", "call_id": "c2", "output": "sun"},
                ]
            },
            "input",
            "No tool output found for function call c2.",
        ),
        (  # which call would an output answer? (OpenAI refuses it too)
            {
                "input": [
                    {"role": "user", "content": "Weather in Oslo and Bergen?"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"type": "function_call", "call_id": "c1", "name": "g", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c1", "output": "rain"},
                ]
            },
            "input",
            "Duplicate 'call_id': c1.",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Weather in Oslo?"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c1", "output": "rain"},
                    {"type": "function_call_output", "call_id": "c1", "output": "sun"},
                ]
            },
            "input",
            "Duplicate function_call_output for call_id c1.",
        ),
        (  # was "content must be text or a list of parts", naming the item
            {
                "input": [
                    {"role": "user", "content": "Weather in Oslo?"},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c1"},
                ]
            },
            "input.2.output",
            "input.2: output is required",
        ),
        (  # was "role None", named in Python and as the item
            {"input": [{"content": "Hi"}]},
            "input.0.role",
            "input.0: role null is not a message role (user, system, developer or assistant)",
        ),
    ],
)
def test_what_cannot_be_honoured_is_a_400_naming_the_field(
    api: tuple[TestClient, Gateway], body: dict[str, Any], param: str, fragment: str
) -> None:
    client, _ = api
    response = client.post("/v1/responses", json={"model": "tiny", "input": "Hi", **body})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert fragment in error["message"]


def test_langchains_truncation_auto_is_answered_and_its_overflow_reads_as_one(
    api: tuple[TestClient, Gateway],
) -> None:
    """LangChain's `ChatOpenAI(use_responses_api=True, truncation="auto")` sends this (it was
    a 400 naming `truncation`). A prompt too long even truncated is the 400 it knows as a
    context overflow (`OpenAIContextOverflowError`): code `context_length_exceeded`."""
    client, gateway = api
    sent = {
        "input": [{"content": "Hi", "role": "user", "type": "message"}],
        "model": "tiny",
        "stream": False,
        "truncation": "auto",
    }
    response = client.post("/v1/responses", json=sent)
    assert response.status_code == 200
    assert response.json()["truncation"] == "auto"
    too_long = ContextLengthExceeded("This model's maximum context length is 2048 tokens.")
    fake_backend(gateway, "tiny").queue(too_long)  # nothing to drop: the question alone
    refused = client.post("/v1/responses", json=sent)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "context_length_exceeded"


def test_an_unknown_response_is_a_404_naming_it(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    for method in ("GET", "DELETE"):
        response = client.request(method, "/v1/responses/resp_123")
        assert response.status_code == 404
        assert response.json()["error"]["message"] == "Response with id 'resp_123' not found."
    # `client.responses.input_items.list(id)`: was "Response `resp_123/input_items`"
    # `client.responses.cancel(id)`: was a 405
    for method, part in (("GET", "input_items"), ("POST", "cancel")):
        response = client.request(method, f"/v1/responses/resp_123/{part}")
        assert response.status_code == 404
        assert "'resp_123' not found" in response.json()["error"]["message"]


def test_a_trailing_slash_is_redirected_like_every_route(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    body = {"model": "tiny", "input": "Hi"}
    redirect = client.post("/v1/responses/", json=body, follow_redirects=False)  # was a 405
    assert redirect.status_code == 307
    assert redirect.headers["location"].endswith("/v1/responses")
    assert client.post("/v1/responses/", json=body).json()["object"] == "response"


def test_a_conversation_too_long_names_input(api: tuple[TestClient, Gateway]) -> None:
    client, gateway = api
    too_long = ContextLengthExceeded("This model's maximum context length is 2048 tokens.")
    too_long.param = "messages"  # as the engine names it for the chat request
    fake_backend(gateway, "tiny").queue(too_long)
    response = client.post("/v1/responses", json={"model": "tiny", "input": "Hi"})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"


@pytest.mark.parametrize(
    ("content", "param"),
    [([], "input.0.content"), ([{"text": "Hi"}], "input.0.content.0.type")],
)
def test_message_content_is_checked_as_chat_checks_it(
    api: tuple[TestClient, Gateway], content: list[Any], param: str
) -> None:
    client, _ = api
    body = {"model": "tiny", "input": [{"role": "user", "content": content}]}
    response = client.post("/v1/responses", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


# A content part in the Responses API's words and in chat's
PARTS = {
    "text": ({"type": "input_text", "text": "Hi"}, {"type": "text", "text": "Hi"}),
    "answer": ({"type": "output_text", "text": "Hi"}, {"type": "text", "text": "Hi"}),
    "refusal": ({"type": "refusal", "refusal": "No."},) * 2,
    "image": ({"type": "input_image", "image_url": "x"}, {"type": "image_url", "image_url": {}}),
    "no text": ({"type": "output_text"}, {"type": "text"}),
    "number": ({"type": "output_text", "text": 5}, {"type": "text", "text": 5}),
}


@pytest.mark.parametrize(
    ("role", "parts", "param"),
    [
        ("assistant", ["refusal", "answer", "no text"], "1.content.2.text"),
        ("assistant", ["refusal", "number"], "1.content.1.text"),
        ("assistant", ["answer", "refusal", "image"], "1.content.2.type"),
        ("user", ["text", "text", "refusal"], "2.content.2.type"),
        ("user", ["text", "image", "text"], "2.content.1.type"),
    ],
)
@pytest.mark.parametrize("endpoint", ["/v1/responses", "/v1/chat/completions"])
def test_a_faulty_content_part_is_named_where_the_client_put_it(
    api: tuple[TestClient, Gateway], endpoint: str, role: str, parts: list[str], param: str
) -> None:
    """An assistant's refusal parts were taken out before its other parts were checked: a
    part after one was named one place too early (chat); an unsupported part was named by
    its message only (both)."""
    client, _ = api
    chat = endpoint == "/v1/chat/completions"
    content = [PARTS[name][chat] for name in parts]
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    turns += [{"role": "user", "content": "And?"}]
    turns[1 if role == "assistant" else 2] = {"role": role, "content": content}
    body = chat_body(messages=turns) if chat else {"model": "tiny", "input": turns}
    response = client.post(endpoint, json=body)
    assert response.status_code == 400
    where = "messages" if chat else "input"
    assert response.json()["error"]["param"] == f"{where}.{param}"


def test_reasoning_that_asks_for_nothing_is_accepted(api: tuple[TestClient, Gateway]) -> None:
    """`{"effort": null, "summary": null}` was refused, though `{}` was accepted."""
    client, _ = api
    asked = {"model": "tiny", "input": "Hi", "reasoning": {"effort": None, "summary": None}}
    assert client.post("/v1/responses", json=asked).status_code == 200
    asked["reasoning"] = {"effort": "low", "summary": None}
    assert client.post("/v1/responses", json=asked).json()["error"]["param"] == "reasoning"


@pytest.mark.parametrize(
    ("metadata", "param", "fragment"),
    [
        ({f"k{i}": "v" for i in range(17)}, "metadata", "at most 16 key-value pairs, got 17"),
        ({"k" * 65: "v"}, "metadata", "a key of 65 characters"),
        ({"k": "v" * 513}, "metadata.k", "a value of 513 characters"),
    ],
)
@pytest.mark.parametrize("endpoint", ["/v1/responses", "/v1/chat/completions"])
def test_metadata_beyond_openais_bounds_is_a_400(
    api: tuple[TestClient, Gateway],
    endpoint: str,
    metadata: dict[str, str],
    param: str,
    fragment: str,
) -> None:
    """Was accepted here, and a 400 from an OpenAI upstream: the same request failed or not
    by the tier that answered it."""
    client, _ = api
    body = chat_body(metadata=metadata)
    if endpoint == "/v1/responses":
        body = {"model": "tiny", "input": "Hi", "metadata": metadata}
    response = client.post(endpoint, json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert fragment in error["message"]
    at_the_bounds = {f"{i:0>64}": "v" * 512 for i in range(16)}
    assert client.post(endpoint, json={**body, "metadata": at_the_bounds}).status_code == 200

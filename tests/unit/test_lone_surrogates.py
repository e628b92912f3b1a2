"""Half a UTF-16 surrogate pair: JSON lets a string escape one (`"\\ud800"`), Python's `json`
reads it, and no UTF-8 can encode it. Refused by name in requests; read as U+FFFD from an
upstream; kept as an escape in a local model's tool call; U+FFFD from `smallfirst chat`'s
arguments and standard input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from smallfirst.backends import local_tools
from smallfirst.cli import app
from smallfirst.completions import Completion
from smallfirst.errors import SmallfirstError
from smallfirst.service import Gateway
from smallfirst.surrogates import loads_replacing_surrogates
from smallfirst.types import ChatRequest
from tests.helpers import fake_client, fake_settings
from tests.unit.test_chat_cli import config_with_replies, recorded_turns
from tests.unit.test_openai_compat import REQUEST, TOOL_REQUEST, upstream
from tests.unit.test_openai_compat_quirks import answering, failing, streamed

LONE = b'"a\\ud800b"'  # as a client's JSON encoder writes a string cut inside an emoji


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        (
            "/v1/chat/completions",
            b'{"model":"tiny","messages":[{"role":"user","content":%s}]}',
            "messages.0.content",
        ),
        (
            "/v1/chat/completions",
            b'{"model":"tiny","messages":[{"role":"user","content":"hi"}],"metadata":{%s:"v"}}',
            "metadata",
        ),
        ("/v1/completions", b'{"model":"tiny","prompt":["ok",%s]}', "prompt.1"),
        (
            "/v1/responses",
            b'{"model":"tiny","input":[{"role":"user","content":[{"type":"input_text","text":%s}]}]}',
            "input.0.content.0.text",
        ),
    ],
)
def test_a_lone_surrogate_in_a_request_is_a_400_naming_its_field(
    api: tuple[TestClient, Gateway], path: str, body: bytes, param: str
) -> None:
    client, _ = api
    for lone in (LONE, b'"\\udfff"', b'"end\\ud83d"'):
        response = client.post(path, content=body % lone)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param
        assert "surrogate" in error["message"]
        assert "x-request-id" in response.headers


def test_a_request_refused_for_a_lone_surrogate_is_logged_under_the_model_it_named(
    tmp_path: Path,
) -> None:
    """It was logged as "unknown": the log's reader of the body could not read the escape."""
    client, _ = fake_client(fake_settings(tmp_path))
    body = b'{"model":"tiny","messages":[{"role":"user","content":%s}]}' % LONE
    with client:
        assert client.post("/v1/chat/completions", content=body).status_code == 400
    (logged,) = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT model_requested FROM requests"
    )
    assert logged == ("tiny",)


def test_a_body_that_is_not_json_for_another_reason_too_keeps_the_parsers_words(
    api: tuple[TestClient, Gateway],
) -> None:
    client, _ = api
    response = client.post("/v1/chat/completions", content=b'{"model": %s,' % LONE)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("We could not parse the JSON body")


def test_bytes_that_are_not_utf8_are_a_400_that_says_so(api: tuple[TestClient, Gateway]) -> None:
    client, _ = api
    body = b'{"model":"tiny","messages":[{"role":"user","content":"caf\xe9"}]}'
    response = client.post("/v1/chat/completions", content=body)
    assert response.status_code == 400
    assert "not UTF-8 at line 1 column" in response.json()["error"]["message"]


def test_a_utf8_byte_order_mark_before_the_body_is_ignored(
    api: tuple[TestClient, Gateway],
) -> None:
    client, _ = api
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}]})
    response = client.post("/v1/chat/completions", content=b"\xef\xbb\xbf" + body.encode())
    assert response.status_code == 200, response.text


async def test_an_upstreams_lone_surrogate_reads_as_a_replacement_character() -> None:
    raw = b'{"choices":[{"message":{"content":"a\\ud800b \\ud83d\\ude00"},"finish_reason":"stop"}]}'
    async with upstream(answering(raw)) as backend:
        answer = await backend.complete(REQUEST)
    assert answer.text == "a\ufffdb \U0001f600"


def test_an_upstreams_lone_surrogate_in_a_key_reads_as_a_replacement_character() -> None:
    """A legacy completion's `top_logprobs` are keyed by token, and a token can be half a
    pair: such a key could not be written out as UTF-8."""
    raw = b'{"top_logprobs":[{"\\ud83d":-0.5,"a\\ude00":-1.0}]}'
    assert loads_replacing_surrogates(raw) == {"top_logprobs": [{"\ufffd": -0.5, "a\ufffd": -1.0}]}


async def test_an_upstreams_streamed_lone_surrogate_reads_as_a_replacement_character() -> None:
    raw = (
        b'data: {"choices":[{"delta":{"content":"x\\udfff"},"finish_reason":null}]}\n\n'
        b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    chunks = await streamed(raw)
    assert "".join(chunk.text for chunk in chunks) == "x\ufffd"


async def test_a_pair_split_between_two_streamed_events_is_one_character() -> None:
    """A server that streams UTF-16 pieces (a JavaScript string sliced) may cut an emoji
    between its halves: each half alone read as U+FFFD, two of them for one emoji."""
    raw = (
        b'data: {"choices":[{"delta":{"content":"a\\ud83d"},"finish_reason":null}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"\\ude00b"},"finish_reason":null}]}\n\n'
        b'data: {"choices":[{"delta":{"reasoning_content":"\\ud83d"},"finish_reason":null}]}\n\n'
        b'data: {"choices":[{"delta":{"reasoning_content":"\\ude00"},"finish_reason":null}]}\n\n'
        b'data: {"choices":[{"delta":{"content":"c\\ud83d"},"finish_reason":null}]}\n\n'
        b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
    )
    chunks = await streamed(raw)
    assert "".join(chunk.text for chunk in chunks) == "a\U0001f600bc\ufffd"  # the last: alone
    assert "".join(chunk.reasoning for chunk in chunks) == "\U0001f600"


async def test_a_pair_split_between_two_pieces_of_a_streamed_call_is_one_character() -> None:
    def piece(arguments: str, **first: str) -> bytes:
        call = {"index": 0, **first, "function": {"arguments": arguments}}
        event = {"choices": [{"delta": {"tool_calls": [call]}, "finish_reason": None}]}
        return b"data: " + json.dumps(event).encode() + b"\n\n"

    raw = (
        piece('{"q": "\ud83d', id="call_1", type="function")
        + piece('\ude00"}')
        + b'data: {"choices":[{"delta":{},"finish_reason":"tool_calls"}]}\n\ndata: [DONE]\n\n'
    )
    chunks = await streamed(raw, TOOL_REQUEST.model_copy(update={"stream": True}))
    arguments = "".join(d.arguments for chunk in chunks for d in chunk.tool_calls or [])
    assert json.loads(arguments) == {"q": "\U0001f600"}


async def test_an_upstream_errors_lone_surrogate_reads_as_a_replacement_character() -> None:
    told = {"message": "bad \ud800 thing"}  # json.dumps sends it as an escape
    handle, _ = failing(400, "0", told)
    async with upstream(handle) as backend:
        with pytest.raises(SmallfirstError) as caught:
            await backend.complete(REQUEST)
    assert "bad \ufffd thing" in caught.value.message


def test_a_local_tool_calls_escaped_lone_surrogate_stays_an_escape() -> None:
    request = ChatRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
        }
    )
    written = Completion(text='{"name": "f", "arguments": {"q": "\\ud888 é"}}')
    (call,) = local_tools.as_tool_call(request, written).tool_calls or []
    arguments = call.function.arguments
    arguments.encode()  # was a lone surrogate: the answer could not be written (500)
    assert json.loads(arguments) == {"q": "\ud888 é"}


def test_chat_arguments_and_piped_text_that_are_not_utf8_are_asked_with_replacements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = recorded_turns(monkeypatch)
    undecodable = b"caf\xe9".decode("utf-8", errors="surrogateescape")  # as argv holds it
    config = config_with_replies(tmp_path, "ok")
    result = CliRunner().invoke(
        app,
        ["chat", "--config", str(config), "--system", undecodable, undecodable],
        input=b"notes \xff\n",
    )
    assert result.exit_code == 0, result.output  # was a traceback: "surrogates not allowed"
    assert sent == [["caf\ufffd", "notes \ufffd\n\ncaf\ufffd"]]

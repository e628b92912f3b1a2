"""Legacy completions' `logprobs.text_offset` with characters that take several tokens: the
character offset of each token in the returned text, the same streamed or not."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.backends.llamacpp_answer import AnswerWriter, PreparedPrompt, PromptEcho
from smallfirst.backends.openai_wire import StreamReader, completion_of
from smallfirst.completions import Chunk, Completion, TokenLogprob, completion_from_chunks
from smallfirst.types import GenerateRequest
from tests.helpers import fake_backend, fake_client, fake_settings

STAR = "🌟".encode()  # four bytes, split over tokens below as a byte-level vocabulary does
PROMPT = [b"Hi", b" " + STAR[:1], STAR[1:]]  # "Hi 🌟"
ANSWER = [b"A", b" " + STAR[:2], STAR[2:3], STAR[3:], b"!"]  # "A 🌟!"


def _logprob(piece: bytes, logprob: float | None = -0.5) -> TokenLogprob:
    """As the local engine spells a token: its text, and its bytes when the text cannot show
    them (a piece of a character reads as U+FFFD)."""
    text = piece.decode(errors="replace")
    return TokenLogprob(
        token=text, logprob=logprob, utf8=list(piece) if text.encode() != piece else None
    )


def _chunks(request: GenerateRequest, answer: list[bytes]) -> list[Chunk]:
    """The chunks the local engine makes of these tokens (its own echo and answer writers)."""
    chunks: list[Chunk] = []
    echo = getattr(request, "echo", False)
    vocabulary = [*PROMPT, *answer]
    if echo:
        prompt_echo = PromptEcho(chunks.append, vocabulary.__getitem__)
        for token, piece in enumerate(PROMPT):
            prompt_echo.add(token, _logprob(piece, None if token == 0 else -0.5))
        prompt_echo.flush()
    limit = request.token_limit or len(answer)
    writer = AnswerWriter(
        PreparedPrompt(tokens=list(range(len(PROMPT))), max_tokens=limit, stop=[]),
        chunks.append,
        token_bytes=vocabulary.__getitem__,
        is_end=lambda token: token >= len(vocabulary),
        cached_tokens=0,
    )
    for token in range(len(PROMPT), len(vocabulary) + 1):
        if writer.add(token, lambda t: _logprob(vocabulary[t])):
            break
    writer.finish()
    return chunks


def _answering(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    whole: Callable[[GenerateRequest], Completion],
    pieces: Callable[[GenerateRequest], list[Chunk]],
) -> Iterator[TestClient]:
    """A client of a gateway whose model "tiny" answers `whole`, or `pieces` when streamed."""
    client, gateway = fake_client(fake_settings(tmp_path))
    backend = fake_backend(gateway, "tiny")

    async def complete(request: GenerateRequest) -> Completion:
        return whole(request)

    async def stream(request: GenerateRequest) -> AsyncIterator[Chunk]:
        for chunk in pieces(request):
            yield chunk

    monkeypatch.setattr(backend, "complete", complete)
    monkeypatch.setattr(backend, "stream", stream)
    with client:
        yield client


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The fake model answers ANSWER token by token, as the local engine would."""

    def whole(request: GenerateRequest) -> Completion:
        return completion_from_chunks(_chunks(request, ANSWER), with_logprobs=True)

    yield from _answering(tmp_path, monkeypatch, whole, lambda request: _chunks(request, ANSWER))


def _legacy(text: str, tokens: list[str], offsets: list[int]) -> dict[str, Any]:
    """A text completion choice with logprobs as an upstream sends them: no bytes, so a piece
    of a character reads as U+FFFD, and where each token begins (`text_offset`)."""
    logprobs = {
        "tokens": tokens,
        "token_logprobs": [-0.5] * len(tokens),
        "top_logprobs": [{token: -0.5} for token in tokens],
        "text_offset": offsets,
    }
    return {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": None}


@pytest.fixture
def remote_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The model answers "－－!" as a remote upstream does (its own offsets count from the
    start of the prompt, 7 characters): each "－" is two tokens that begin where it does."""
    whole = {"choices": [_legacy("－－!", ["\ufffd"] * 4 + ["!"], [7, 7, 8, 8, 9])]}
    events = [
        _legacy("", ["\ufffd"], [7]),
        _legacy("－", ["\ufffd"], [7]),
        _legacy("－!", ["\ufffd", "\ufffd", "!"], [8, 8, 9]),
    ]
    reader = StreamReader("tiny", 1)
    pieces = [
        chunk for event in events for chunk in reader.chunks(json.dumps({"choices": [event]}))
    ]
    stop = {"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]}
    pieces += reader.chunks(json.dumps(stop)) + reader.ending({}, done=True)
    answer = completion_of(whole, {}, "tiny")
    yield from _answering(tmp_path, monkeypatch, lambda _: answer, lambda _: pieces)


def _answer(client: TestClient, **fields: Any) -> tuple[str, list[int], list[int]]:
    """The text and offsets of the whole answer, and the offsets of the streamed one."""
    body = {"model": "tiny", "prompt": "Hi 🌟", "logprobs": 1, **fields}
    choice = client.post("/v1/completions", json=body).json()["choices"][0]
    streamed = client.post("/v1/completions", json={**body, "stream": True})
    events = [
        json.loads(line.removeprefix("data: "))
        for line in streamed.text.splitlines()
        if line.startswith("data: {")
    ]
    offsets = [
        offset
        for event in events
        for piece in event["choices"]
        if piece["logprobs"] is not None
        for offset in piece["logprobs"]["text_offset"]
    ]
    streamed_text = "".join(piece["text"] for event in events for piece in event["choices"])
    assert streamed_text == choice["text"]
    return choice["text"], choice["logprobs"]["text_offset"], offsets


def test_a_character_split_over_tokens_starts_each_of_them(api: TestClient) -> None:
    text, offsets, streamed = _answer(api)
    assert text == "A 🌟!"
    # "A", " " + part of the star, two more parts of it (where the star starts), "!"
    assert offsets == streamed == [0, 1, 2, 2, 3]
    assert text[offsets[-1]] == "!"


def test_echoed_offsets_run_on_from_the_prompt(api: TestClient) -> None:
    text, offsets, streamed = _answer(api, echo=True)
    assert text == "Hi 🌟" + "A 🌟!"
    assert offsets == streamed == [0, 2, 3, 4, 5, 6, 6, 7]
    assert [text[offset] for offset in offsets] == ["H", " ", "🌟", "A", " ", "🌟", "🌟", "!"]


def test_a_character_cut_by_max_tokens_is_not_past_the_text(api: TestClient) -> None:
    text, offsets, streamed = _answer(api, max_tokens=3)
    assert text == "A "  # the star's last byte never came, so neither does the star
    assert offsets == streamed == [0, 1, 2]


def test_a_remote_answers_offsets_are_its_own_from_the_answers_start(
    remote_api: TestClient,
) -> None:
    text, offsets, streamed = _answer(remote_api)
    assert text == "－－!"
    assert offsets == streamed == [0, 0, 1, 1, 2]

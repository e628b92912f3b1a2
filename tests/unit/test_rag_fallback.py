"""A grounded request whose first model fails falls back to a model with a smaller context:
the retrieved sources are sized again for the model that answers, never sent as they were
sized for the failed one."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from smallfirst.errors import UpstreamError
from smallfirst.rag import ingest_paths, open_store
from smallfirst.rag.prompt import SOURCES_REMINDER
from smallfirst.types import ChatRequest
from tests.helpers import chat_body, fake_backend, fake_client, fake_settings

TOPICS = ["kettle", "printer", "parking", "badges", "lockers", "plants", "mail", "bikes"]
QUESTION = "What does the office handbook say?"
RESERVE = 64
MID_CONTEXT = 700  # holds a few of the sources sized for the cloud's 8192 tokens, not all


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rag")
    folder = root / "docs"
    folder.mkdir()
    for topic in TOPICS:
        words = " ".join(f"{topic} rule {n}." for n in range(12))
        (folder / f"{topic}.md").write_text(f"# {topic}\n\nThe office handbook says: {words}\n")
    ingest_paths(open_store(root), [folder], collection="office")
    return root


def settings_with(data_dir: Path, mid_context: int, **overrides: Any) -> Any:
    models = [
        {"id": "mid", "tier": "onprem", "backend": "fake", "context_length": mid_context},
        {"id": "big", "tier": "cloud", "backend": "fake", "context_length": 8192},
    ]
    rag = {
        "collections": {"office": {"private": False}},
        "k": len(TOPICS),
        "method": "bm25",
        "reserve_tokens": RESERVE,
    }
    return fake_settings(
        data_dir, models=models, routing={"router": "rules", "threshold": 0.0}, rag=rag, **overrides
    )


def citations_of(response: Any, stream: bool) -> list[dict[str, Any]]:
    if not stream:
        return list(response.json()["smallfirst"]["citations"])
    events = [json.loads(line[6:]) for line in response.text.splitlines() if "smallfirst" in line]
    return list(events[0]["smallfirst"]["citations"])


@pytest.mark.parametrize("stream", [False, True])
def test_a_fallback_with_a_smaller_context_gets_the_sources_it_holds(
    data_dir: Path, stream: bool
) -> None:
    """The cloud failed; on-prem's context holds fewer of the sources sized for the cloud.
    Sent them all, it refused the prompt, and the client got the cloud's 502."""
    client, gateway = fake_client(settings_with(data_dir, MID_CONTEXT))
    with client:
        fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 503"))
        body = chat_body("rag/office", messages=[{"role": "user", "content": QUESTION}])
        response = client.post("/v1/chat/completions", json={**body, "stream": stream})
        assert response.status_code == 200, response.text
        cloud_prompt = fake_backend(gateway, "big").requests[0]
        mid_prompt = fake_backend(gateway, "mid").requests[0]
    assert isinstance(cloud_prompt, ChatRequest)
    assert isinstance(mid_prompt, ChatRequest)
    sized_for_cloud = re.findall(r'<source id="(S\d+)"', cloud_prompt.messages[0].text)
    sent_to_mid = re.findall(r'<source id="(S\d+)"', mid_prompt.messages[0].text)
    assert len(sized_for_cloud) == len(TOPICS)
    assert 0 < len(sent_to_mid) < len(sized_for_cloud)
    count_tokens = asyncio.run(_counter(gateway, "mid"))
    prompt = sum(count_tokens(m.text) + 4 for m in mid_prompt.messages)
    assert prompt + RESERVE <= MID_CONTEXT
    assert [c["id"] for c in citations_of(response, stream)] == sent_to_mid  # what it read
    if not stream:
        reason = response.json()["smallfirst"]["reason"]
        assert f"mid's context of {MID_CONTEXT} tokens holds {len(sent_to_mid)} of the" in reason


def test_a_fallback_whose_context_holds_no_source_is_skipped(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Not asked at all (an answer without its sources would look grounded): the client gets
    the failed tier's error, and the reason says why the fallback was not tried."""
    client, gateway = fake_client(settings_with(data_dir, 350))
    with client:
        fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 503"))
        body = chat_body("rag/office", messages=[{"role": "user", "content": QUESTION}])
        response = client.post("/v1/chat/completions", json=body)
        assert not fake_backend(gateway, "mid").requests
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "big: upstream answered 503"
    assert "mid skipped: its context of 350 tokens holds no retrieved source" in caplog.text


def test_the_resized_sources_are_redacted_for_the_fallback_as_they_read(tmp_path: Path) -> None:
    """A public collection's PII, redacted for an on-prem tier under `redact`: the guard's
    findings are those of the prompt the fallback is sent, not of the longer one."""
    folder = tmp_path / "docs"
    folder.mkdir()
    for topic in TOPICS:
        rules = " ".join(f"{topic} rule {n}." for n in range(12))
        mail = f"Write to {topic}.desk@example.com about it."
        (folder / f"{topic}.md").write_text(f"# {topic}\n\n{mail} The handbook says: {rules}\n")
    ingest_paths(open_store(tmp_path), [folder], collection="office")
    privacy = {"tier_policy": {"edge": "allow", "onprem": "redact", "cloud": "redact"}}
    client, gateway = fake_client(settings_with(tmp_path, MID_CONTEXT, privacy=privacy))
    with client:
        fake_backend(gateway, "big").queue(UpstreamError("big: upstream answered 503"))
        body = chat_body("rag/office", messages=[{"role": "user", "content": QUESTION}])
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        sent = fake_backend(gateway, "mid").requests[0]
    assert isinstance(sent, ChatRequest)
    system = sent.messages[0].text
    assert "@example.com" not in system
    sources = len(re.findall(r'<source id="S\d+"', system))
    assert 0 < sources < len(TOPICS)
    # each source's address replaced whole, and nothing else: the findings of the longer
    # prompt, sources left out included, fell on the reminder after the sources
    assert len(re.findall(r"Write to <EMAIL_ADDRESS_\d+> about it\.", system)) == sources
    assert len(re.findall(r"<EMAIL_ADDRESS_\d+>", system)) == sources
    assert system.endswith(SOURCES_REMINDER)


async def _counter(gateway: Any, model: str) -> Any:
    async with fake_backend(gateway, model).token_counter() as count_tokens:
        return count_tokens

"""`suffix` (fill in the middle) on /v1/completions with fake backends: passed on to the
model asked for, guarded like the prompt, and refused where it cannot mean anything."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from smallfirst.service import Gateway
from smallfirst.types import TextRequest
from tests.helpers import fake_backend

EMAIL = "john.smith@example.com"


def complete(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/completions", json={"model": "big", "max_tokens": 8, **body})


def test_a_suffix_is_redacted_for_the_cloud_and_restored_in_the_answer(
    api: tuple[TestClient, Gateway],
) -> None:
    client, gateway = api
    fake_backend(gateway, "big").queue('"<EMAIL_ADDRESS_1>"')
    response = complete(client, prompt="def contact():\n    return ", suffix=f"\n# {EMAIL}\n")
    assert response.status_code == 200, response.text
    sent = fake_backend(gateway, "big").requests[-1]
    assert isinstance(sent, TextRequest)
    assert sent.suffix is not None
    assert EMAIL not in sent.suffix
    assert "<EMAIL_ADDRESS_1>" in sent.openai_body()["suffix"]
    assert response.json()["choices"][0]["text"] == f'"{EMAIL}"'


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"model": "auto"}, "suffix (fill in the middle) needs a model asked for by id"),
        ({"echo": True}, "echo returns the prompt, and with a suffix the answer goes between"),
        ({"prompt": [1, 2, 3]}, "suffix needs a text prompt, not token ids"),
    ],
)
def test_a_suffix_where_it_cannot_mean_anything_is_a_400(
    api: tuple[TestClient, Gateway], body: dict[str, Any], fragment: str
) -> None:
    client, _ = api
    response = complete(client, **{"prompt": "def f(x):", "suffix": "return y", **body})
    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]

"""A RAG answer from the real bundled model over a folder ingested with the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.integration.conftest import start_server

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A `geo` collection of three files, ingested with the CLI."""
    root = tmp_path_factory.mktemp("rag-answer")
    docs = root / "docs"
    docs.mkdir()
    (docs / "volcanoes.md").write_text(
        "# Volcanoes\n\nMount Teide on Tenerife is the highest peak in Spain, 3,715 metres."
    )
    (docs / "rivers.txt").write_text("The Tagus is the longest river of the Iberian Peninsula.")
    (docs / "recipes.html").write_text(
        "<html><body><h1>Paella</h1>"
        "<p>Paella comes from Valencia and uses saffron.</p></body></html>"
    )
    data_dir = root / "server" / "data"
    ingest = [sys.executable, "-m", "smallfirst", "rag", "ingest", str(docs)]
    subprocess.run(
        [*ingest, "--collection", "geo", "--data-dir", str(data_dir)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return data_dir


def test_rag_answer_cites_the_right_file(data_dir: Path) -> None:
    config = {"models": [{"id": "smollm2-135m", "tier": "edge", "context_length": 2048}]}
    server = start_server(config, data_dir.parent)
    try:
        response = httpx.post(
            f"{server.url}/v1/chat/completions",
            json={
                "model": "rag/geo",
                "messages": [{"role": "user", "content": "What is the highest peak in Spain?"}],
                "max_tokens": 40,
                "temperature": 0,
            },
            timeout=120,
        )
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    body = response.json()
    citations = body["smallfirst"]["citations"]
    assert Path(citations[0]["source"]).name == "volcanoes.md"
    assert citations[0]["char_end"] > citations[0]["char_start"]
    assert body["model"] == "smollm2-135m"
    assert body["choices"][0]["message"]["content"]


def test_chat_command_answers_from_the_collection_and_cites_it(data_dir: Path) -> None:
    config = data_dir.parent / "chat.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(data_dir)}))
    question = "What is the highest peak in Spain?"
    command = [sys.executable, "-m", "smallfirst", "chat", question, "--rag", "geo"]
    done = subprocess.run(
        [*command, "--max-tokens", "20", "--config", str(config)],
        timeout=300,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    lines = done.stderr.splitlines()
    first_source = next(line for line in lines if line.startswith("[S1] "))
    assert "volcanoes.md:" in first_source
    assert lines[-1] == "[smollm2-135m · edge]"

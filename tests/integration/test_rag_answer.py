"""A RAG answer from the real bundled model over a folder ingested with the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import start_server

pytestmark = pytest.mark.integration


def test_rag_answer_cites_the_right_file(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "volcanoes.md").write_text(
        "# Volcanoes\n\nMount Teide on Tenerife is the highest peak in Spain, 3,715 metres."
    )
    (docs / "rivers.txt").write_text("The Tagus is the longest river of the Iberian Peninsula.")
    (docs / "recipes.html").write_text(
        "<html><body><h1>Paella</h1>"
        "<p>Paella comes from Valencia and uses saffron.</p></body></html>"
    )
    data_dir = tmp_path / "server" / "data"
    ingest = [sys.executable, "-m", "smallfirst", "rag", "ingest", str(docs)]
    subprocess.run(
        [*ingest, "--collection", "geo", "--data-dir", str(data_dir)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    config = {"models": [{"id": "smollm2-135m", "tier": "edge", "context_length": 2048}]}
    server = start_server(config, tmp_path / "server")
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

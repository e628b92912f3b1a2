"""Deterministic stand-ins for the embedder, so RAG unit tests need no ONNX model."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import numpy.typing as npt


def count_words(text: str) -> int:
    """Tokens as the chunker counts them: one per word, plus [CLS] and [SEP]."""
    return len(text.split()) + 2


def fake_embed(texts: list[str]) -> npt.NDArray[np.float32]:
    """Bag of hashed lowercase words, L2-normalised: similar words give similar vectors."""
    vectors = np.zeros((len(texts), 384), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"\w+", text.lower()):
            vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % 384] += 1.0
        norm = np.linalg.norm(vectors[row])
        vectors[row] = vectors[row] / norm if norm else vectors[row]
    return vectors


def fake_embed_query(text: str) -> npt.NDArray[np.float32]:
    return fake_embed([text])[0]


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing `text` in Helvetica (enough for pypdf to extract it)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    return pdf_of(objects)


def pdf_of(objects: list[bytes]) -> bytes:
    """A PDF file of `objects` (numbered from 1; the first is the catalog), with its xref."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)

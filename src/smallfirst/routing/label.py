"""`smallfirst router label`: run a weak and a strong model of your own on a prompt set and
score both answers, writing rows in the routing schema (see ../shared/data/routing).

Public data teaches a router what is hard in general; labels from your own pair of tiers
calibrate it to them. Scores: exact match against `reference` when the data has one (the last
number for maths, the option letter for multiple choice, normalised text otherwise), or a
judge model's 1-10 rating divided by 10.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from smallfirst.answers import RequestContext
from smallfirst.routing.cascade import confidence
from smallfirst.routing.data import read_jsonl
from smallfirst.service import Gateway
from smallfirst.types import ChatMessage, ChatRequest

JUDGE_PROMPT = (
    "You are a strict grader. Rate the assistant's answer to the user's request on a scale "
    "of 1 to 10 for correctness and helpfulness. Reply with the number only.\n\n"
    "[Request]\n{question}\n\n[Answer]\n{answer}\n\nRating:"
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_LETTER = re.compile(r"\b([A-J])\b")


@dataclass(frozen=True)
class LabelJob:
    weak: str
    strong: str
    judge: str | None
    max_tokens: int = 512


def reference_answer(reference: str) -> str:
    """GSM8K references end with `#### <answer>`; others are the answer itself."""
    return reference.split("####")[-1].strip()


def score_against_reference(answer: str, reference: str) -> float:
    expected = reference_answer(reference)
    if _NUMBER.fullmatch(expected.replace(",", "")):
        numbers = _NUMBER.findall(answer)
        if not numbers:
            return 0.0
        try:
            return float(float(numbers[-1].replace(",", "")) == float(expected.replace(",", "")))
        except ValueError:
            return 0.0
    if re.fullmatch(r"[A-J]", expected):
        letters = _LETTER.findall(answer.upper())
        return float(bool(letters) and letters[0] == expected)
    return float(_normalise(expected) in _normalise(answer))


def parse_rating(text: str) -> float | None:
    match = re.search(r"\b(10|[1-9])(?:\.\d+)?\b", text)
    return int(match.group(1)) / 10 if match else None


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def prompt_problem(row: Mapping[str, Any], *, needs_reference: bool) -> str | None:
    """Why `row` cannot be labelled (said before any model runs), or None."""
    row_id = row.get("id")
    if isinstance(row_id, bool) or not isinstance(row_id, str | int):
        return "`id` must be a string" if "id" in row else "no `id`"
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        return "`messages` must be a non-empty list of messages"
    for index, message in enumerate(messages):
        try:
            ChatMessage.model_validate(message)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in (index, *error["loc"]))
            return f"`messages.{where}`: {error['msg']}"
    if needs_reference and "reference" not in row:
        return "no `reference` (--reference scores against it)"
    return None


async def label_row(gateway: Gateway, row: dict[str, Any], job: LabelJob) -> dict[str, Any]:
    messages = [ChatMessage.model_validate(m) for m in row["messages"]]
    answers = {}
    weak_confidence = None
    for side, model in (("weak", job.weak), ("strong", job.strong)):
        request = ChatRequest(
            model=model,
            messages=messages,
            max_tokens=job.max_tokens,
            temperature=0,
            logprobs=side == "weak",  # the cascade's signal, for `router calibrate-cascade`
        )
        answer = await gateway.complete(request, RequestContext(endpoint="label"))
        answers[side] = answer.completion.text
        if side == "weak" and answer.completion.logprobs:
            weak_confidence = asdict(confidence(answer.completion.logprobs))
    scores = {}
    for side, text in answers.items():
        if job.judge is None:
            scores[side] = score_against_reference(text, str(row["reference"]))
        else:
            scores[side] = await _judge(gateway, job.judge, messages, text)
    return {
        "id": row["id"],
        "dataset": row.get("dataset", "custom"),
        "messages": row["messages"],
        "weak": {"model": job.weak, "score": scores["weak"]},
        "strong": {"model": job.strong, "score": scores["strong"]},
        "reference": row.get("reference"),
        "weak_response": answers["weak"],
        "weak_confidence": weak_confidence,
        "strong_response": answers["strong"],
        **({"subject": row["subject"]} if "subject" in row else {}),
    }


async def _judge(gateway: Gateway, judge: str, messages: list[ChatMessage], answer: str) -> float:
    question = "\n".join(f"{m.role}: {m.text}" for m in messages)
    prompt = JUDGE_PROMPT.format(question=question, answer=answer)
    request = ChatRequest(
        model=judge,
        messages=[ChatMessage(role="user", content=prompt)],
        max_tokens=8,
        temperature=0,
    )
    rating = parse_rating(
        (await gateway.complete(request, RequestContext(endpoint="judge"))).completion.text
    )
    return rating if rating is not None else 0.0


def _labelled_ids(out: Path) -> set[str]:
    if not out.exists():
        return set()
    return {str(record.get("id")) for _, record in read_jsonl(out)}


async def label_file(
    gateway: Gateway,
    rows: list[dict[str, Any]],
    out: Path,
    job: LabelJob,
    concurrency: int,
    on_done: Callable[[], None],
) -> int:
    """Label the rows not yet in `out` (resumable), appending as each finishes."""
    done = _labelled_ids(out)
    todo = [r for r in rows if str(r["id"]) not in done]
    for _ in range(len(rows) - len(todo)):
        on_done()
    limit = asyncio.Semaphore(concurrency)
    lock = asyncio.Lock()

    async def one(row: dict[str, Any]) -> None:
        async with limit:
            labelled = await label_row(gateway, row, job)
        async with lock:
            with out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(labelled, ensure_ascii=False) + "\n")
            on_done()

    await asyncio.gather(*(one(r) for r in todo))
    return len(todo)

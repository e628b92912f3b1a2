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

from smallfirst.answers import RequestContext
from smallfirst.paths import create_private
from smallfirst.routing.cascade import confidence
from smallfirst.routing.data import messages_problem, read_jsonl
from smallfirst.service import Gateway
from smallfirst.types import ChatMessage, ChatRequest

JUDGE_PROMPT = (
    "You are a strict grader. Rate the assistant's answer to the user's request on a scale "
    "of 1 to 10 for correctness and helpfulness. Reply with the number only.\n\n"
    "[Request]\n{question}\n\n[Answer]\n{answer}\n\nRating:"
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_UNITS = re.compile(r"^[$€£¥]|%$")  # "$42" and "42%" are the number 42 to compare
_OPTION = re.compile(r"(?<![\w'])([A-Ja-j])(?![\w'])")
# The article and the pronoun read as option letters when a word follows ("A good guess",
# "I think it is B", and every reply once upper-cased): the answer's letter was taken as "I".
_WORD_NOT_OPTION = re.compile(r"[AaIi]\s+[a-z]")
_RATING = r"(10|[1-9](?:\.\d+)?)"
_RATING_OUT_OF_TEN = re.compile(_RATING + r"\s*(?:/|out of)\s*10\b", re.IGNORECASE)
_RATING_ALONE = re.compile(r"\W*(?:(?:rating|score)\b\W*)?" + _RATING + r"\W*", re.IGNORECASE)


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
    as_number = _UNITS.sub("", expected.replace(",", "")).strip()
    if _NUMBER.fullmatch(as_number):
        numbers = _NUMBER.findall(answer.replace("\u2212", "-"))  # the minus sign as written
        return float(bool(numbers) and float(numbers[-1].replace(",", "")) == float(as_number))
    as_letter = expected.strip("()[]. ")
    if re.fullmatch(r"[A-Ja-j]", as_letter):
        return float(_option_letter(answer) == as_letter.upper())
    # Whole words: "yes" is not in "yesterday", nor "no" in "I know".
    return float(f" {_normalise(expected)} " in f" {_normalise(answer)} ")


def _option_letter(answer: str) -> str | None:
    """The first option letter the answer gives, passing over "a" and "I" used as words
    unless the answer has no other letter ("A is correct")."""
    letters = list(_OPTION.finditer(answer))
    options = [m for m in letters if not _WORD_NOT_OPTION.match(answer, m.start())] or letters
    return options[0].group(1).upper() if options else None


def parse_rating(text: str) -> float | None:
    """A judge's 1-10 rating as a score in [0.1, 1], or None when the reply has none: the
    rating alone on its first line ("8", "Rating: 7.5") or out of ten ("8/10", "8 out of
    10"). Any number anywhere was read as one: "The answer is 2 * 2" rated 2."""
    lines = text.strip().splitlines()
    match = _RATING_OUT_OF_TEN.search(text) or _RATING_ALONE.fullmatch(lines[0] if lines else "")
    return float(match.group(1)) / 10 if match else None


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def prompt_problem(row: Mapping[str, Any], *, needs_reference: bool) -> str | None:
    """Why `row` cannot be labelled (said before any model runs), or None."""
    row_id = row.get("id")
    if isinstance(row_id, bool) or not isinstance(row_id, str | int):
        return "`id` must be a string" if "id" in row else "no `id`"
    problem = messages_problem(row.get("messages"))
    if problem is not None:
        return problem
    if not any(ChatMessage.model_validate(m).text.strip() for m in row["messages"]):
        return "every message is empty: there is nothing to answer"
    if needs_reference:
        reference = row.get("reference")
        if reference is None:
            return "no `reference` (--reference scores against it)"
        if not reference_answer(str(reference)):  # "" was in every answer: all scored 1
            return "`reference` is empty"
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
    scores: dict[str, float | None] = {}
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


async def _judge(
    gateway: Gateway, judge: str, messages: list[ChatMessage], answer: str
) -> float | None:
    """The judge's rating, or None (the row is left unlabelled on that side) when its reply
    has none: it was recorded as 0.0, below the worst rating, as if the answer were worse."""
    question = "\n".join(f"{m.role}: {m.text}" for m in messages)
    prompt = JUDGE_PROMPT.format(question=question, answer=answer)
    request = ChatRequest(
        model=judge,
        messages=[ChatMessage(role="user", content=prompt)],
        max_tokens=8,
        temperature=0,
    )
    reply = await gateway.complete(request, RequestContext(endpoint="judge"))
    return parse_rating(reply.completion.text)


def resume_problem(out: Path, rows: list[dict[str, Any]], job: LabelJob) -> str | None:
    """Why the rows already in `out` cannot be added to by this run, or None. They were
    counted as done whatever made them: other models' labels, or an old version of a
    prompt, were kept beside this run's as if they were its own."""
    if not out.exists():
        return None
    prompts = {str(row["id"]): row["messages"] for row in rows}
    for number, record in read_jsonl(out):
        for side, model in (("weak", job.weak), ("strong", job.strong)):
            labelled_by = (record.get(side) or {}).get("model")
            if labelled_by != model:
                return (
                    f"{out}:{number}: labelled with --{side} {labelled_by}, not {model}; give "
                    "another --out to label with other models"
                )
        messages = prompts.get(str(record.get("id")))
        if messages is not None and messages != record.get("messages"):
            return (
                f"{out}:{number}: {record.get('id')!r} was labelled for other messages than "
                "--data has now; delete that line to label it again"
            )
    return None


def _labelled_ids(out: Path) -> set[str]:
    if not out.exists():
        return set()
    return {str(record.get("id")) for _, record in read_jsonl(out)}


def _end_last_line(out: Path) -> None:
    """A file whose last line has no newline (saved by an editor) would get the next row
    glued onto that line, and neither could be read again."""
    if out.exists() and out.stat().st_size:
        with out.open("rb+") as handle:
            handle.seek(-1, 2)
            if handle.read(1) != b"\n":
                handle.write(b"\n")


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
    create_private(out)  # the prompts and both models' answers
    _end_last_line(out)
    limit = asyncio.Semaphore(concurrency)
    lock = asyncio.Lock()

    async def one(row: dict[str, Any]) -> None:
        async with limit:
            labelled = await label_row(gateway, row, job)
        async with lock:
            with out.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(labelled, ensure_ascii=False) + "\n")
            on_done()

    tasks = [asyncio.create_task(one(row)) for row in todo]
    try:
        await asyncio.gather(*tasks)
    finally:  # one row failed: stop the others before the caller closes the gateway
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return len(todo)

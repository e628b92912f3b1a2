"""What a router may look at: the prompt text, cheap text statistics and a local embedding.

Only `messages` is read here, never a row's outcome, so every feature is available at
decision time. `FEATURE_SPEC_VERSION` is stored in artifacts: change it whenever a feature's
meaning changes, so an old artifact refuses to load instead of scoring garbage.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from smallfirst.embed import EMBEDDER_ID
from smallfirst.paths import replaced_in_one_step

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

FEATURE_SPEC_VERSION = 3
EMBEDDING_MODEL = EMBEDDER_ID
EMBED_BATCH = 32

CODE_PATTERN = re.compile(
    r"```|\bdef |\bclass |\bfunction\b|\breturn\b|[{};]\s*$|\bimport |\bSELECT\b|=>|\bpython\b"
    r"|\bjava(script)?\b|\bc\+\+|\bcode\b|\bprogram\b|\bregex\b|\bSQL\b",
    re.IGNORECASE | re.MULTILINE,
)
MATH_PATTERN = re.compile(
    r"\d\s*[-+*/^=<>]\s*\d|\bsolve\b|\bcalculate\b|\bcompute\b|\bequation\b|\bprove\b"
    r"|\bprobability\b|\bintegral\b|\bderivative\b|\bhow (many|much)\b|\bsqrt\b|\\frac|%",
    re.IGNORECASE,
)
MULTI_STEP_PATTERN = re.compile(
    r"\bstep[- ]by[- ]step\b|\bthen\b|\bafter\b|\beach\b|\btotal\b|\bremaining\b|\bexplain\b"
    r"|\bwhy\b|\bcompare\b|\banalyz|\bderive\b|\bjustify\b|\bfirst\b.*\bthen\b",
    re.IGNORECASE,
)
NUMBER_PATTERN = re.compile(r"\d+(?:[.,]\d+)?")
CHOICE_PATTERN = re.compile(r"^[A-J][.)]\s", re.MULTILINE)
CHOICE_LINE_PATTERN = re.compile(r"^[A-J][.)]\s+(.*)$", re.MULTILINE)
NEGATION_PATTERN = re.compile(r"\b(?:NOT|EXCEPT|LEAST|FALSE|INCORRECT|NEVER)\b")
ENUMERATED_CLAIMS_PATTERN = re.compile(
    r"\bStatement [12]\b|^\s*(?:I|II|III|IV)[.)]\s", re.MULTILINE
)
# v3 cues: reasoning load (sentences, quantities with units, arithmetic words, fractions,
# connectives), the kind of ask (writing/roleplay vs formal reasoning) and choice-list shape.
SENTENCE_PATTERN = re.compile(r"[.!?](?:\s|$)")
QUANTITY_PATTERN = re.compile(
    r"\$\s?\d|\d+(?:\.\d+)?\s*(?:%|percent|dollars?|cents?|hours?|minutes?|days?|weeks?"
    r"|months?|years?|miles?|km|kg|pounds?|feet|inches|meters?|liters?|gallons?|cups?|pages?"
    r"|times)\b",
    re.IGNORECASE,
)
ARITHMETIC_WORD_PATTERN = re.compile(
    r"\b(?:twice|double|triple|half|third|quarter|times|per|each|every|more than|less than"
    r"|fewer|remaining|left|total|altogether|combined|average|sum|difference|increase"
    r"|decrease|discount|profit|split|share|ratio)\b",
    re.IGNORECASE,
)
FRACTION_PATTERN = re.compile(
    r"\d+\s*/\s*\d+|\b(?:half|third|quarter|fifth|percent)\b|%", re.IGNORECASE
)
QUESTION_WORD_PATTERN = re.compile(
    r"\b(?:what|how|which|who|why|when|where|find|determine)\b", re.IGNORECASE
)
CONNECTIVE_PATTERN = re.compile(
    r"\b(?:then|after|before|if|while|but|and then|later|afterwards|finally|also|however"
    r"|because|so)\b",
    re.IGNORECASE,
)
WRITING_PATTERN = re.compile(
    r"\b(?:write|story|poem|essay|email|blog|letter|imagine|pretend|role|character"
    r"|persuasive|describe|draft|rewrite|rephrase|summari[sz]e|creative|tweet|speech|slogan"
    r"|joke)\b",
    re.IGNORECASE,
)
REASONING_PATTERN = re.compile(
    r"\b(?:riddle|puzzle|logic|deduce|implies|true or false|if and only if|sequence|pattern"
    r"|algorithm|complexity|function|prove|theorem|matrix|vector|integral|derivative)\b",
    re.IGNORECASE,
)
CHOICE_META_PATTERN = re.compile(
    r"which of the following|all of the following|none of the above|all of the above|both",
    re.IGNORECASE,
)

CHEAP_FEATURE_NAMES: tuple[str, ...] = (
    "log_chars",
    "log_words",
    "log_numbers",
    "digit_share",
    "code_cues",
    "math_cues",
    "multi_step_cues",
    "choice_lines",
    "turns",
    "question_marks",
    "negation_cues",
    "enumerated_claims",
    "log_choice_chars",
    "numeric_choice_share",
    "mean_word_length",
    # v3
    "log_stem_sentences",
    "log_quantities",
    "log_arithmetic_words",
    "log_fraction_cues",
    "log_stem_question_words",
    "log_stem_connectives",
    "log_stem_writing_cues",
    "log_reasoning_cues",
    "choice_meta_cue",
    "log_choice_length_std",
    "log_stem_chars",
    "log_max_number",
    "log_distinct_numbers",
    "decimal_share",
    "log_newlines",
)


# Not the ask: assistant turns are context, and a system prompt is the application's, the
# same on every request (no training row has one: "You are a helpful assistant." led every
# embedding and halved the strong share of a 30% calibrated budget).
NOT_THE_ASK = ("assistant", "system", "developer")


def user_text(messages: Sequence[Mapping[str, str]]) -> str:
    """The user's side of the conversation (tool results included): what is asked."""
    parts = [m.get("content", "") for m in messages if m.get("role", "user") not in NOT_THE_ASK]
    return "\n".join(part for part in parts if part) or "\n".join(
        m.get("content", "") for m in messages
    )


def embedding_input(messages: Sequence[Mapping[str, str]], max_words: int) -> str:
    """The head of the user text: the encoder's cost grows with length, and the topic and
    task are stated early, so the router embeds only the first `max_words` words."""
    words = user_text(messages).split()
    return " ".join(words[:max_words])[: max_words * 8]


def all_text(messages: Sequence[Mapping[str, str]]) -> str:
    return "\n".join(m.get("content", "") for m in messages)


def cheap_features(messages: Sequence[Mapping[str, str]]) -> list[float]:
    """Text statistics in CHEAP_FEATURE_NAMES order; log scales keep outliers tame."""
    text = user_text(messages)
    chars = len(all_text(messages))
    digits = sum(ch.isdigit() for ch in text)
    choices = CHOICE_LINE_PATTERN.findall(text)
    words = text.split()
    return [
        math.log1p(chars),
        math.log1p(len(text.split())),
        math.log1p(len(NUMBER_PATTERN.findall(text))),
        digits / max(len(text), 1),
        math.log1p(len(CODE_PATTERN.findall(text))),
        math.log1p(len(MATH_PATTERN.findall(text))),
        math.log1p(len(MULTI_STEP_PATTERN.findall(text))),
        math.log1p(len(CHOICE_PATTERN.findall(text))),
        float(sum(m.get("role") == "user" for m in messages)),
        math.log1p(text.count("?")),
        math.log1p(len(NEGATION_PATTERN.findall(text))),
        math.log1p(len(ENUMERATED_CLAIMS_PATTERN.findall(text))),
        math.log1p(sum(map(len, choices)) / len(choices)) if choices else 0.0,
        sum(_is_numeric(c) for c in choices) / len(choices) if choices else 0.0,
        sum(map(len, words)) / len(words) if words else 0.0,
        *_reasoning_features(text, choices),
    ]


def _reasoning_features(text: str, choices: Sequence[str]) -> list[float]:
    """v3 cues; the stem is the text before the first choice line (all of it if none)."""
    first_choice = CHOICE_LINE_PATTERN.search(text)
    stem = text[: first_choice.start()] if first_choice else text
    numbers = NUMBER_PATTERN.findall(text)
    values = [float(n.replace(",", "")) for n in numbers]
    lengths = [len(choice) for choice in choices]
    mean_length = sum(lengths) / len(lengths) if lengths else 0.0
    spread = (
        math.sqrt(sum((x - mean_length) ** 2 for x in lengths) / len(lengths)) if lengths else 0.0
    )

    def count(pattern: re.Pattern[str], where: str) -> float:
        return math.log1p(len(pattern.findall(where)))

    return [
        count(SENTENCE_PATTERN, stem),
        count(QUANTITY_PATTERN, text),
        count(ARITHMETIC_WORD_PATTERN, text),
        count(FRACTION_PATTERN, text),
        count(QUESTION_WORD_PATTERN, stem),
        count(CONNECTIVE_PATTERN, stem),
        count(WRITING_PATTERN, stem),
        count(REASONING_PATTERN, text),
        float(CHOICE_META_PATTERN.search(stem) is not None),
        math.log1p(spread),
        math.log1p(len(stem)),
        math.log1p(min(max(values), 1e12)) if values else 0.0,
        math.log1p(len(set(numbers))),
        sum("." in n for n in numbers) / len(numbers) if numbers else 0.0,
        math.log1p(text.count("\n")),
    ]


def _is_numeric(choice: str) -> bool:
    return sum(ch.isdigit() for ch in choice) * 2 >= len(choice.replace(" ", "")) > 0


def cheap_matrix(conversations: Sequence[Sequence[Mapping[str, str]]]) -> npt.NDArray[np.float32]:
    import numpy as np

    return np.array([cheap_features(m) for m in conversations], dtype=np.float32).reshape(
        len(conversations), len(CHEAP_FEATURE_NAMES)
    )


def _text_key(text: str) -> str:
    return hashlib.sha1(f"{EMBEDDING_MODEL}\0{text}".encode()).hexdigest()


def embed_texts(
    texts: Sequence[str],
    *,
    cache_dir: str | Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> npt.NDArray[np.float32]:
    """L2-normalised embeddings of `texts` (truncated to the model's 256 tokens).

    With `cache_dir`, vectors are kept in `embeddings.npz` there keyed by text hash, so
    repeated offline experiments embed each text once. `on_progress(n)` reports batches.
    """
    import numpy as np

    from smallfirst.embed import DIMENSIONS, get_embedder

    cache_file = Path(cache_dir) / "embeddings.npz" if cache_dir else None
    cached = _read_cache(cache_file) if cache_file is not None else {}
    keys = [_text_key(text) for text in texts]
    missing = list({k: t for k, t in zip(keys, texts, strict=True) if k not in cached}.items())
    embedder = get_embedder() if missing else None
    for start in range(0, len(missing), EMBED_BATCH):
        batch = missing[start : start + EMBED_BATCH]
        assert embedder is not None
        vectors = embedder.embed([text for _, text in batch], truncate=True)
        cached.update(zip([key for key, _ in batch], vectors, strict=True))
        if on_progress is not None:
            on_progress(len(batch))
    if missing and cache_file is not None:
        # in one step: a run stopped while it saved left a file cut short, and the next
        # run embedded every text again. Private: the prompts' vectors tell much of their text
        with replaced_in_one_step(cache_file, private=True) as aside:
            np.savez(
                aside,
                keys=np.array(list(cached)),
                vectors=np.stack(list(cached.values())).astype(np.float32),
            )
    if not keys:
        return np.zeros((0, DIMENSIONS), dtype=np.float32)
    return np.stack([cached[key] for key in keys]).astype(np.float32)


def _read_cache(cache_file: Path) -> dict[str, npt.NDArray[np.float32]]:
    """The vectors kept in `cache_file`, by text hash. A cache that cannot be read (cut short
    by a kill, or another file of that name) is rebuilt: it stopped the command with
    numpy's traceback."""
    import zipfile

    import numpy as np

    if not cache_file.is_file():
        return {}
    try:
        # an open file: numpy left its own open when the zip in it was cut short
        with cache_file.open("rb") as handle, np.load(handle) as stored:
            return dict(zip(stored["keys"].tolist(), stored["vectors"], strict=True))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return {}

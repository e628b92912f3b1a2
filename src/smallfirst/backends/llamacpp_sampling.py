"""The llama.cpp sampler chain for a request: `logit_bias`, then the chain `Llama` builds for
its `generate` (penalties, grammar, top-k / typical / top-p / min-p, temperature, the seeded
draw), with llama.cpp server's defaults where the request leaves a field unset (`top_k`,
`min_p` and `repeat_penalty` are llama.cpp's own knobs, which clients of local servers send).

Built here rather than by `Llama._init_sampler`, which has no place for a logit bias: it
would have to be a Python callback run on every token.
"""

from __future__ import annotations

import hashlib
import logging
import random
from typing import Any

from smallfirst.backends import local_tools
from smallfirst.backends.json_grammar import json_grammar
from smallfirst.backends.schema_check import SchemaProblem, check_schema
from smallfirst.errors import BeyondLocalGrammar, InvalidRequest
from smallfirst.types import ChatRequest, GenerateRequest

# llama.cpp server's sampling defaults; OpenAI's (temperature 1, no top-k) ramble on tiny models.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95
TOP_K = 40
MIN_P = 0.05
REPEAT_LAST_N = 64  # tokens llama.cpp's repeat penalty looks back on (its repeat_last_n)
# llama.cpp's seeds are 32 bits, and this one (LLAMA_DEFAULT_SEED) means "draw a random seed".
RANDOM_SEED = 0xFFFFFFFF

logger = logging.getLogger("smallfirst")


def sampler_for(llama: Any, request: GenerateRequest, answer_tokens: int) -> Any:
    """A sampler chain for `request` on `llama`'s vocabulary, for an answer of at most
    `answer_tokens` tokens. Raises InvalidRequest for a logit bias on a token the vocabulary
    lacks, or a grammar llama.cpp cannot use."""
    from llama_cpp import _internals
    from llama_cpp import llama_cpp as low_level

    sampler_chain: Any = _internals.LlamaSampler  # llama-cpp-python leaves it untyped
    bias = _logit_bias(request, llama.n_vocab())
    grammar = grammar_for(request)
    constraint = _grammar_sampler(llama, grammar, request) if grammar is not None else None
    chain = sampler_chain()
    if bias:
        chain.add_logit_bias(llama.n_vocab(), bias)
    chain.add_penalties(
        n_vocab=llama.n_vocab(),
        penalty_last_n=REPEAT_LAST_N,
        penalty_repeat=request.penalty_for_repeats,
        penalty_freq=0.0,
        penalty_present=0.0,
    )
    # OpenAI's frequency and presence penalties count a token over the whole answer so far,
    # not over llama.cpp's last 64 tokens (a word repeated after that went unpenalized).
    chain.add_penalties(
        n_vocab=llama.n_vocab(),
        penalty_last_n=max(answer_tokens, 1),
        penalty_repeat=1.0,
        penalty_freq=request.frequency_penalty or 0.0,
        penalty_present=request.presence_penalty or 0.0,
    )
    if constraint is not None:  # the chain owns it from here
        low_level.llama_sampler_chain_add(chain.sampler, constraint)
    temperature = DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
    if temperature == 0.0:
        chain.add_greedy()
        return chain
    chain.add_top_k(TOP_K if request.top_k is None else request.top_k)  # <= 0: every token
    chain.add_typical(1.0, 1)
    chain.add_top_p(DEFAULT_TOP_P if request.top_p is None else request.top_p, 1)
    chain.add_min_p(MIN_P if request.min_p is None else request.min_p, 1)
    chain.add_temp(temperature)
    chain.add_dist(_seed(request))
    return chain


def _seed(request: GenerateRequest) -> int:
    return sampling_seed(request.seed) if request.seed is not None else random.getrandbits(31)


def sampling_seed(seed: int) -> int:
    """llama.cpp's seed for a client's: the same itself from 0 to 2**32 - 2 (llama.cpp's and
    llama-cpp-python's answers for it), any other a stable hash of it into that range. Never
    RANDOM_SEED: -1 and 4294967295 answered differently each time, and taken modulo 2**32
    (as ctypes did), 0, 2**32 and 2**64 were one seed, and choice i's `seed + i` wrapped."""
    if 0 <= seed < RANDOM_SEED:
        return seed
    digest = hashlib.blake2b(str(seed).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % RANDOM_SEED


def _logit_bias(request: GenerateRequest, n_vocab: int) -> dict[int, float]:
    bias = {int(token): value for token, value in (request.logit_bias or {}).items()}
    outside = sorted(token for token in bias if token >= n_vocab)
    if outside:
        raise InvalidRequest(
            f"logit_bias names token {outside[0]}, and this model's vocabulary has tokens 0 to"
            f" {n_vocab - 1}: token ids are the answering model's own",
            param="logit_bias",
        )
    return bias


def grammar_for(request: GenerateRequest) -> str | None:
    """The GBNF the answer must fit: a tool call (or, under "auto", an answer), or the
    response format; None when the answer is free. Raises BeyondLocalGrammar naming the place in
    a schema the grammar cannot express (`schema_check.py`)."""
    if not isinstance(request, ChatRequest):
        return None
    from llama_cpp.llama_grammar import JSON_GBNF

    _check_schemas(request)
    try:
        tool_rules = local_tools.grammar_text(request)
    except Exception as exc:  # past the check, the converter's plain exceptions: a bug here
        raise _unexpressed(exc, "the tools' parameters", "tools") from exc
    if tool_rules is not None:
        return tool_rules
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_object":
        return str(JSON_GBNF)
    answer = local_tools.answer_schema(request)
    if answer is None:
        return None
    try:
        return json_grammar([], answer)
    except Exception as exc:
        raise _unexpressed(exc, "response_format", "response_format") from exc


def _check_schemas(request: ChatRequest) -> None:
    """Each schema the grammar is built from, with its place in the body for the error's
    `param` (`tools.0.function.parameters.properties.a.type`)."""
    offered = {id(tool) for tool in local_tools.offered_tools(request)}
    for index, tool in enumerate(request.tools or []):
        if id(tool) in offered and tool.function.parameters:
            where = f"tools.{index}.function.parameters"
            _check(tool.function.parameters, where, f"function '{tool.function.name}'")
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None:
        name = f"response_format '{fmt.json_schema.name}'"
        _check(fmt.json_schema.schema_, "response_format.json_schema.schema", name)


def _check(schema: Any, param: str, subject: str) -> None:
    try:
        check_schema(schema)
    except SchemaProblem as problem:
        where = f" at {problem.where}" if problem.path else ""
        raise BeyondLocalGrammar(
            f"Invalid schema for {subject}{where}: {problem.reason}.",
            param=f"{param}.{problem.where}" if problem.path else param,
        ) from None


def _unexpressed(exc: Exception, subject: str, param: str) -> BeyondLocalGrammar:
    logger.warning("a checked schema failed to convert to a grammar", exc_info=exc)
    return BeyondLocalGrammar(
        f"Invalid schema for {subject}: the local grammar cannot express it.", param=param
    )


def _grammar_sampler(llama: Any, grammar: str, request: GenerateRequest) -> Any:
    """llama.cpp's grammar stage; a grammar it cannot parse is the request's 400 (a failed
    stage in a chain crashed the process)."""
    from llama_cpp import llama_cpp as low_level

    sampler = low_level.llama_sampler_init_grammar(
        llama._model.vocab, grammar.encode("utf-8"), b"root"
    )
    if not sampler:
        tools = isinstance(request, ChatRequest) and bool(local_tools.offered_tools(request))
        raise BeyondLocalGrammar(
            "this schema makes a grammar llama.cpp cannot use",
            param="tools" if tools else "response_format",
        )
    return sampler

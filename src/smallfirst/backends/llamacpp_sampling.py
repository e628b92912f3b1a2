"""The llama.cpp sampler chain for a request: `logit_bias`, then the chain `Llama` builds for
its `generate` (penalties, grammar, top-k / typical / top-p / min-p, temperature, the seeded
draw), with llama.cpp server's defaults where the request leaves a field unset (`top_k`,
`min_p` and `repeat_penalty` are llama.cpp's own knobs, which clients of local servers send).

Built here rather than by `Llama._init_sampler`, which has no place for a logit bias: it
would have to be a Python callback run on every token.
"""

from __future__ import annotations

import random
from typing import Any

from smallfirst.backends import local_tools
from smallfirst.backends.json_grammar import json_grammar
from smallfirst.errors import InvalidRequest
from smallfirst.types import ChatRequest, GenerateRequest

# llama.cpp server's sampling defaults; OpenAI's (temperature 1, no top-k) ramble on tiny models.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95
TOP_K = 40
MIN_P = 0.05
PENALTY_LAST_N = 64  # tokens the frequency and presence penalties look back on


def sampler_for(llama: Any, request: GenerateRequest) -> Any:
    """A sampler chain for `request` on `llama`'s vocabulary. Raises InvalidRequest for a
    logit bias on a token the vocabulary lacks, or a grammar llama.cpp cannot use."""
    from llama_cpp import _internals
    from llama_cpp import llama_cpp as low_level

    sampler_chain: Any = _internals.LlamaSampler  # llama-cpp-python leaves it untyped
    bias = _logit_bias(request, llama.n_vocab())
    grammar = _grammar(request)
    constraint = _grammar_sampler(llama, grammar, request) if grammar is not None else None
    chain = sampler_chain()
    if bias:
        chain.add_logit_bias(llama.n_vocab(), bias)
    chain.add_penalties(
        n_vocab=llama.n_vocab(),
        penalty_last_n=PENALTY_LAST_N,
        penalty_repeat=request.penalty_for_repeats,
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
    return request.seed if request.seed is not None else random.getrandbits(31)


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


def _grammar(request: GenerateRequest) -> str | None:
    """The GBNF the answer must fit: a tool call (or, under "auto", an answer), or the
    response format; None when the answer is free."""
    if not isinstance(request, ChatRequest):
        return None
    from llama_cpp.llama_grammar import JSON_GBNF

    try:
        tool_rules = local_tools.grammar_text(request)
    except Exception as exc:  # the converter raises plain exceptions on unsupported schemas
        raise InvalidRequest(f"unsupported tool parameters schema: {exc}", param="tools") from exc
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
    except Exception as exc:  # the converter raises plain exceptions on unsupported schemas
        raise InvalidRequest(f"unsupported json_schema: {exc}", param="response_format") from exc


def _grammar_sampler(llama: Any, grammar: str, request: GenerateRequest) -> Any:
    """llama.cpp's grammar stage; a grammar it cannot parse is the request's 400 (a failed
    stage in a chain crashed the process)."""
    from llama_cpp import llama_cpp as low_level

    sampler = low_level.llama_sampler_init_grammar(
        llama._model.vocab, grammar.encode("utf-8"), b"root"
    )
    if not sampler:
        tools = isinstance(request, ChatRequest) and bool(local_tools.offered_tools(request))
        raise InvalidRequest(
            "this schema makes a grammar llama.cpp cannot use (an empty enum or anyOf?)",
            param="tools" if tools else "response_format",
        )
    return sampler

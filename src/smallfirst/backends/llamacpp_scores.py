"""What an echo learned about the tokens a slot holds: each one's logprob given the tokens
before it (`ScoredPrefix`). Evaluation harnesses score several continuations of one context
(the four answers to a multiple-choice question, each its own echoed prompt); the second and
later take the context's scores from here and read only their own tokens, instead of reading
the whole prompt again with logits on every row."""

from __future__ import annotations

from smallfirst.backends.prompt_cache import shared_prefix_length
from smallfirst.completions import TokenLogprob


class ScoredPrefix:
    """Scores of a prefix of one slot's tokens (position 0: None, nothing predicts it), each
    with `top` alternatives. A score depends only on the tokens up to its own, so a prefix of
    them stays true while the slot keeps that prefix."""

    def __init__(self) -> None:
        self.scores: list[TokenLogprob | None] = []
        self.top = 0

    def usable(self, held: list[int], prompt: list[int], top: int) -> int:
        """How many leading tokens of `prompt` the slot holds with scores of `top` or more
        alternatives."""
        if self.top < top:
            return 0
        return min(shared_prefix_length(held, prompt), len(self.scores))

    def keep(self, length: int) -> None:
        """The slot keeps its first `length` tokens only, unscored from there on."""
        del self.scores[length:]

    def reuse(self, kept: int, top: int) -> list[TokenLogprob | None]:
        """An echo asking for `top` alternatives starts with `kept` tokens held (at most
        `usable` - 1): the scores of tokens 1 to `kept`, to echo as they are. Its own
        scores follow from token `kept` + 1."""
        reused = [_trimmed(score, top) for score in self.scores[1 : kept + 1]]
        self.scores = [None, *self.scores[1 : kept + 1]]
        self.top = top
        return reused

    def add(self, position: int, score: TokenLogprob) -> None:
        """The score of the token at `position`, read just now."""
        if position <= len(self.scores):
            del self.scores[position:]
            self.scores.append(score)


def _trimmed(score: TokenLogprob | None, top: int) -> TokenLogprob | None:
    if score is None or len(score.top) <= top:
        return score
    return score.model_copy(update={"top": score.top[:top]})

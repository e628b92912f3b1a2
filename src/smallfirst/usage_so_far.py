"""A local model's tokens for one call, counted while the call runs: the request log's counts
for a call that ends before its usage comes (its client left, it failed), where a remote
one's can only be estimated. The gateway makes one per call (`counting`); a local engine adds
each answer of the call to it as it takes it, and a remote backend its call, to tell whether
it was sent."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from smallfirst.choices import merged_usage
from smallfirst.completions import Usage


class UsageSoFar:
    def __init__(self) -> None:
        self._answers: list[Callable[[], Usage | None]] = []
        self._sent: list[Callable[[], bool]] = []

    def add(self, counts: Callable[[], Usage | None]) -> None:
        """An answer of the call: `counts()` is its tokens so far, None while it waits for a
        slot (its prompt not yet read)."""
        self._answers.append(counts)

    def add_sent(self, sent: Callable[[], bool]) -> None:
        """A call to an upstream, which counts its tokens there: `sent()` says whether its
        request may have reached the upstream (not while it waits for a connection, or to
        be tried again)."""
        self._sent.append(sent)

    def only_waiting(self) -> bool:
        """Whether the call's answers all still wait for a slot, or its upstream call to be
        sent: its model has not read it."""
        waiting = [counts() is None for counts in self._answers]
        waiting += [not sent() for sent in self._sent]
        return bool(waiting) and all(waiting)

    def usage(self) -> Usage | None:
        """The call's tokens, its `n` answers counted as a finished call's (`merged_usage`);
        None if no answer was begun."""
        begun = [usage for usage in (counts() for counts in self._answers) if usage is not None]
        return merged_usage(begun) if begun else None


# The call under way in this task (set by the gateway around it), for the engine answering it:
# a backend's `answers(request)` has no other way to hand counts back once it is cut.
counting: ContextVar[UsageSoFar | None] = ContextVar("counting", default=None)

"""Reference routers: `random` (seeded) and `length` (prompt characters, the one to beat)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import ClassVar

from smallfirst.routing.base import Messages, Router


class RandomRouter(Router):
    """A uniform score derived from a hash of (seed, conversation): seeded, thread-safe and
    repeatable for the same request, yet uncorrelated with anything about it."""

    name: ClassVar[str] = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def score(self, messages: Messages) -> float:
        payload = json.dumps([self.seed, [dict(m) for m in messages]], sort_keys=True)
        digest = hashlib.blake2b(payload.encode("utf-8"), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64


class LengthRouter(Router):
    """Longer prompts (all messages, in characters) go strong first: log1p(chars) / 10."""

    name: ClassVar[str] = "length"

    def score(self, messages: Messages) -> float:
        chars = sum(len(m.get("content", "")) for m in messages)
        return math.log1p(chars) / 10

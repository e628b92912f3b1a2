"""A llama.cpp vocabulary's special tokens, as its tokenizer reads them in a prompt.

Before it tokenizes, llama.cpp cuts a text at each occurrence of a special token's text
(control, user-defined and unknown tokens when it parses specials; user-defined ones always)
and tokenizes the text between each cut on its own. That cutting takes time that grows with
the square of the occurrences: 8,000 `<|im_start|>a` took 1.5 s here, 16,000 took 6.6 s, and
a 3.5 MB prompt of them would hold a core for many minutes. So `pieces` hands llama.cpp a long
text in pieces, each cut just before an occurrence where llama.cpp cuts anyway: the tokens
are the same (a test compares them on the bundled vocabulary) and the time is linear.

Where llama.cpp surely cuts: before a token's text that no other can overlap; or, where
none strips white space, before one that nothing near it in the text crosses or outranks
(Gemma 3's line breaks "\n", "\n\n"... overlap each other: 40 kB of " \n" took 9.9 s
whole, 0.06 s in pieces). Not where white space is beside a token that strips it (Phi-3's
strip the white space after them; jina's `<mask>` that before it).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any

CUT_EVERY = 256  # occurrences per piece: llama.cpp's cutting stays cheap within one
CUT_TEXTS_LONGER_THAN = 4096  # characters; a shorter text has too few occurrences to matter


class SpecialTokens:
    """The texts of a vocabulary's special tokens, each with its llama.cpp attribute bits."""

    def __init__(
        self, tokens: Iterable[tuple[str, int]], flags: Any, *, cut_every: int = CUT_EVERY
    ) -> None:
        """`tokens`: each special token's text and llama.cpp attribute bits; `flags`: the
        module with llama.cpp's `LLAMA_TOKEN_ATTR_*` constants (`llama_cpp.llama_cpp`);
        `cut_every`: how many occurrences `pieces` leaves in a piece."""
        self.cut_every = cut_every
        tokens = [(text, bits) for text, bits in tokens if text]
        self._flags = flags
        self._attributes: dict[str, int] = {}  # text -> its tokens' bits, OR-ed
        for text, bits in tokens:
            self._attributes[text] = self._attributes.get(text, 0) | bits
        spelled_kinds = flags.LLAMA_TOKEN_ATTR_CONTROL | flags.LLAMA_TOKEN_ATTR_USER_DEFINED
        # what a message can spell that a prompt would read as a token (`spelled_in`)
        self.spelled = tuple(
            text for text, bits in self._attributes.items() if bits & spelled_kinds and text.strip()
        )
        self._spelled_pattern = _any_of(self.spelled)
        # As llama.cpp cuts: at every special token when it parses them, else only at
        # user-defined ones that are not also control or unknown tokens.
        unparsed = flags.LLAMA_TOKEN_ATTR_CONTROL | flags.LLAMA_TOKEN_ATTR_UNKNOWN
        always = {
            t for t, b in tokens if b & flags.LLAMA_TOKEN_ATTR_USER_DEFINED and not b & unparsed
        }
        self._cut_at = {False: _any_of(always), True: _any_of(self._attributes)}
        self._overlapped: dict[str, bool] = {}
        strips = flags.LLAMA_TOKEN_ATTR_LSTRIP | flags.LLAMA_TOKEN_ATTR_RSTRIP
        self._strips = any(bits & strips for bits in self._attributes.values())
        self._longest = max(map(len, self._attributes), default=0)

    @classmethod
    def of_vocabulary(
        cls, vocab: Any, vocab_size: int, text_of: Callable[[int], str], **options: int
    ) -> SpecialTokens:
        """Read from a loaded model's vocabulary (~40 ms for 49k tokens)."""
        from llama_cpp import llama_cpp as low_level

        kinds = (
            low_level.LLAMA_TOKEN_ATTR_CONTROL
            | low_level.LLAMA_TOKEN_ATTR_USER_DEFINED
            | low_level.LLAMA_TOKEN_ATTR_UNKNOWN
        )
        attributes = (
            int(low_level.llama_vocab_get_attr(vocab, token)) for token in range(vocab_size)
        )
        specials = [(text_of(token), bits) for token, bits in enumerate(attributes) if bits & kinds]
        return cls(specials, low_level, **options)

    def spelled_in(self, text: str) -> bool:
        """Could `text` read differently as a prompt than as text: does it spell a special
        token (or a NUL, which could pass for a mark)? A substring test: tokenizing every
        message twice to compare cost ~9 ms per 4,000 tokens here; a test per special token
        cost 160 ms for 76 kB of prose on Gemma 3's 6,300."""
        pattern = self._spelled_pattern
        return "\x00" in text or (pattern is not None and pattern.search(text) is not None)

    def occurrences_over(self, texts: Iterable[str], limit: int) -> int | None:
        """More than `limit` occurrences of one special token's text that no other can
        overlap, each of which is that token when `texts` are read with special tokens (a
        chat template's pieces, a text prompt): a floor on their tokens. None if there is
        no such floor over `limit`."""
        pattern = self._cut_at[True]
        if pattern is None:
            return None
        texts = list(texts)
        found = Counter(match.group() for text in texts for match in pattern.finditer(text))
        for special, _ in found.most_common():
            fewest = sum(text.count(special) for text in texts)
            if fewest <= limit:
                return None
            if not self.can_be_overlapped(special):
                return fewest
        return None

    def pieces(self, text: str, *, special: bool) -> list[str]:
        """`text` cut before about every `cut_every`-th occurrence of a special token's text
        (where a cut is safe), so that tokenizing the pieces one after the other gives its
        tokens."""
        pattern = self._cut_at[special]
        if pattern is None or len(text) <= CUT_TEXTS_LONGER_THAN:
            return [text]
        starts = [0]
        since_cut = 0
        for match in pattern.finditer(text):
            since_cut += 1
            if since_cut > self.cut_every and self._safe_to_cut_before(text, match):
                starts.append(match.start())
                since_cut = 1
        return [text[start:end] for start, end in pairwise([*starts, len(text)])]

    def can_be_overlapped(self, special: str) -> bool:
        """Could another special token's text (any llama.cpp parses: control, user-defined,
        unknown) contain `special`'s or share an end with its other end?"""
        if special not in self._overlapped:
            others = self._attributes.keys() - {special}
            self._overlapped[special] = any(_overlap(special, other) for other in others)
        return self._overlapped[special]

    def _safe_to_cut_before(self, text: str, match: re.Match[str]) -> bool:
        """llama.cpp surely cuts here too: this occurrence is a token there, whatever other
        token texts are near, and it takes no white space from the piece before (a token that
        strips to its left would), nor has any at its ends to lose."""
        special, start = match.group(), match.start()
        if start == 0:
            return False
        if not self._strips:
            return self._never_overlapped(special) or self._alone_at(text, start, len(special))
        if special[0].isspace() or special[-1].isspace():
            return False  # a token beside it that strips white space (Phi-3's) may take some
        strips_left = self._attributes[special] & self._flags.LLAMA_TOKEN_ATTR_LSTRIP
        if strips_left and text[start - 1].isspace():
            return False
        return self._never_overlapped(special)

    def _never_overlapped(self, special: str) -> bool:
        return not self.can_be_overlapped(special) and not _overlaps_itself(special)

    def _alone_at(self, text: str, start: int, length: int) -> bool:
        """No special token's text in `text` crosses `start`, and no other as long as the one
        there (`length`) starts inside it: llama.cpp reads the longer texts first, and a text
        from the left, so it reads that one there. Gemma 3's line breaks ("\n", "\n\n"...)
        are tokens that overlap each other: without this, 20,000 lines took 9.5 s."""
        pattern = self._cut_at[True]
        assert pattern is not None  # `start` is a special token's
        special = text[start : start + length]
        for position in range(max(0, start - self._longest + 1), start + length):
            found = pattern.match(text, position)  # the longest there
            if found is None or position == start:
                continue
            if position < start:
                crosses_or_outranks = found.end() > start
            else:
                inside = found.group()
                crosses_or_outranks = len(inside) > length or (
                    len(inside) == length and inside != special
                )
            if crosses_or_outranks:
                return False
        return True


def _overlap(text: str, other: str) -> bool:
    """Can a match of `other` overlap one of `text` (contain it, be inside it, or share the
    start of one and the end of the other)?"""
    if text in other or other in text:
        return True
    shorter = min(len(text), len(other))
    return any(
        other.endswith(text[:size]) or text.endswith(other[:size]) for size in range(1, shorter)
    )


def _any_of(texts: Iterable[str]) -> re.Pattern[str] | None:
    """Any of `texts`, the longest where several start, as llama.cpp tries them. Written as
    a trie: `re` tries the alternatives of a plain `a|b|...` one by one at each place, and
    Gemma 3's 6,414 took 0.5 s to scan 76 kB of prose (its tokenizer: 0.07 s)."""
    texts = list(texts)
    trie: _Trie = {}
    for text in texts:
        node = trie
        for character in text:
            node = node.setdefault(character, {})
        node[""] = {}  # a text ends here
    if not trie:
        return None
    try:
        return re.compile(_trie_pattern(trie))
    except RecursionError:  # texts nested some 400 deep, each the start of the next
        return re.compile("|".join(map(re.escape, sorted(texts, key=len, reverse=True))))


_Trie = dict[str, "_Trie"]


def _trie_pattern(node: _Trie) -> str:
    """The texts below `node`; an optional group is greedy, so the longer is tried first."""
    pattern = ""
    while "" not in node and len(node) == 1:  # a run of one text's characters, unbranched
        ((character, node),) = node.items()
        pattern += re.escape(character)
    branches = [re.escape(c) + _trie_pattern(below) for c, below in node.items() if c]
    if not branches:
        return pattern
    group = f"(?:{'|'.join(branches)})"
    return pattern + (f"{group}?" if "" in node else group)


def _overlaps_itself(text: str) -> bool:
    """Can two occurrences of `text` overlap (`aa` in `aaa`)?"""
    return any(text.endswith(text[:size]) for size in range(1, len(text)))

"""E-mail addresses spelled out so that address harvesters miss them: `john (at) example
(dot) com`, `john[at]example[dot]com`, `john{at}example{dot}com`, the defanged
`john[@]example[.]com`, and the bare words `john at example dot com`, `john AT example DOT
com`. A reader, and a model, reads each as john@example.com.

A bracketed "at" is spelled only so; the bare word is the commonest preposition of English,
so a bare form counts only when it reads as an address beyond doubt: its domain spells at
least one dot out ("at example.com" is where someone works), has a known public suffix
(`known_domain`, the e-mail recognizer's check), and neither its user nor its domain's first
label is a function word or a word that goes with "at" in English ("look at this dot com",
"available at Amazon dot com", "worked at a dot com").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

from smallfirst.privacy.patterns import RuleMatch


def _bracketed(words: str) -> str:
    return rf"[ \t]*[(\[{{<][ \t]*(?:{words})[ \t]*[)\]}}>][ \t]*"


_BRACKETED_AT = _bracketed(r"(?i:at)|@")
_BARE_AT = r"[ \t]+(?:at|AT)[ \t]+"
_BRACKETED_DOT = _bracketed(r"(?i:dot)|\.")
_SPELLED_DOT = rf"{_BRACKETED_DOT}|[ \t]+(?:dot|DOT)[ \t]+"
_DOT = re.compile(rf"\.|{_SPELLED_DOT}")
# What an address in use holds before its "@" (as `recognizers._LOCAL_PART`), and a label of
# a domain name; a user of up to four dotted words, a domain of two to six labels.
_USER_WORD = r"[\w%+\-]+"
_LABEL = r"[^\W_](?:[\w\-]{0,61}[^\W_])?"
_SPELLED = re.compile(
    rf"(?<![\w.@%+\-'])(?P<user>{_USER_WORD}(?:(?:{_DOT.pattern}){_USER_WORD}){{0,3}})"
    rf"(?:(?P<bracketed>{_BRACKETED_AT})|{_BARE_AT})"
    rf"(?P<domain>{_LABEL}(?:(?:{_DOT.pattern}){_LABEL}){{1,5}})(?![\w@\-])"
)
# Function words, words that take "at" in English ("<verb or adjective> at <place>") and the
# nouns of "at <noun>" idioms; compared in lower case.
_NOT_AN_ADDRESS = frozenset(
    {"a", "an", "the", "this", "that", "these", "those", "my", "your", "his", "her", "its",
     "our", "their", "me", "you", "him", "us", "them", "it", "i", "we", "they", "he", "she",
     "who", "what", "which", "some", "any", "all", "each", "every", "no", "one", "here",
     "there", "look", "looks", "looked", "looking", "stare", "stared", "glance", "glanced",
     "point", "pointed", "aim", "aimed", "arrive", "arrives", "arrived", "stay", "stays",
     "stayed", "work", "works", "worked", "working", "live", "lives", "lived", "meet", "met",
     "be", "is", "are", "was", "were", "been", "am", "being", "available", "located", "based",
     "hosted", "sold", "listed", "posted", "published", "found", "seen", "born", "held", "good",
     "bad", "great", "better", "best", "expert", "laugh", "laughed", "smile", "smiled", "shop",
     "shopped", "buy", "bought", "order", "ordered", "visit", "visited", "online", "now",
     "only", "even", "just", "not", "also", "still", "up", "out", "home", "school", "night",
     "noon", "least", "last", "first", "once", "times", "worst", "risk", "hand", "ease",
     "large", "random"}
)  # fmt: skip
# What a text holds if this module finds an address in it: an "at" or a dot in brackets, or a
# "dot" spelled as a word (a bare "at" counts only with a dot spelled out: `_address_end`).
# Most texts hold none, and the address pattern, tried at every word, is not run on them.
_CUE = re.compile(r"[(\[{<][ \t]*(?:(?i:at|dot)|[@.])[ \t]*[)\]}>]|[ \t](?:dot|DOT)[ \t]")
# An address needs a domain of this many labels, at least.
_MIN_LABELS = 2


def find_spelled_emails(text: str, known_domain: Callable[[str], bool]) -> Iterator[RuleMatch]:
    """E-mail addresses written with "at" and "dot" spelled out (module docstring); the
    span is the address as written. `known_domain`: whether a domain has a known public
    suffix."""
    if _CUE.search(text) is None:
        return
    position = 0
    while (match := _SPELLED.search(text, position)) is not None:
        end = _address_end(text, match, known_domain)
        if end is None:  # its domain may hold the user of the next one: "me at ann at x dot io"
            position = match.start() + 1
            continue
        score = 0.9 if match["bracketed"] is not None else 0.7
        yield RuleMatch("EMAIL_ADDRESS", match.start(), end, score)
        position = end


def _address_end(
    text: str, match: re.Match[str], known_domain: Callable[[str], bool]
) -> int | None:
    """Where the address `match` spells ends (its domain cut to the longest known one), or
    None if it spells none."""
    user_words = _DOT.split(match["user"])
    separators = list(_DOT.finditer(text, match.start("domain"), match.end("domain")))
    starts = [match.start("domain"), *(dot.end() for dot in separators)]
    ends = [*(dot.start() for dot in separators), match.end("domain")]
    labels = [text[start:end] for start, end in zip(starts, ends, strict=True)]
    bare = match["bracketed"] is None
    if bare and (
        any(word.lower() in _NOT_AN_ADDRESS for word in user_words)
        or labels[0].lower() in _NOT_AN_ADDRESS
        # "Mr. Lee at Globex dot com": a person at an organisation, both names capitalised
        # (addresses are written in lower case, or shouted whole)
        or (user_words[-1].istitle() and labels[0].istitle())
    ):
        return None
    for count in range(len(labels), _MIN_LABELS - 1, -1):
        if bare and all(dot.group() == "." for dot in separators[: count - 1]):
            return None  # "the team at example.com": no dot spelled out
        if known_domain(".".join(labels[:count])):
            return ends[count - 1]
    return None

"""Text analysis for keyword search: lowercase, Unicode words, English stopwords, Snowball stems.

The same analyser runs at index time and at query time; the store keeps analysed text in FTS5,
so changing it means re-ingesting (the analyser name is recorded per store for that reason).
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from typing import Any

from smallfirst.errors import ModelUnavailable

ANALYZER_NAME = "snowball-english-nltk179-v1"

_WORD = re.compile(r"\w+")

# NLTK's English stopword list (179 words), the one the BM25 baseline protocol uses.
_STOPWORD_TEXT = """
a about above after again against ain all am an and any are aren aren't as at be because been
before being below between both but by can couldn couldn't d did didn didn't do does doesn
doesn't doing don don't down during each few for from further had hadn hadn't has hasn hasn't
have haven haven't having he her here hers herself him himself his how i if in into is isn
isn't it it's its itself just ll m ma me mightn mightn't more most mustn mustn't my myself
needn needn't no nor not now o of off on once only or other our ours ourselves out over own re
s same shan shan't she she's should should've shouldn shouldn't so some such t than that
that'll the their theirs them themselves then there these they this those through to too under
until up ve very was wasn wasn't we were weren weren't what when where which while who whom why
will with won won't wouldn wouldn't y you you'd you'll you're you've your yours yourself
yourselves
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    try:  # PyStemmer: the Snowball algorithms in C (no type stubs, hence importlib)
        stemmer_module = importlib.import_module("Stemmer")
    except ImportError as exc:
        raise ModelUnavailable(
            "package 'PyStemmer' is not installed; install smallfirst[rag]"
        ) from exc
    stemmer = stemmer_module.Stemmer("english")
    stemmer.maxCacheSize = 100_000
    return stemmer


def analyze(text: str) -> list[str]:
    """Terms of `text` for BM25: words, lowercased, stopwords dropped, stemmed."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    stems: list[str] = _stemmer().stemWords(words)
    return stems


def query_terms(text: str) -> list[str]:
    """The distinct analysed terms of a query, in order: one BM25 phrase each."""
    return list(dict.fromkeys(analyze(text)))


def fts5_or_expression(terms: list[str]) -> str:
    """An FTS5 query that ORs `terms` as quoted phrases (empty for no terms)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)

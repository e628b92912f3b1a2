"""An in-memory BM25 index over one collection, scoring as FTS5's `bm25()` does (to float32).

FTS5 stays the source of truth: the index is built from the analysed terms stored in
`chunks_fts` and rebuilt after writes. Every posting keeps its precomputed BM25 weight (an
impact score), so a query only adds up the weight arrays of its terms, where FTS5 evaluates
`bm25()` on every matching row.

Scores follow `fts5Bm25Function` (sqlite ext/fts5/fts5_aux.c) with column weights (collection
0, heading 1, body 1): per query term, idf * f * (k1 + 1) / (f + k1 * (1 - b + b * D / avgdl))
with idf = log((N - n + 0.5) / (n + 0.5)), at least 1e-6; f counts the term in heading and
body, D counts a chunk's tokens in all three columns (its one collection token included).
N, n and avgdl come from this collection's chunks alone; FTS5 takes them from the whole table,
so the two agree only while the store holds one collection. The collection column is not
text: a query word spelled like a collection token (`c7`) matches no chunk through it (the
store's FTS5 queries are limited to heading and body for the same reason).
"""

from __future__ import annotations

import re
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

import numpy as np
import numpy.typing as npt

K1 = 1.2
B = 0.75
MIN_IDF = 1e-6
FTS5_TOKENIZE = "unicode61 remove_diacritics 2"  # as `chunks_fts` (migrations/0001_init.sql)

# A term of only these characters is one FTS5 token, spelled the same; any other term (an
# underscore, a diacritic, another script) is spelled by FTS5's own tokenizer instead.
_OWN_TOKEN = re.compile(r"[a-z0-9]+")

Tokenizer = Callable[[Sequence[str]], list[tuple[str, ...]]]
"""The FTS5 tokens of each analysed term, in order (none, one, or several)."""


def fts5_tokenizer(connect: Callable[[], Any]) -> Tokenizer:
    """A `Tokenizer` that runs FTS5's tokenizer on a private database from `connect()`.

    `connect` opens an empty in-memory database of the SQLite that holds the store, so
    tokens are exactly what the store's FTS5 indexed. A new database per call: nothing is
    shared between threads.
    """

    def tokenize(terms: Sequence[str]) -> list[tuple[str, ...]]:
        db = connect()
        try:
            db.execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize = '{FTS5_TOKENIZE}')")
            db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
            db.executemany("INSERT INTO t(rowid, x) VALUES (?, ?)", enumerate(terms, start=1))
            tokens: list[list[str]] = [[] for _ in terms]
            for row, token in db.execute("SELECT doc, term FROM v ORDER BY doc, offset"):
                tokens[row - 1].append(token)
        finally:
            db.close()
        return [tuple(spelled) for spelled in tokens]

    return tokenize


@dataclass(frozen=True)
class KeywordIndex:
    """Postings of one collection's FTS5 tokens with their BM25 weights (immutable)."""

    chunk_ids: npt.NDArray[np.int64]  # ascending; postings refer to positions in it
    token_rows: dict[str, int]  # FTS5 token -> its postings: starts[row]:starts[row + 1]
    starts: npt.NDArray[np.int64]
    positions: npt.NDArray[np.int32]  # chunk positions, ascending within a token
    weights: npt.NDArray[np.float32]
    spellings: dict[str, tuple[str, ...]]  # analysed terms FTS5 does not keep as they are
    tokenize: Tokenizer

    @classmethod
    def build(cls, rows: Iterable[tuple[int, str]], tokenize: Tokenizer) -> KeywordIndex:
        """Index `rows` of (chunk id, analysed heading and body), in ascending chunk id order.

        `rows` is read once, so it can be a database cursor (no list of all the texts).
        """
        chunk_ids, term_ids, ends, terms = _read_terms(rows)
        spellings = _fts5_spellings(terms, tokenize)
        token_rows, spelled_as = _token_vocabulary(terms, spellings)
        keys, lengths = _token_keys(term_ids, ends, spelled_as)
        del term_ids  # freed as soon as possible: at 100k chunks each array here is ~50 MB
        tokens, positions, frequencies = _postings(keys)
        del keys
        lengths += 1  # every chunk also holds its collection token
        weights = bm25_weights(tokens, positions, frequencies, lengths, len(token_rows))
        starts = np.zeros(len(token_rows) + 1, dtype=np.int64)
        np.cumsum(np.bincount(tokens, minlength=len(token_rows)), out=starts[1:])
        return cls(chunk_ids, token_rows, starts, positions, weights, spellings, tokenize)

    def search(
        self, terms: Sequence[str], limit: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
        """The best `limit` chunk ids and their BM25 scores, best first, ties by id.

        `terms` are the query's de-duplicated analysed terms (one FTS5 phrase each). None
        when a term is a phrase of several FTS5 tokens (`snake_case`): matching those needs
        token positions, which only FTS5 keeps.
        """
        rows = self._token_rows_of(terms)
        if rows is None:
            return None
        if not rows or limit <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        slices = [slice(self.starts[row], self.starts[row + 1]) for row in rows]
        scores = np.asarray(  # float64 already: a sum of weights (the annotation says int)
            np.bincount(
                np.concatenate([self.positions[s] for s in slices]),
                weights=np.concatenate([self.weights[s] for s in slices]),
                minlength=len(self.chunk_ids),
            ),
            dtype=np.float64,
        )
        best = _top_positions(scores, limit)
        return self.chunk_ids[best], scores[best]

    def _token_rows_of(self, terms: Sequence[str]) -> list[int] | None:
        """Postings rows of the terms found in the collection (None: a multi-token phrase)."""
        unknown = [t for t in terms if t not in self.spellings and not _OWN_TOKEN.fullmatch(t)]
        fresh = dict(zip(unknown, self.tokenize(unknown), strict=True)) if unknown else {}
        rows = []
        for term in terms:
            spelled = self.spellings.get(term, fresh.get(term, (term,)))
            if len(spelled) > 1:
                return None
            # no token at all (a term of underscores) matches nothing, as in FTS5
            row = self.token_rows.get(spelled[0]) if spelled else None
            if row is not None:
                rows.append(row)  # twice if two terms are one token: FTS5 scores both phrases
        return rows


def bm25_weights(
    rows: npt.NDArray[np.int32],
    positions: npt.NDArray[np.int32],
    frequencies: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    tokens: int,
) -> npt.NDArray[np.float32]:
    """FTS5's BM25 contribution of each posting (token row, chunk position, frequency).

    The same double arithmetic as `fts5Bm25Function`, in place (these arrays are large).
    """
    chunks = len(lengths)
    average_length = lengths.sum() / max(chunks, 1)
    hits = np.bincount(rows, minlength=tokens)
    idf = np.log((chunks - hits + 0.5) / (hits + 0.5))
    idf[idf <= 0.0] = MIN_IDF
    length_terms = K1 * (1 - B + B * lengths / average_length)  # one per chunk
    weights = frequencies.astype(np.float64)
    denominators = length_terms[positions]
    denominators += weights
    weights *= K1 + 1.0
    weights /= denominators
    weights *= idf[rows]
    return weights.astype(np.float32)


def _read_terms(
    rows: Iterable[tuple[int, str]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64], list[str]]:
    """Chunk ids; every term as an id; where each chunk's terms end; the terms by id."""
    vocabulary: defaultdict[str, int] = defaultdict(count().__next__)
    id_of = vocabulary.__getitem__  # a new term gets the next id
    chunk_ids = array("q")
    ids = array("i")  # 4 bytes a term: a list would hold 8-byte pointers
    ends = array("q")
    for chunk_id, text in rows:  # split and lookups run in C: ~200 ns a term
        chunk_ids.append(chunk_id)
        ids.extend(map(id_of, text.split()))
        ends.append(len(ids))
    return (
        np.frombuffer(chunk_ids, dtype=np.int64),
        np.frombuffer(ids, dtype=np.int32),
        np.frombuffer(ends, dtype=np.int64),
        [*vocabulary],
    )


def _fts5_spellings(terms: Sequence[str], tokenize: Tokenizer) -> dict[str, tuple[str, ...]]:
    """FTS5's tokens for the terms that are not one token spelled as they are."""
    odd = [term for term in terms if not _OWN_TOKEN.fullmatch(term)]
    return dict(zip(odd, tokenize(odd), strict=True)) if odd else {}


def _token_vocabulary(
    terms: Sequence[str], spellings: dict[str, tuple[str, ...]]
) -> tuple[dict[str, int], list[tuple[int, ...]]]:
    """Token -> row, and each term's tokens as rows (two terms can share a token)."""
    token_rows: dict[str, int] = {}
    spelled_as = [
        tuple(token_rows.setdefault(token, len(token_rows)) for token in spellings.get(t, (t,)))
        for t in terms
    ]
    return token_rows, spelled_as


def _token_keys(
    term_ids: npt.NDArray[np.int32],
    ends: npt.NDArray[np.int64],
    spelled_as: list[tuple[int, ...]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Every FTS5 token of every chunk as (token row << 32 | chunk position); chunk lengths."""
    sizes = np.fromiter(map(len, spelled_as), dtype=np.int64, count=len(spelled_as))
    terms_per_chunk = np.diff(ends, prepend=0)
    if np.all(sizes == 1):  # the usual case: every term is one token
        first = np.fromiter((s[0] for s in spelled_as), dtype=np.int64, count=len(spelled_as))
        keys = first[term_ids]
        keys <<= 32
        keys |= np.repeat(np.arange(len(ends), dtype=np.int32), terms_per_chunk)
        return keys, terms_per_chunk
    flat = np.fromiter((r for s in spelled_as for r in s), dtype=np.int64, count=int(sizes.sum()))
    per_term = sizes[term_ids]
    token_starts = np.repeat((np.cumsum(sizes) - sizes)[term_ids], per_term)
    offsets = np.arange(int(per_term.sum())) - np.repeat(np.cumsum(per_term) - per_term, per_term)
    keys = flat[token_starts + offsets]
    keys <<= 32
    chunk_of_term = np.repeat(np.arange(len(ends), dtype=np.int32), terms_per_chunk)
    keys |= np.repeat(chunk_of_term, per_term)
    lengths = np.bincount(chunk_of_term, weights=per_term, minlength=len(ends))
    return keys, lengths.astype(np.int64)


def _postings(
    keys: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """Distinct (token row, chunk position) pairs, sorted that way, with their counts.

    `keys` (token row << 32 | chunk position, one per token) is sorted in place.
    """
    keys.sort()
    new = np.ones(len(keys), dtype=np.bool_)
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    firsts = np.flatnonzero(new)
    frequencies = np.diff(firsts, append=len(keys))
    unique = keys[firsts]
    # the low 32 bits are the position: a cast to int32 keeps exactly those
    return (unique >> 32).astype(np.int32), unique.astype(np.int32), frequencies


def _top_positions(scores: npt.NDArray[np.float64], limit: int) -> npt.NDArray[np.intp]:
    """Positions of the `limit` best positive scores, best first, ties by position."""
    matched = np.flatnonzero(scores > 0.0)
    if len(matched) > limit:
        candidates = scores[matched]
        cutoff = candidates[np.argpartition(-candidates, limit - 1)[limit - 1]]
        matched = matched[candidates >= cutoff]  # every tie at the cutoff, in position order
    order = np.argsort(-scores[matched], kind="stable")[:limit]
    return matched[order]

"""What citations call the documents of a collection (`documents.shown_as`).

A document is named by the shortest trailing part of its path that is not the trailing part
of another document's path in the collection: `coffee.md`, or `kitchen/coffee.md` beside a
`bar/coffee.md`. The names are a function of the collection's set of paths alone, so they are
unique whatever order the files were ingested in, and they say no more of the server's folders
than it takes to tell two files apart. A name can only change when a document with the same
file name comes or goes: `name_again` names those of a SQLite store again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import sqlite3


def cited_names(sources: Iterable[str]) -> dict[str, str]:
    """source -> its name, for every one of `sources` (the paths of one collection)."""
    parts = {source: _parts(source) for source in sources}
    names: dict[str, str] = {}
    depth = 1
    while len(names) < len(parts):
        tails = Counter(path[-depth:] for path in parts.values() if len(path) >= depth)
        for source, path in parts.items():
            # a path that is wholly the tail of another's (/a/z.md beside /x/a/z.md) is named
            # by itself; the other goes on to a longer name
            if source not in names and (tails[path[-depth:]] == 1 or len(path) <= depth):
                names[source] = "/".join(path[-depth:])
        depth += 1
    return names


def file_name(source: str) -> str:
    """The last part of `source`: only documents that share it can share a longer tail."""
    return PurePath(source).name


def _parts(source: str) -> tuple[str, ...]:
    path = PurePath(source)
    return path.parts[1:] if path.anchor else path.parts


def name_again(
    db: sqlite3.Connection, collection_id: int, shared_name: str | None = None
) -> dict[str, str]:
    """Set `documents.shown_as` of the collection's documents, only of those whose file name
    is `shared_name` if given (no other name can change), inside the caller's transaction;
    returns the documents whose name changed -> their name now."""
    query = "SELECT source, shown_as FROM documents WHERE collection_id = ?"
    arguments: tuple[object, ...] = (collection_id,)
    if shared_name is not None:
        query += " AND file_name = ?"
        arguments += (shared_name,)
    stored = dict(db.execute(query, arguments).fetchall())
    renamed = {
        source: name for source, name in cited_names(stored).items() if name != stored[source]
    }
    db.executemany(
        "UPDATE documents SET shown_as = ? WHERE collection_id = ? AND source = ?",
        [(name, collection_id, source) for source, name in renamed.items()],
    )
    return renamed

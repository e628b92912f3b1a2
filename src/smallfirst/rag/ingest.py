"""Ingest local files into a collection: extract, chunk, embed locally, store.

Incremental: a file whose content hash is unchanged is skipped, a changed one is replaced,
and a file that disappeared from an ingested folder is removed from the collection, as are
the documents at a given path that no longer exists.
Symlinks are followed while they stay inside the paths given, and a document keeps the path
the user sees (the link's); every file left out of a folder is named with its reason
(`Discovery.ignored`).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from smallfirst.config import collection_name_problem
from smallfirst.embed.batches import embedded_batches
from smallfirst.errors import InvalidRequest, SmallfirstError
from smallfirst.rag.chunking import Chunk, chunk_text
from smallfirst.rag.extract import extract, extractor_version, is_supported
from smallfirst.rag.store import ChunkStore

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

CHUNKER_VERSION = "chunker-v1"  # part of the content hash: a new chunker re-ingests everything
EMBED_BATCH_SIZE = 32

TextEmbedder = Callable[[list[str]], "npt.NDArray[np.float32]"]
Progress = Callable[[int, int, str], None]  # (files done, files total, source)
ChunkProgress = Callable[[int, int], None]  # (chunks embedded, chunks of the current file)


@dataclass
class IngestSummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unchanged: same content hash
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    # stored, but nothing to search: empty files, PDFs of scanned pages (no text layer)
    without_text: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)  # path -> why it was not ingested
    # read (added or updated) as text that is not UTF-8: path -> the encoding guessed
    guessed_encodings: dict[str, str] = field(default_factory=dict)
    # a given path that no longer exists -> the documents stored there (all in `removed`)
    gone: dict[str, list[str]] = field(default_factory=dict)
    # documents stored before whose citation name changed (`rag.names`) -> their name now
    renamed: dict[str, str] = field(default_factory=dict)
    collection_deleted: bool = False  # its last document was removed
    chunks_written: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "skipped": len(self.skipped),
            "removed": len(self.removed),
            "failed": len(self.failed),
            "without_text": len(self.without_text),
            "ignored": len(self.ignored),
            "chunks_written": self.chunks_written,
        }

    def ignored_by_reason(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for path, reason in sorted(self.ignored.items()):
            grouped.setdefault(reason, []).append(path)
        return dict(sorted(grouped.items()))


# Why an entry under an ingested folder was left out.
UNSUPPORTED = "unsupported file type"
HIDDEN = "hidden"
NOT_REGULAR = "not a regular file"
BROKEN_LINK = "broken symlink"
LINK_LOOP = "symlink loop"
UNREADABLE_FOLDER = "unreadable folder"
SAME_FOLDER = "folder already included"
SAME_FILE = "same file as another path"
# A folder you did not write (a cloned repository, an unpacked archive) can hold
# `notes.md -> ~/.ssh/id_rsa`: followed, the key was searchable and quoted to every client.
LINK_OUTSIDE = "symlink to outside the paths given"
# Made on another system (Latin-1 names from an old archive): SQLite stores only UTF-8 text, and
# such a name stopped the whole ingest with a UnicodeEncodeError.
NAME_NOT_UTF8 = "name is not valid UTF-8"


_Kind = Literal["folder", "file", "linked folder", "linked file", "broken link", "other"]


@dataclass
class Discovery:
    """The files to ingest, each at the path the user sees (symlinks are not resolved)."""

    roots: list[Path]  # the paths given, absolute: removal looks only under these
    files: list[Path]  # sorted
    ignored: dict[str, str]  # path -> reason


def discover(paths: Sequence[Path]) -> Discovery:
    """Walk `paths` (files as given, folders recursively, following symlinks like `find -L`
    while they lead to somewhere under one of `paths`) and say what will be ingested and what
    is left out, and why."""
    walk = _Walk([Path(os.path.realpath(path)) for path in paths])
    roots = [walk.add_root(path) for path in paths]
    walk.follow_linked_folders()
    files, duplicates = walk.distinct_files()
    included = {str(path) for path in files}  # e.g. a hidden file also given by name
    ignored = {shown(p): why for p, why in walk.ignored.items() if p not in included}
    return Discovery(roots, files, {**ignored, **duplicates})


def shown(path: str | Path) -> str:
    """`path` printable: bytes of a name that are not UTF-8 spelled `\\xff`, not kept as the
    lone surrogates that no terminal, JSON file or SQLite column takes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def discover_files(paths: Sequence[Path]) -> list[Path]:
    """Supported files under `paths`, sorted (see `discover`)."""
    return discover(paths).files


class _Walk:
    """One pass over the given paths. Symlinked folders are walked last, so a folder that is
    both inside the tree and linked to is ingested under its own path, not the link's."""

    def __init__(self, inside: list[Path]) -> None:
        self.inside = inside  # where a link found in a folder may lead (the paths given)
        self.files: dict[Path, bool] = {}  # path -> reached through a symlink
        self.ignored: dict[str, str] = {}
        self.walked: dict[Path, Path] = {}  # real folder -> the path it was walked as
        self.linked_folders: list[tuple[Path, Path]] = []  # (link, real folder holding it)

    def add_root(self, path: Path) -> Path:
        if not path.exists():
            raise path_not_found(path)
        if path.is_dir():
            # a folder is the same folder whatever path names it: sources stay stable
            self.walk(path.resolve(), via_link=False)
            return path.resolve()
        if not is_supported(path):
            raise InvalidRequest(f"unsupported file type: {path}")
        seen_as = _as_seen(path)
        self.add_file(seen_as, via_link=path.is_symlink())
        return seen_as

    def walk(self, top: Path, *, via_link: bool) -> None:
        stack = [top]
        while stack:
            folder = stack.pop()
            real = folder.resolve()
            if real in self.walked:
                if self.walked[real] != folder:
                    self.ignored[str(folder)] = SAME_FOLDER
                continue
            self.walked[real] = folder
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                self.ignored[str(folder)] = UNREADABLE_FOLDER
                continue
            subfolders = [self.visit(folder / e.name, e, real, via_link) for e in entries]
            stack.extend(reversed([path for path in subfolders if path is not None]))

    def visit(
        self, path: Path, entry: os.DirEntry[str], real_folder: Path, via_link: bool
    ) -> Path | None:
        """Sort one entry of a folder; a plain subfolder is returned for the walk to enter."""
        if entry.name.startswith("."):
            self.ignored[str(path)] = HIDDEN
            return None
        kind = _kind(entry)
        if kind not in ("folder", "file", "linked folder") and not self.leads_inside(path):
            self.ignored[str(path)] = LINK_OUTSIDE  # a linked file, a broken or special link
        elif kind == "linked folder":
            self.linked_folders.append((path, real_folder))
        elif kind == "folder":
            return path
        elif kind in ("file", "linked file"):
            self.add_file(path, via_link=via_link or kind == "linked file")
        elif kind == "broken link":
            self.add_broken_link(path)
        else:
            self.ignored[str(path)] = NOT_REGULAR
        return None

    def add_file(self, path: Path, *, via_link: bool) -> None:
        if not is_supported(path):
            self.ignored[str(path)] = UNSUPPORTED
        elif shown(path) != str(path):
            self.ignored[str(path)] = NAME_NOT_UTF8
        else:
            self.files.setdefault(path, via_link)

    def add_broken_link(self, path: Path) -> None:
        # a document's link is kept so that reading it fails loudly, under the link's name
        if is_supported(path):
            self.add_file(path, via_link=True)
        else:
            self.ignored[str(path)] = BROKEN_LINK

    def follow_linked_folders(self) -> None:
        while self.linked_folders:
            link, holder = self.linked_folders.pop(0)
            target = link.resolve()
            if target == holder or target in holder.parents:
                self.ignored[str(link)] = LINK_LOOP
            elif not self.leads_inside(link):
                self.ignored[str(link)] = LINK_OUTSIDE
            else:
                self.walk(link, via_link=True)

    def leads_inside(self, link: Path) -> bool:
        """Whether `link`, all links on the way followed (a missing target too), is under
        one of the paths given."""
        return _is_under(os.path.realpath(link), self.inside)

    def distinct_files(self) -> tuple[list[Path], dict[str, str]]:
        """Each file once: a file reached without a symlink wins, then the first path."""
        kept: dict[str, Path] = {}
        duplicates: dict[str, str] = {}
        for path, _ in sorted(self.files.items(), key=lambda item: (item[1], item[0])):
            target = os.path.realpath(path) if path.exists() else str(path)
            if target in kept:
                duplicates[str(path)] = SAME_FILE
            else:
                kept[target] = path
        return sorted(kept.values()), duplicates


def _kind(entry: os.DirEntry[str]) -> _Kind:
    try:
        linked = entry.is_symlink()
        if entry.is_dir():
            return "linked folder" if linked else "folder"
        if entry.is_file():
            return "linked file" if linked else "file"
        if linked and os.path.exists(entry.path):  # a link to a fifo, a device, a socket
            return "other"
    except OSError:  # a link loop, or a target we may not look at
        pass
    return "broken link" if entry.is_symlink() else "other"


def path_exists(path: Path) -> bool:
    """`path.exists()`; a path that cannot be looked at (a folder above it denies access) is
    an InvalidRequest naming it, not a PermissionError's traceback."""
    try:
        return path.exists()
    except OSError as exc:
        raise InvalidRequest(f"cannot look at {path}: {exc.strerror or exc}") from None


def path_not_found(path: Path) -> InvalidRequest:
    broken = " (a symlink whose target is missing)" if path.is_symlink() else ""
    return InvalidRequest(f"path not found: {path}{broken}")


def documents_at(path: Path, sources: Iterable[str]) -> list[str]:
    """The `sources` that are `path` or lie under it, sorted, whether or not `path` exists.

    Ingest resolves the path it is given (a folder wholly, a file's folder) and keeps the
    names below it, links included; so `path` is compared resolved, and with each of its
    folders resolved and the rest as written (a file reached through a linked folder)."""
    absolute = Path(os.path.abspath(path))
    spellings = [absolute.resolve()]
    spellings += [folder.resolve() / absolute.relative_to(folder) for folder in absolute.parents]
    return sorted(source for source in sources if _is_under(source, spellings))


def _as_seen(path: Path) -> Path:
    """`path` absolute, its folder resolved but its own name kept: a link stays the link."""
    return path.parent.resolve() / path.name


def content_hash(raw: bytes, extractor: str = "") -> str:
    """What decides whether a file is read again: its bytes, the chunker's version and its
    kind's `extractor_version` ("" as before extractors had versions)."""
    made_by = CHUNKER_VERSION + (f"+{extractor}" if extractor else "")
    return hashlib.sha256(made_by.encode() + b"\0" + raw).hexdigest()


@dataclass(frozen=True)
class _Model:
    embed_texts: TextEmbedder
    count_tokens: Callable[[str], int]
    max_tokens: int
    chunk_progress: ChunkProgress | None


def ingest_paths(
    store: ChunkStore,
    paths: Sequence[Path],
    *,
    collection: str,
    embed_texts: TextEmbedder | None = None,
    count_tokens: Callable[[str], int] | None = None,
    progress: Progress | None = None,
    chunk_progress: ChunkProgress | None = None,
    summary: IngestSummary | None = None,
) -> IngestSummary:
    """Bring `collection` in line with the files under `paths` and say what changed.

    A document's source is the path the user sees: a symlinked file is stored under the
    link's path, so removing the link removes the document. A path that no longer exists
    removes the documents stored at it (`summary.gone`); one that holds none is an error,
    raised before anything is written. Removing the last document deletes the collection.
    `summary`, if given, is filled in file by file: when ingest stops part-way (Ctrl-C, a full
    disk) it still says what was saved, each file in its own transaction."""
    known = store.document_hashes(collection)
    refuse_a_bad_new_name(collection, known)
    gone = documents_at_missing_paths(paths, known)
    found = discover([path for path in paths if path_exists(path)])
    summary = summary if summary is not None else IngestSummary()
    summary.ignored, summary.gone = found.ignored, gone
    present: set[str] = set()
    if found.files:  # the embedder loads only when there are files to read
        model = _model_defaults(embed_texts, count_tokens, chunk_progress)
        present = _ingest_files(store, collection, found, known, summary, model, progress)
    at_gone_paths = {source for sources in gone.values() for source in sources}
    # a folder that cannot be listed (permissions) may still hold its files: kept as they were
    unlisted = [Path(path) for path, why in found.ignored.items() if why == UNREADABLE_FOLDER]
    for source in sorted(known):
        if source in at_gone_paths or (
            source not in present
            and _is_under(source, found.roots)
            and not _is_under(source, unlisted)
        ):
            summary.renamed.update(store.remove_document(collection, source))
            summary.removed.append(source)
    summary.renamed = {
        source: name
        for source, name in summary.renamed.items()
        if source in known and source not in summary.removed
    }
    summary.collection_deleted = bool(summary.removed) and not store.document_hashes(collection)
    return summary


def refuse_a_bad_new_name(collection: str, known: Mapping[str, str]) -> None:
    """A new collection needs a name fit for the model id `rag/<name>` (`known`: the
    documents it holds); one ingested before names were checked can still be updated."""
    problem = collection_name_problem(collection)
    if problem is not None and not known:
        raise InvalidRequest(problem, param="collection")


def documents_at_missing_paths(paths: Sequence[Path], known: Iterable[str]) -> dict[str, list[str]]:
    """Each of `paths` that no longer exists (absolute) -> the documents stored at it;
    `path_not_found` for one that holds none."""
    gone: dict[str, list[str]] = {}
    for path in paths:
        if path_exists(path):
            continue
        sources = documents_at(path, known)
        if not sources:  # a typo, or never ingested here: nothing to remove
            raise path_not_found(path)
        gone[os.path.abspath(path)] = sources
    return gone


def _ingest_files(
    store: ChunkStore,
    collection: str,
    found: Discovery,
    known: dict[str, str],
    summary: IngestSummary,
    model: _Model,
    progress: Progress | None,
) -> set[str]:
    """Add or update each file; returns the sources still on disk (read or not)."""
    present: set[str] = set()
    files = found.files
    for done, path in enumerate(files, start=1):
        source = str(path)
        try:
            _ingest_file(store, collection, path, known.get(source), summary, model)
        except FileNotFoundError as exc:  # gone (or a broken link): its old chunks go too
            summary.failed[source] = _not_found_reason(path, exc)
        except (OSError, SmallfirstError) as exc:  # kept as last ingested
            summary.failed[source] = _failure_reason(exc)
            present.add(source)
        else:
            present.add(source)
        if progress is not None:
            progress(done, len(files), source)
    return present


def _ingest_file(
    store: ChunkStore,
    collection: str,
    path: Path,
    known_hash: str | None,  # None: not in the collection yet
    summary: IngestSummary,
    model: _Model,
) -> None:
    source = str(path)
    raw = read_regular_file(path)
    digest = content_hash(raw, extractor_version(path))
    if known_hash == digest:
        summary.skipped.append(source)
        return
    document = extract(path, raw)
    chunks = chunk_text(
        document.text,
        count_tokens=model.count_tokens,
        max_tokens=model.max_tokens,
        markdown=document.markdown,
        start=document.body_start,
        # a file without headings still gets its name as context
        title=document.title or ("" if document.markdown else path.stem),
    )
    renamed = store.put_document(
        collection,
        source,
        title=document.title or path.name,
        content_hash=digest,
        chunks=chunks,
        embeddings=embed_chunks(chunks, model.embed_texts, model.chunk_progress),
    )
    summary.renamed.update(renamed)
    summary.chunks_written += len(chunks)
    if document.encoding not in ("utf-8", ""):
        summary.guessed_encodings[source] = document.encoding
    if not chunks:
        summary.without_text.append(source)
    (summary.added if known_hash is None else summary.updated).append(source)


def read_regular_file(path: Path) -> bytes:
    """The bytes of the regular file at `path`; anything else (a fifo, a device such as
    /dev/zero, named or reached through a link, or swapped in since the walk) is an OSError
    before a byte is read: a fifo's read waits forever, /dev/zero's fills the memory."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opening a fifo does not wait
    with os.fdopen(fd, "rb") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(NOT_REGULAR)  # the summary names the file beside its reason
        return file.read()


def _failure_reason(exc: OSError | SmallfirstError) -> str:
    """Why a file failed, without its path (the summary names it beside the reason)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return exc.strerror  # "Permission denied", not "[Errno 13] Permission denied: 'PATH'"
    return str(exc)


def _not_found_reason(path: Path, exc: FileNotFoundError) -> str:
    if not path.is_symlink():
        return _failure_reason(exc)
    try:
        target = str(path.readlink())
    except OSError:  # the link itself went away meanwhile
        return _failure_reason(exc)
    return f"broken symlink: its target {target} does not exist"


def embed_chunks(
    chunks: Sequence[Chunk],
    embed_texts: TextEmbedder,
    progress: ChunkProgress | None = None,
) -> npt.NDArray[np.float32]:
    """Embeddings, one batch per core at a time (`embed.batches`); `progress` hears after each
    batch, in order (a big file takes minutes)."""
    import numpy as np

    texts = [c.embedding_text for c in chunks]
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    batches = []
    for start, batch in embedded_batches(texts, embed_texts, EMBED_BATCH_SIZE):
        batches.append(batch)
        if progress is not None:
            progress(start + len(batch), len(texts))
    return np.concatenate(batches).astype(np.float32, copy=False)


def _model_defaults(
    embed_texts: TextEmbedder | None,
    count_tokens: Callable[[str], int] | None,
    chunk_progress: ChunkProgress | None,
) -> _Model:
    from smallfirst import embed

    if embed_texts is None or count_tokens is None:
        embedder = embed.get_embedder()
        embed_texts = embed_texts or embedder.embed
        count_tokens = count_tokens or embedder.count_tokens
    return _Model(embed_texts, count_tokens, embed.MAX_TOKENS, chunk_progress)


def _is_under(source: str, roots: Sequence[Path]) -> bool:
    for root in roots:
        top = str(root)
        if source == top or source.startswith(top.rstrip(os.sep) + os.sep):
            return True
    return False

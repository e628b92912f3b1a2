"""`smallfirst rag ...`: ingest files into a collection, search it, evaluate retrieval.

Heavy imports (numpy, onnxruntime, sqlite-vec) stay inside the commands so `--help` is fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from smallfirst.cli.common import (
    INTERRUPTED,
    check_writable,
    counted,
    fail,
    settings_or_exit,
    stops_as_interrupt,
)
from smallfirst.paths import broken_link_in, exclusive_lock

if TYPE_CHECKING:
    from rich.progress import Progress

    from smallfirst.rag import IngestSummary, SqliteChunkStore

app = typer.Typer(help="Ingest local documents and search them (RAG).", no_args_is_help=True)

METHOD_CHOICES = ("bm25", "vector", "hybrid")
# Held by an ingest for its whole run. Two at once (cron runs overlapping, two terminals)
# both embedded every file, both said "60 added", and each removal decision was made on what
# the collection held when it started.
INGEST_LOCK = "rag.sqlite.ingest-lock"
IGNORED_SHOWN = 3  # paths named per reason without --verbose: big folders stay short

DataDir = Annotated[
    Path | None,
    # no "[...]" in help: rich reads it as markup and drops it
    typer.Option("--data-dir", help="Folder holding rag.sqlite (default: the config's data_dir)."),
]
# `-c` is --collection here, so the config file has its long name only
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        envvar="SMALLFIRST_CONFIG",
        help="YAML config file: its data_dir is where `serve` looks for collections.",
    ),
]
Collection = Annotated[str, typer.Option("--collection", "-c", help="Collection name.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


@contextmanager
def _store(directory: Path, *, refuse_other_settings: bool = True) -> Iterator[SqliteChunkStore]:
    """The store in `directory`, closed after use, or exit with one line saying why it cannot
    be used: 2 for bad usage (a store that another version indexed, an unknown collection),
    1 for a file that is damaged, cannot be written or whose disk is full. A command searches
    once at most: SQLite answers it, no in-memory copies are built."""
    from smallfirst.errors import SmallfirstError
    from smallfirst.rag import store_errors

    try:
        store = _opened(directory, refuse_other_settings)
        try:
            with store_errors(store.path):
                yield store
        finally:
            store.close()
    except SmallfirstError as exc:  # a client's mistake (4xx) is bad usage here
        fail(exc.message, code=1 if exc.status >= 500 else 2)


def _opened(directory: Path, refuse_other_settings: bool) -> SqliteChunkStore:
    from smallfirst.rag import open_store

    try:
        return open_store(
            directory, refuse_other_settings=refuse_other_settings, in_memory_copies=False
        )
    except OSError as exc:
        fail(f"cannot open the store in {directory}: {exc.strerror or exc}")


def _existing_store(
    data_dir: Path | None,
    config: Path | None,
    *,
    collection: str | None = None,
    refuse_other_settings: bool = True,
) -> AbstractContextManager[SqliteChunkStore]:
    """The store in the data dir (see `_store`), or exit 2 saying that nothing was ingested
    there (a command that only reads creates no store). `collection`: the one asked for,
    named in the error."""
    directory = _data_dir_to_read(data_dir, config)
    if not _holds_store(directory):
        asked = f"RAG collection {collection!r} does not exist: " if collection is not None else ""
        fail(f"{asked}the data dir {directory} holds no collections (nothing was ingested there)")
    return _store(directory, refuse_other_settings=refuse_other_settings)


def _data_dir_to_read(data_dir: Path | None, config: Path | None) -> Path:
    """The data dir a reading command looks in; exit 2 if it is a file."""
    directory = _data_dir(data_dir, config)
    if directory.exists() and not directory.is_dir():
        fail(f"the data dir {directory} is a file, not a directory")
    return directory


def _holds_store(directory: Path) -> bool:
    from smallfirst.rag.store import STORE_FILENAME

    return (directory / STORE_FILENAME).is_file()


def _data_dir(data_dir: Path | None, config: Path | None) -> Path:
    directory = data_dir or settings_or_exit(config).resolved_data_dir
    if (broken := broken_link_in(directory)) is not None:  # mkdir says only "File exists"
        fail(f"cannot use the data dir {directory}: {broken}")
    return directory


def _progress_bar(label: str, *, quiet: bool) -> Progress:
    """A bar on stderr (silent with --json, so stdout stays machine-readable). Off a
    terminal it would show nothing but leave an empty line before what follows."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )


def _print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, ensure_ascii=False))


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (txt, md, html, pdf).")],
    collection: Collection,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    as_json: AsJson = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every file left out, not a few.")
    ] = False,
) -> None:
    """Add, update or remove documents so COLLECTION matches the files under PATHS.

    Symlinks are followed while they lead under one of PATHS; a linked file is stored under
    the link's path. A PATH that no longer exists removes the documents stored at it."""
    from smallfirst.config import collection_name_problem
    from smallfirst.errors import SmallfirstError
    from smallfirst.rag import IngestSummary, StoreBusy, StoreFull, discover_files
    from smallfirst.rag.ingest import (
        documents_at_missing_paths,
        path_exists,
        path_not_found,
        refuse_a_bad_new_name,
    )

    try:
        missing = [path for path in paths if not path_exists(path)]
        total = len(discover_files([path for path in paths if path not in missing]))
    except SmallfirstError as exc:
        fail(exc.message)
    directory = _data_dir(data_dir, config)
    check_writable(directory, directory=True)
    if not _holds_store(directory):  # nothing was ever ingested there: fail before making one
        if missing:
            fail(path_not_found(missing[0]).message)
        if problem := collection_name_problem(collection):
            fail(problem)
    summary = IngestSummary()  # filled in file by file: what is saved if ingest stops
    with _store(directory) as store, _one_ingest_at_a_time(directory):
        known = store.document_hashes(collection)
        refuse_a_bad_new_name(collection, known)
        if missing:  # before the progress bar: a missing path holding nothing is an error
            documents_at_missing_paths(missing, known)
        try:
            with stops_as_interrupt():
                _ingest_showing_progress(store, paths, collection, summary, total, quiet=as_json)
        except KeyboardInterrupt:
            typer.echo(
                f"interrupted: {_saved(summary, total)}; run the same command again to continue"
                " (unchanged files are skipped)",
                err=True,
            )
            raise typer.Exit(INTERRUPTED) from None
        except (StoreFull, StoreBusy) as exc:
            fail(
                f"{exc.message}; what was ingested before is kept ({_saved(summary, total)}),"
                " and a re-run skips unchanged files",
                code=1,
            )
        held = len(store.document_hashes(collection))
    if as_json:
        _print_json(_ingest_json(collection, summary) | {"documents_in_collection": held})
    else:
        _print_ingest_summary(collection, summary, verbose=verbose)
        if not held and not summary.collection_deleted:  # `rag search` would say "no such"
            typer.echo(f"  no document stored: collection {collection} was not created")


@contextmanager
def _one_ingest_at_a_time(directory: Path) -> Iterator[None]:
    """Another ingest into `directory` is waited for (said on stderr): the one that follows
    then finds its files stored and skips them."""

    def say_waiting() -> None:
        typer.echo(
            f"waiting for another `smallfirst rag ingest` into {directory} to finish"
            " (Ctrl-C stops waiting)",
            err=True,
        )

    held = ExitStack()
    try:
        with stops_as_interrupt():
            held.enter_context(exclusive_lock(directory / INGEST_LOCK, say_waiting))
    except KeyboardInterrupt:
        typer.echo("interrupted while waiting: nothing was ingested", err=True)
        raise typer.Exit(INTERRUPTED) from None
    with held:
        yield


def _ingest_showing_progress(
    store: SqliteChunkStore,
    paths: list[Path],
    collection: str,
    summary: IngestSummary,
    total: int,
    *,
    quiet: bool,
) -> None:
    """`ingest_paths` under a progress bar of files, and of chunks inside a big file;
    a full disk is a `StoreFull`, a write lock held too long by another process a
    `StoreBusy`."""
    from smallfirst.rag import ingest_paths, store_errors
    from smallfirst.rag.ingest import EMBED_BATCH_SIZE

    with _progress_bar("ingest", quiet=quiet) as bar, store_errors(store.path):
        files = bar.add_task("files", total=total)
        chunks = bar.add_task("chunks embedded (this file)", total=None, visible=False)

        def advance(done: int, _total: int, source: str) -> None:
            bar.update(files, completed=done, description=Path(source).name)
            bar.update(chunks, visible=False)

        def embedded(done: int, of: int) -> None:
            bar.update(chunks, completed=done, total=of, visible=of > EMBED_BATCH_SIZE)

        ingest_paths(
            store,
            paths,
            collection=collection,
            progress=advance,
            chunk_progress=embedded,
            summary=summary,
        )


def _saved(so_far: IngestSummary, total: int) -> str:
    """How far an ingest that stopped got (each file is saved whole or not at all)."""
    saved = len(so_far.added) + len(so_far.updated)
    up_to_date = saved + len(so_far.skipped)
    return f"{counted(saved, 'file')} saved, {up_to_date} of {total} up to date"


def _ingest_json(collection: str, summary: IngestSummary) -> dict[str, Any]:
    return {
        "collection": collection,
        **summary.counts(),
        "removed_files": summary.removed,
        "failed_files": summary.failed,
        "files_without_text": summary.without_text,
        "ignored_by_reason": {
            reason: len(paths) for reason, paths in summary.ignored_by_reason().items()
        },
        "ignored_files": dict(sorted(summary.ignored.items())),
        "guessed_encodings": summary.guessed_encodings,
        "gone_paths": summary.gone,
        "renamed_files": summary.renamed,
        "collection_deleted": summary.collection_deleted,
    }


def _print_ingest_summary(collection: str, summary: IngestSummary, *, verbose: bool) -> None:
    counts = summary.counts()
    typer.echo(
        f"{collection}: {counts['added']} added, {counts['updated']} updated, "
        f"{counts['skipped']} unchanged, {counts['removed']} removed, "
        f"{counts['failed']} failed, {counts['ignored']} ignored "
        f"({counted(counts['chunks_written'], 'chunk')} written)"
    )
    if verbose and summary.removed:
        typer.echo(f"  removed ({len(summary.removed)})" + _listed(summary.removed, verbose=True))
    for reason, paths in summary.ignored_by_reason().items():
        typer.echo(f"  ignored, {reason} ({len(paths)})" + _listed(paths, verbose=verbose))
    for source, reason in summary.failed.items():
        typer.echo(f"  failed: {source}: {reason}", err=True)
    for source in summary.without_text:
        typer.echo(f"  no text found ({_why_no_text(source)}): {source}")
    by_encoding: dict[str, list[str]] = {}
    for source, encoding in summary.guessed_encodings.items():
        by_encoding.setdefault(encoding, []).append(source)
    for encoding, sources in sorted(by_encoding.items()):
        typer.echo(
            f"  not UTF-8, read as {encoding} (a guess: `rag search` shows the text)"
            f" ({len(sources)})" + _listed(sources, verbose=verbose)
        )
    for path, sources in summary.gone.items():
        typer.echo(f"  removed {_documents_that_are(len(sources))} no longer at {path}")
    _say_renamed(summary.renamed, verbose=verbose)
    if summary.collection_deleted:
        _say_deleted(collection)


def _documents_that_are(count: int) -> str:
    return counted(count, "document") + (" that is" if count == 1 else " that are")


def _why_no_text(source: str) -> str:
    """A Markdown file of headings only was said to be "a PDF of scanned pages"."""
    if source.lower().endswith(".pdf"):
        return "a PDF of scanned pages? OCR it first"
    return "empty, or headings and markup only"


def _say_renamed(renamed: dict[str, str], *, verbose: bool) -> None:
    """Documents whose citation name changed because a namesake came or went."""
    if renamed:
        as_cited = [f"{source} as {name}" for source, name in sorted(renamed.items())]
        typer.echo(f"  cited by a new name ({len(renamed)})" + _listed(as_cited, verbose=verbose))


def _say_deleted(collection: str) -> None:
    typer.echo(f"  {collection} holds no documents now: the collection was deleted")


def _listed(paths: list[str], *, verbose: bool) -> str:
    """Every path, one a line, with --verbose; else the first few on the same line."""
    if verbose:
        return ":" + "".join(f"\n    {path}" for path in paths)
    shown = ", ".join(paths[:IGNORED_SHOWN])
    more = len(paths) - IGNORED_SHOWN
    return f": {shown}" + (f" and {more} more (--verbose lists them)" if more > 0 else "")


@app.command()
def reindex(data_dir: DataDir = None, config: ConfigFile = None, as_json: AsJson = False) -> None:
    """Re-analyse and re-embed every stored chunk with this version's analyzer and embedder.

    For a store that another smallfirst version indexed (searching refuses it); documents are
    not read again. All or nothing: an interrupted reindex leaves the store as it was.
    """
    from smallfirst import embed

    with _existing_store(data_dir, config, refuse_other_settings=False) as store:
        embedder = embed.get_embedder()
        with _progress_bar("reindex", quiet=as_json) as bar:
            task = bar.add_task("", total=None)
            chunks = store.reindex(
                lambda texts: embedder.embed(texts, truncate=True),
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    summary = {"chunks": chunks, "embedder": embed.EMBEDDER_ID}
    if as_json:
        _print_json(summary)
        return
    typer.echo(f"reindexed {chunks} chunks with {embed.EMBEDDER_ID}")


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    collection: Collection,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="Number of hits.")] = 5,
    method: Annotated[str, typer.Option("--method", "-m", help="bm25, vector or hybrid.")] = (
        "hybrid"
    ),
    data_dir: DataDir = None,
    config: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Search COLLECTION and print the best chunks with their source and span."""
    from smallfirst.rag import CollectionNotFound, Retriever
    from smallfirst.rag.retrieve import has_words

    if method not in METHOD_CHOICES:
        fail(f"--method must be one of {', '.join(METHOD_CHOICES)}, not {method!r}")
    if not has_words(query):
        fail("query is empty: it has no letter or digit to search for")
    with _existing_store(data_dir, config, collection=collection) as store:
        hits = Retriever(store).search(query, collection=collection, k=k, method=method)  # type: ignore[arg-type]
        if not hits and not any(c.name == collection and c.chunks for c in store.collections()):
            raise CollectionNotFound.without_text(collection)  # as the server says it
    if as_json:
        _print_json([{**hit.as_dict(), "shown_as": hit.name} for hit in hits])
        return
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit.name}:{hit.char_start}-{hit.char_end}"
        heading = f"  [{hit.heading}]" if hit.heading else ""
        typer.echo(f"{rank}. {hit.score:.4f}  {where}{heading}")
        typer.echo("   " + " ".join(hit.text.split())[:300])


@app.command("collections")
def list_collections(
    data_dir: DataDir = None,
    config: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """List collections with their document and chunk counts."""
    from smallfirst.rag import CollectionInfo

    infos: list[CollectionInfo] = []
    directory = _data_dir_to_read(data_dir, config)
    if _holds_store(directory):  # listing creates no store
        with _store(directory) as store:
            infos = store.collections()
    if as_json:
        _print_json([{"name": c.name, "documents": c.documents, "chunks": c.chunks} for c in infos])
        return
    if not infos:  # said on stderr: stdout, one collection per line, stays empty for scripts
        typer.echo(f"no collections in {directory} (smallfirst rag ingest adds one)", err=True)
    for info in infos:
        typer.echo(
            f"{info.name}\t{counted(info.documents, 'document')}\t{counted(info.chunks, 'chunk')}"
        )


@app.command()
def delete(
    collection: Annotated[str, typer.Argument(help="The collection.")],
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Only the documents at these files or folders (gone or not)."),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    data_dir: DataDir = None,
    config: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Delete COLLECTION (documents, chunks, vectors), or only its documents at PATHS.

    Asks first unless --yes. Files on disk are never touched."""
    with _existing_store(data_dir, config, collection=collection) as store:
        info = next((c for c in store.collections() if c.name == collection), None)
        if info is None:
            fail(f"RAG collection {collection!r} does not exist")
        held = counted(info.documents, "document")
        if paths:
            sources = _documents_under(store, collection, paths)
            question = f"Remove {len(sources)} of the {held} of {collection}?"
        else:
            sources = sorted(store.document_hashes(collection))
            question = f"Delete collection {collection} ({held}, {counted(info.chunks, 'chunk')})?"
        if not yes:
            typer.confirm(question, abort=True, err=True)
        renamed: dict[str, str] = {}
        if paths:
            for source in sources:
                renamed.update(store.remove_document(collection, source))
            renamed = {source: renamed[source] for source in renamed if source not in sources}
        else:
            store.drop_collection(collection)
        deleted = collection not in {c.name for c in store.collections()}
    if as_json:
        _print_json(
            {
                "collection": collection,
                "removed": sources,
                "renamed": renamed,
                "collection_deleted": deleted,
            }
        )
        return
    removed = counted(len(sources), "document")
    if not paths:
        typer.echo(f"deleted collection {collection} ({removed})")
        return
    typer.echo(f"{collection}: removed {removed} (files on disk untouched)")
    for source in sources:
        typer.echo(f"  {source}")
    _say_renamed(renamed, verbose=True)
    if deleted:
        _say_deleted(collection)


def _documents_under(store: SqliteChunkStore, collection: str, paths: list[Path]) -> list[str]:
    """The documents stored at or under `paths`; exits 2 naming a path that holds none."""
    from smallfirst.rag.ingest import documents_at

    known = store.document_hashes(collection)
    found: set[str] = set()
    for path in paths:
        here = documents_at(path, known)
        if not here:
            fail(f"no document of {collection} is at {path}")
        found.update(here)
    return sorted(found)


@app.command("eval")
def evaluate(
    corpus: Annotated[Path, typer.Option("--corpus", help="corpus.jsonl: {id, title, text}.")],
    queries: Annotated[Path, typer.Option("--queries", help="queries.jsonl: {id, text}.")],
    qrels: Annotated[Path, typer.Option("--qrels", help="qrels.tsv: query-id, corpus-id, score.")],
    method: Annotated[str, typer.Option("--method", "-m", help="bm25, vector, hybrid or all.")] = (
        "all"
    ),
    as_json: AsJson = False,
) -> None:
    """nDCG@10, Recall@100, MRR and query latency per method, on a temporary index."""
    from smallfirst.errors import SmallfirstError
    from smallfirst.rag.eval import evaluate_collection, load_beir

    if method not in (*METHOD_CHOICES, "all"):
        fail(f"--method must be one of bm25, vector, hybrid, all, not {method!r}")
    methods = list(METHOD_CHOICES) if method == "all" else [method]
    try:
        collection = load_beir(corpus, queries, qrels)
    except SmallfirstError as exc:
        fail(exc.message)
    for warning in collection.warnings:
        typer.echo(f"Warning: {warning}", err=True)

    def say(message: str) -> None:
        if not as_json:
            typer.echo(message, err=True)

    results = evaluate_collection(collection, methods, progress=say)  # type: ignore[arg-type]
    if as_json:
        # exactly {method: {metric: value}}: evaluation scripts read this shape (warnings
        # went to stderr)
        _print_json(
            {
                m: {k: round(v, 4) for k, v in r.items() if k != "n_queries"}
                for m, r in results.items()
            }
        )
        return
    typer.echo(f"{'method':8} {'nDCG@10':>8} {'R@100':>8} {'MRR':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for name, r in results.items():
        typer.echo(
            f"{name:8} {r['ndcg@10']:8.4f} {r['recall@100']:8.4f} {r['mrr']:8.4f} "
            f"{r['p50_ms']:8.2f} {r['p95_ms']:8.2f}"
        )
    scored = int(next(iter(results.values()))["n_queries"])
    typer.echo(f"({scored} {'query' if scored == 1 else 'queries'})")

"""Where smallfirst keeps files it can make again (converted and installed models), why a
folder it is given cannot be used, whether a file it holds open is still at its path, how
it makes the files only their user may read, and how it replaces a file in one step."""

from __future__ import annotations

import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

PARTIAL_PREFIX = ".partial-"


def cache_dir() -> Path:
    """`$SMALLFIRST_CACHE_DIR`, else `$XDG_CACHE_HOME/smallfirst`, else `~/.cache/smallfirst`."""
    explicit = os.environ.get("SMALLFIRST_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "smallfirst"


def create_private(path: Path) -> None:
    """Make the file at `path` readable by this user only, unless it is there already: what
    the gateway keeps (prompts, answers, documents) is not for the machine's other users,
    whatever the umask. SQLite gives the -wal, -shm and -journal files it makes beside a
    database the database's mode. Missing folders above it are made as `create_private_dir`
    makes them."""
    create_private_dir(path.parent)
    with suppress(FileExistsError):  # one already there keeps the mode its owner gave it
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def create_private_dir(path: Path) -> None:
    """Make the folder `path`, and each missing folder above it, usable by this user only
    (0700), as `Path.mkdir(parents=True, exist_ok=True)` would make it otherwise: under the
    usual umask a folder is 0755, and anyone may list the names of the files in it (a RAG
    store's folder, a document's name). A folder that is there already keeps its mode: it
    may be one its owner shares on purpose."""
    try:
        os.mkdir(path, 0o700)
    except FileNotFoundError:
        if path.parent == path:
            raise
        create_private_dir(path.parent)
        create_private_dir(path)
    except OSError:  # there already (made by another process too), or a file is there
        if not path.is_dir():
            raise


def create_own_private_dir(path: Path) -> None:
    """Make the folder `path` as `create_private_dir` does, in a folder everyone may write to
    (the temp dir): one there already is used only if it is no symlink, this user owns it
    and no other user may write to it (OSError otherwise). Anyone may make such a folder
    first, and what this user reads from it would be theirs."""
    create_private_dir(path)
    status = os.lstat(path)
    if stat.S_ISLNK(status.st_mode):
        raise PermissionError(f"{path} is a symlink, not a folder of this user's")
    if status.st_uid != os.geteuid():
        raise PermissionError(f"{path} belongs to another user (uid {status.st_uid})")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(status.st_mode)
        raise PermissionError(f"{path} may be written by other users (mode {mode:o})")


def broken_link_in(path: Path) -> str | None:
    """Why `path` can be neither made nor used: it, or a folder above it, is a symlink whose
    target does not exist (say a disk that is not mounted), where `mkdir` fails with
    "File exists". None when there is no such link."""
    for part in (path, *path.parents):
        if part.exists():  # every folder above it resolves too
            return None
        if part.is_symlink():
            name = "it" if part == path else str(part)
            return f"{name} is a symlink to {os.path.realpath(part)}, which does not exist"
    return None


def file_identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`, None if there is none: a connection keeps the
    file it opened, moved aside or deleted, while a new one is made at its path."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_dev, status.st_ino


def same_file(path: Path, other: Path) -> bool:
    """Whether both paths name one file that is there (an output given as its own input)."""
    identity = file_identity(path)
    return identity is not None and identity == file_identity(other)


@contextmanager
def exclusive_lock(lock_file: Path, on_wait: Callable[[], None]) -> Iterator[None]:
    """Held by one process at a time (others call `on_wait`, then wait their turn). The lock
    file stays: one removed while another run waits on it would let two runs in. It is its
    user's only, as the files it guards are: another user who could open it could hold the
    lock (`flock` needs no write access) and stop every run."""
    create_private(lock_file)
    with lock_file.open("a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock, also when the process is killed


@contextmanager
def replaced_in_one_step(target: Path, *, private: bool = False) -> Iterator[Path]:
    """A path beside `target` to write to; it replaces `target` in one step when the block
    ends without an error, and is removed otherwise. A command stopped (or failing) while it
    wrote left `target` half written, and a reader of `target` meanwhile read half of it.
    The name keeps `target`'s suffix, which writers such as numpy and matplotlib go by.
    `private`: the file, and the folders made for it, are this user's only. A file left
    beside `target` by a writer that was killed outright is removed here."""
    remove_partials_of_dead_writers(target)
    aside = target.with_name(f"{PARTIAL_PREFIX}{os.getpid()}-{target.name}")
    if private:
        create_private(aside)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield aside
        os.replace(aside, target)
    finally:
        aside.unlink(missing_ok=True)


def remove_partials_of_dead_writers(target: Path) -> None:
    """Remove the files `replaced_in_one_step` began for `target` in processes that no longer
    run: one killed outright (SIGKILL, power loss) could not remove its own, and each stayed
    for good, up to the size of `target`. One whose process runs, or may run (another
    user's), is kept."""
    try:
        names = os.listdir(target.parent)
    except FileNotFoundError:
        return
    for name in names:
        pid, _, rest = name.removeprefix(PARTIAL_PREFIX).partition("-")
        ours = name.startswith(PARTIAL_PREFIX) and pid.isdigit() and rest == target.name
        if ours and not _process_runs(int(pid)):
            (target.parent / name).unlink(missing_ok=True)


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True

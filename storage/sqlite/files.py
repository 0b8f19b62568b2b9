"""The database file itself, before and around SQLite: who may read it, whether it is ours,
and one-line reasons for a file that cannot be used.

The file holds every reporter's subscriptions and the audit log: a folder we create is 0700, the
database 0600 (SQLite gives its -wal, -shm and -journal files the database's own mode). A file
that is not a SQLite database is refused before SQLite sees it."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from pathlib import Path

from storage.errors import DatabaseUnavailable

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
# PRAGMA application_id ("NBOT"): marks a file as ours, so a database of another application
# that happens to sit at the configured path is recognised and left alone.
APPLICATION_ID = 0x4E424F54
# Tables every schema version has: how a database made before the mark existed is recognised.
OUR_TABLES = frozenset(
    {"feeds", "stories", "story_keys", "watchlists", "subscriptions", "deliveries"}
)
_SQLITE_HEADER = b"SQLite format 3\x00"


def describe_failure(path: str, exc: BaseException) -> str | None:
    """One line for an error that is about the database file rather than a bug in newsbot
    (another process holds the lock, the file is not SQLite or is damaged); None otherwise."""
    if isinstance(exc, DatabaseUnavailable):
        return str(exc)
    if not isinstance(exc, sqlite3.Error):
        return None
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF  # extended codes keep the primary low byte
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        reason = (
            f"it is locked by another process (SQLite: {exc}, after waiting "
            f"{BUSY_TIMEOUT_MS / 1000:g} s); stop whatever holds it (a backup, a sqlite3 "
            "shell, another program) and start again"
        )
    elif primary == sqlite3.SQLITE_NOTADB:
        reason = "it is not a SQLite database; refusing to touch it"
    elif primary == sqlite3.SQLITE_CORRUPT:
        reason = f"it is damaged or truncated ({exc}); restore it from a backup or move it aside"
    elif primary in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY):
        reason = f"{exc}; check that the folder exists and this user may write to it"
    elif primary in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR):
        reason = f"{exc}"
    else:
        return None
    return f"cannot open the database {path}: {reason}"


def ensure_private_folder(folder: Path) -> None:
    """Create the data folder 0700 if it is missing. A folder that exists was chosen by the
    operator, and its mode is theirs: the files we put in it are 0600 anyway."""
    if not folder.exists():
        # mode applies to the last component only; parents we create follow the umask.
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def prepare_file(path: Path) -> None:
    """Before SQLite sees the path: create a missing database 0600, and refuse an existing
    file that is not SQLite (so SQLite never opens it, let alone writes to it)."""
    ensure_private_folder(path.parent)
    try:
        # O_EXCL: if another process creates it first, it is treated as existing below.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        os.fchmod(fd, 0o600)  # the umask could have taken bits away, never add them: be exact
        os.close(fd)
        return
    try:
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise DatabaseUnavailable(
            f"cannot open the database {path}: {exc.strerror or exc}"
        ) from exc
    # An empty file is what SQLite itself calls an empty database.
    if header and header != _SQLITE_HEADER:
        raise DatabaseUnavailable(
            f"cannot open the database {path}: it is not a SQLite database; refusing to touch it"
        )


def warn_if_shared(path: Path) -> None:
    """A database an older newsbot created (or someone chmod-ed) keeps its mode: changing the
    permissions of an existing file is the operator's call, so we say it instead."""
    with contextlib.suppress(OSError):
        mode = path.stat().st_mode
        if stat.S_ISREG(mode) and mode & 0o077:
            log.warning(
                "the database %s can be read by other users (mode %s): it holds every "
                "subscription and the audit log; run chmod 600 on it and its -wal and -shm "
                "files",
                path,
                stat.filemode(mode),
            )

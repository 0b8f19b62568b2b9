"""Numbered plain-SQL migrations (`NNNN_name.sql` in a backend's migrations/ folder: SQLite's are
storage/sqlite/migrations/), tracked with PRAGMA user_version.

Each file runs in its own transaction together with the version bump, so a database is always at
exactly one schema version; a database made by an older version upgrades in place."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(backend: str = "sqlite") -> list[Migration]:
    """`backend`: the sub-package whose migrations/ folder holds the schema. Found from this
    package, so that reading the list does not import the backend (which imports this)."""
    folder = resources.files("storage") / backend / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


LATEST_VERSION = len(load_migrations())


def script_for(migration: Migration) -> str:
    # executescript() commits any open transaction first, then runs the text as is: BEGIN and
    # COMMIT inside the text make the migration and its version bump one atomic step.
    return f"BEGIN;\n{migration.sql}\nPRAGMA user_version = {migration.version};\nCOMMIT;\n"

"""A PostgreSQL server for the tests: the one NEWSBOT_TEST_PG names, else the machine's own
(started once if it is installed but not running), with a throwaway database per test session.

Where no server can be reached the PostgreSQL tests are skipped with a one-line reason, except
in CI (CI=true), where they must run: there they fail, loudly."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from storage.postgres import PostgresStorage, redact

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
# Every table the migrations make, emptied between tests (schema_version is kept).
TABLES = (
    "feeds",
    "stories",
    "story_keys",
    "story_sources",
    "watchlists",
    "subscriptions",
    "deliveries",
    "audit_log",
    "workers",
    "destination_claims",
    "role_holders",
    "handled_events",
    "websub_subscriptions",
    "story_sightings",
    "subscriber_settings",
    "story_feeds",
)

T = TypeVar("T")


def run_apart(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to the end on a loop of its own, in a thread: the session's set-up is
    reached from inside a test's running loop, where asyncio.run() is refused."""
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def server_url() -> str:
    return os.environ.get("NEWSBOT_TEST_PG") or DEFAULT_SERVER


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _ping(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    await conn.close()


def _reachable(url: str) -> str | None:
    """None when the server answers, else why not (one line)."""
    try:
        run_apart(lambda: _ping(url))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def _start_local_cluster() -> None:
    """Start the machine's own cluster if one is installed but down (Debian's pg_ctlcluster)."""
    if not shutil.which("pg_lsclusters") or not shutil.which("pg_ctlcluster"):
        return
    listed = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True)
    for line in listed.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "down":
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", fields[0], fields[1], "start"],
                capture_output=True,
            )


def unavailable(reason: str) -> None:
    message = f"no PostgreSQL server for the PostgreSQL tests: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: these tests must run)", pytrace=False)
    pytest.skip(message)


async def _create(server: str, name: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        # FORCE: a database left by a killed run may still have its workers' connections.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    store = await PostgresStorage.open(with_database(server, name), pool_size=1)
    await store.close()


async def _drop(server: str, name: str) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def throwaway_database(name: str | None = None) -> Iterator[str]:
    """The URL of a fresh, migrated database (`name`, by default one per test session),
    dropped, its connections forced off, when the generator is closed. Skips (fails with
    CI=true) without a PostgreSQL server."""
    server = server_url()
    reason = _reachable(server)
    if reason is not None:
        _start_local_cluster()
        reason = _reachable(server)
    if reason is not None:
        unavailable(f"{redact(server)}: {reason}")
    database = name or f"newsbot_test_{os.getpid()}"
    run_apart(lambda: _create(server, database))
    try:
        yield with_database(server, database)
    finally:
        run_apart(lambda: _drop(server, database))


async def open_clean(url: str, **cluster: Any) -> PostgresStorage:
    """A store on the session's database, emptied (ids start again at 1). `cluster`: lease
    times for PostgresStorage.open."""
    store = await PostgresStorage.open(url, pool_size=4, **cluster)
    await store._pool.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
    await store._join()  # its row in the workers table went with the rest
    return store

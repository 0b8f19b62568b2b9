"""Scale-out benchmark: 1, 2 and 3 `newsbot run` processes on one PostgreSQL database.

    .venv/bin/python -m bench scale [--quick]

Each run starts from nothing: a fresh database on the server $NEWSBOT_BENCH_PG names (else
$NEWSBOT_TEST_PG, else postgresql://postgres@127.0.0.1:5432/postgres), a fresh feed server
(bench/feedserver.py in a child process: the same deterministic feeds every run) and k workers,
each the real CLI (`python -m bot run --config ...`) with the same config: the feeds (interval
an hour) and the same watchlists (names from the corpus, as in the pipeline benchmark), each
posting to a few console channels (jsonl on each worker's stdout, into a file). What is
measured, for k = 1, 2, 3:

1. **First polls**: every feed's baseline (full bodies, parsed, 50 stories each) recorded
   (`feeds.baseline_done`); the rate between a quarter and three quarters of the feeds, once
   every worker has joined (a process still starting is no worker yet). CPU-bound (parsing).
2. **Steady polls**: every feed made due every second (`UPDATE feeds SET interval_s = 1`: what
   an edit in chat does, the workers are told), then the requests the feed server answered over
   a window: 304s and unchanged bodies, nothing to parse. More feeds than the workers manage a
   second, so this is their capacity, not what the feeds ask for.
3. **Cards**: the feeds back to an hour; a share of them gets 5 new stories each, and one poll
   of every feed is made due at once. Cards per second = cards marked sent / the span from the
   first of them to the last (`sent_at`, database clock); "change to last card" also counts the
   polls, parsing and matching before the first card.

The machine is shared by everything: the feed server, PostgreSQL and the workers. On 2 cores a
third worker can only add contention; the numbers say how far k processes go on this machine,
not on k machines (see docs/scale-out.md).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from bench import corpus
from bench.common import console_channel, feed_name, machine
from bench.feedserver import FeedServerProcess

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "newsbot_bench_scale"
WORKER_COUNTS = (1, 2, 3)
NEW_PER_CHANGE = 5  # bench.feedserver: each changed feed gains 5 stories


@dataclass(frozen=True)
class Sizes:
    feeds: int
    publishers: int
    watchlists: int
    channels: int
    fan_out: int  # channels each watchlist posts to
    window: float  # seconds over which steady polls are counted
    change: float  # share of the feeds that get new stories


FULL = Sizes(
    feeds=400, publishers=20, watchlists=1000, channels=500, fan_out=4, window=15.0, change=0.2
)
QUICK = Sizes(
    feeds=60, publishers=6, watchlists=200, channels=100, fan_out=4, window=5.0, change=0.5
)


@dataclass
class Result:
    workers: int
    feeds: int
    first_all_s: float  # start of the processes to every baseline recorded
    first_rate: float  # baselines recorded per second once every worker had joined
    steady_polls: int
    window: float
    cards: int
    change_to_last_s: float  # the change (database clock) to the last card marked sent
    send_span_s: float  # the first card of the change marked sent to the last
    stories: int
    errors: int  # feeds whose last poll failed, at the end

    @property
    def steady_per_s(self) -> float:
        return self.steady_polls / self.window

    @property
    def cards_per_s(self) -> float:
        """The outbox's pace: cards over the span in which they were sent."""
        return self.cards / self.send_span_s if self.send_span_s > 0 else 0.0

    @property
    def cards_end_to_end(self) -> float:
        return self.cards / self.change_to_last_s if self.change_to_last_s > 0 else 0.0


def server_url() -> str:
    return os.environ.get("NEWSBOT_BENCH_PG") or os.environ.get("NEWSBOT_TEST_PG") or DEFAULT_SERVER


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def recreate(server: str, name: str, *, drop_only: bool = False) -> None:
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def write_config(path: Path, sizes: Sizes, urls: list[str], publishers: list[int]) -> None:
    queries = corpus.make_queries(sizes.watchlists, seed=1)
    lines = [
        "[console]",
        'format = "jsonl"',
        "[alerts]",
        # Cards, not digests: a digest folds a channel's burst into one message.
        "burst_limit = 100",
        "[fetch]",
        'min_interval = "1s"',
        "[http]",
        "enabled = false",
    ]
    for index, url in enumerate(urls):
        name = feed_name(index, publishers[index])
        # Polled once (the first poll), then not again until the bench says so (see one_run).
        lines += ["[[feeds]]", f'name = "{name}"', f'url = "{url}"', 'interval = "1h"']
    for index, query in enumerate(queries):
        lines += [
            "[[watchlists]]",
            f'name = "watch-{index:04d}"',
            f"query = '{query}'" if "'" not in query else f'query = "{query}"',
            "channels = ["
            + ", ".join(
                f'"{console_channel(index * sizes.fan_out + k, sizes.channels)}"'
                for k in range(sizes.fan_out)
            )
            + "]",
        ]
    path.write_text("\n".join(lines) + "\n", "utf-8")


class Workers:
    def __init__(self, count: int, config: Path, url: str, folder: Path) -> None:
        self.count = count
        self.config = config
        self.env = {
            **{
                k: v
                for k, v in os.environ.items()
                if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
            },
            "NEWSBOT_DATABASE_URL": url,
        }
        self.folder = folder
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for index in range(self.count):
            out = open(self.folder / f"worker{index}.jsonl", "wb")  # noqa: SIM115 - the child's
            err = open(self.folder / f"worker{index}.log", "wb")  # noqa: SIM115 - the child's
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bot", "run", "--config", str(self.config)],
                    cwd=REPO,
                    env=self.env,
                    stdout=out,
                    stderr=err,
                )
            )
            out.close()
            err.close()

    def check(self) -> None:
        for index, proc in enumerate(self.procs):
            if proc.poll() is not None:
                log = (self.folder / f"worker{index}.log").read_text(errors="replace")
                raise RuntimeError(f"worker {index} exited ({proc.returncode}):\n{log[-3000:]}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


async def _until(
    db: asyncpg.Connection,
    workers: Workers,
    query: str,
    want: Callable[[int], bool],
    limit: float,
    *args: object,
) -> None:
    deadline = time.monotonic() + limit
    while True:
        value = await db.fetchval(query, *args)
        if want(value):
            return
        workers.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up after {limit:g} s waiting on {query!r} (now {value})")
        await asyncio.sleep(0.1)


async def one_run(count: int, sizes: Sizes, server: str) -> Result:
    await recreate(server, DATABASE)
    url = with_database(server, DATABASE)
    feeds = FeedServerProcess(sizes.feeds, sizes.publishers).start()
    db = await asyncpg.connect(url)
    try:
        urls = feeds.urls()
        publishers: list[int] = feeds.info()["publishers"]  # type: ignore[assignment]
        with tempfile.TemporaryDirectory(prefix="newsbot-bench-scale-") as tmp:
            folder = Path(tmp)
            config = folder / "bench.toml"
            write_config(config, sizes, urls, publishers)
            workers = Workers(count, config, url, folder)
            try:
                # The first worker migrates the empty database; the others wait on its lock.
                started = time.monotonic()
                workers.start()
                await _until(
                    db,
                    workers,
                    "SELECT count(*) FROM pg_tables WHERE tablename = 'workers'",
                    lambda n: n == 1,
                    60,
                )
                # Baselines recorded over time: (seconds since start, all workers joined, done)
                series: list[tuple[float, bool, int]] = []
                while not series or series[-1][2] < sizes.feeds:
                    joined = await db.fetchval("SELECT count(*) FROM workers")
                    done = await db.fetchval("SELECT count(*) FROM feeds WHERE baseline_done")
                    series.append((time.monotonic() - started, joined >= count, done))
                    workers.check()
                    if series[-1][0] > 600:
                        raise RuntimeError(f"first polls unfinished after 600 s: {done}")
                    await asyncio.sleep(0.1)
                first_all = series[-1][0]
                first_rate = baseline_rate(series, sizes.feeds)

                # Every feed due every second from now on (what `/feed` edits in chat do: the
                # row changes, the workers are told), a few seconds to settle, then counted.
                await db.execute("UPDATE feeds SET interval_s = 1, next_poll_at = now()")
                await asyncio.sleep(3)
                feeds.log(clear=True)
                await asyncio.sleep(sizes.window)
                steady = len(feeds.log(clear=True))
                workers.check()

                # Back to an hour, the polls in flight let to finish; then the change, and one
                # poll of every feed due at once: it finds the new stories in the changed ones.
                await db.execute(
                    "UPDATE feeds SET interval_s = 3600, next_poll_at = now() + interval '1h'"
                )
                await asyncio.sleep(3)
                await db.execute("UPDATE feeds SET next_poll_at = now() + interval '1h'")
                feeds.change(sizes.change)
                changed_at = await db.fetchval("SELECT now()")
                await db.execute("UPDATE feeds SET next_poll_at = now()")
                # Done when (nearly) every new story is in (agency copy carried by two
                # changed feeds is one story), and then neither the stories nor the cards
                # moved for a second with nothing pending.
                want = round(sizes.feeds * sizes.change) * NEW_PER_CHANGE
                await _until(
                    db,
                    workers,
                    "SELECT count(*) FROM stories WHERE first_seen_at >= $1",
                    lambda n: n >= 0.9 * want,
                    300,
                    changed_at,
                )
                last: tuple[int, int] | None = None
                while True:
                    now = (
                        await db.fetchval(
                            "SELECT count(*) FROM stories WHERE first_seen_at >= $1", changed_at
                        ),
                        await db.fetchval("SELECT count(*) FROM deliveries"),
                    )
                    pending = await db.fetchval(
                        "SELECT count(*) FROM deliveries WHERE status = 'pending'"
                    )
                    if pending == 0 and now == last:
                        break
                    last = now
                    workers.check()
                    await asyncio.sleep(1.0)
                row = await db.fetchrow(
                    "SELECT count(*) AS cards, min(sent_at) AS first, max(sent_at) AS last "
                    "FROM deliveries "
                    "WHERE status = 'sent' AND created_at >= $1",
                    changed_at,
                )
                stories = await db.fetchval(
                    "SELECT count(*) FROM stories WHERE first_seen_at >= $1", changed_at
                )
                errors = await db.fetchval(
                    "SELECT count(*) FROM feeds WHERE last_error_at > last_success_at"
                )
                took = (row["last"] - changed_at).total_seconds() if row["last"] else 0.0
                span = (row["last"] - row["first"]).total_seconds() if row["last"] else 0.0
            finally:
                workers.stop()
    finally:
        await db.close()
        feeds.stop()
        await recreate(server, DATABASE, drop_only=True)
    return Result(
        workers=count,
        feeds=sizes.feeds,
        first_all_s=first_all,
        first_rate=first_rate,
        steady_polls=steady,
        window=sizes.window,
        cards=row["cards"],
        change_to_last_s=took,
        send_span_s=span,
        stories=stories,
        errors=errors,
    )


def baseline_rate(series: list[tuple[float, bool, int]], feeds: int) -> float:
    """Baselines per second between a quarter and three quarters of the feeds, counted from
    when every worker had joined (a process that is still starting is not yet a worker)."""
    joined = [(t, done) for t, all_in, done in series if all_in]
    middle = [(t, done) for t, done in joined if feeds // 4 <= done <= 3 * feeds // 4]
    if len(middle) < 2:
        middle = joined or [(t, done) for t, _, done in series]
    (t1, d1), (t2, d2) = middle[0], middle[-1]
    return (d2 - d1) / (t2 - t1) if t2 > t1 else 0.0


def table(results: list[Result]) -> str:
    base = results[0]

    def versus(value: float, one: float) -> str:
        return f"{value / one:.2f}x" if one > 0 else "-"

    lines = [
        "| workers | first polls/s (parsing) | steady polls/s (304 / unchanged) | cards "
        "| change to last card | cards/s (outbox) | vs 1 worker: first / steady / cards |",
        "|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.workers} | {r.first_rate:.1f} | {r.steady_per_s:.0f} | {r.cards:,} | "
            f"{r.change_to_last_s:.1f} s | {r.cards_per_s:.0f} | "
            f"{versus(r.first_rate, base.first_rate)} / "
            f"{versus(r.steady_per_s, base.steady_per_s)} / "
            f"{versus(r.cards_per_s, base.cards_per_s)} |"
        )
    return "\n".join(lines)


async def _run(sizes: Sizes) -> list[Result]:
    server = server_url()
    results = []
    for count in WORKER_COUNTS:
        results.append(await one_run(count, sizes, server))
    return results


async def _reachable(server: str) -> str | None:
    try:
        conn = await asyncpg.connect(server, timeout=5)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    await conn.close()
    return None


def run(quick: bool = False) -> str:
    sizes = QUICK if quick else FULL
    started = time.perf_counter()
    shown = server_url().rsplit("@", 1)[-1]
    reason = asyncio.run(_reachable(server_url()))
    if reason is not None:
        return f"(skipped: no PostgreSQL server at {shown}: {reason}; set NEWSBOT_BENCH_PG)"
    results = asyncio.run(_run(sizes))
    changed = round(sizes.feeds * sizes.change)
    out = [
        f"Machine: {machine()}.",
        f"PostgreSQL: {shown}, on the same machine.",
        f"Feeds: {sizes.feeds} (50 items each, {sizes.publishers} publisher ports); "
        f"{sizes.watchlists:,} watchlists (names from the corpus) over "
        f"{sizes.channels} console channels; the change: {changed} feeds x {NEW_PER_CHANGE} "
        "new stories.",
        "",
        table(results),
        "",
        "First polls/s: feeds whose baseline (50 stories, parsed) was recorded per second, "
        "between a quarter and three quarters of them, once every worker had joined "
        "(every feed's first poll done after "
        + ", ".join(f"{r.first_all_s:.0f} s" for r in results)
        + f" from the processes' start). Steady polls over {sizes.window:g} s, every feed "
        f"due every second (the most asked: {sizes.feeds} a second). Cards: "
        + ", ".join(f"{r.stories} new stories" for r in results[:1])
        + f", each watchlist posting to {sizes.fan_out} channels; cards/s over the span from "
        "the change's first card marked sent to its last; change to last card from the "
        "feed server's change (database clock). Feeds failing at the end: "
        + ", ".join(f"{r.workers} worker(s): {r.errors}" for r in results)
        + f". Whole run: {time.perf_counter() - started:,.0f} s.",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv[1:]))

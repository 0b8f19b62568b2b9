"""A real NewsBot wired for measurement: settings built like a deployment's, jsonl cards into a
stream that stamps each line, the delivery worker running as a task (as `newsbot run` runs it),
and a poll cycle timed in wall and CPU time with the event loop's lag alongside."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.common import LagMonitor, LineClock
from bot.app import NewsBot
from config.settings import Settings, settings_from_dict


def bot_settings(
    db_path: str,
    feeds: Sequence[tuple[str, str]],
    watchlists: Sequence[tuple[str, str, Sequence[str]]] = (),
) -> Settings:
    raw = {
        "storage": {"path": db_path},
        "console": {"format": "jsonl"},
        "http": {"enabled": False},
        # Every other [fetch] setting is the shipped default (concurrency 32, 4 per host,
        # 20 s timeout): the benchmark measures the bot as deployed.
        "fetch": {"min_interval": "1s", "default_interval": "2m"},
        "feeds": [{"name": name, "url": url, "interval": "2m"} for name, url in feeds],
        "watchlists": [
            {"name": name, "query": query, "channels": list(channels)}
            for name, query, channels in watchlists
        ],
    }
    return settings_from_dict(raw, {}, source="bench")


@dataclass
class Cycle:
    name: str
    wall: float
    cpu: float
    lag: list[float]
    statuses: Counter[str]
    new: int
    updated: int
    alerts: int
    errors: list[str] = field(default_factory=list)


class Harness:
    def __init__(self, settings: Settings, *, keep_lines: bool = True) -> None:
        """`keep_lines`: keep every console line written (the cards' timings), or count them."""
        self.out = LineClock(keep=keep_lines)
        self.bot = NewsBot(settings, stdout=self.out)
        self.monitor = LagMonitor()
        self._worker: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        await self.bot.open()
        assert self.bot.worker is not None
        # As in NewsBot.run_forever: the worker is a task woken by the pipeline as soon as a
        # poll writes deliveries. run_once alone would hold every card until the whole cycle
        # is over (it drains the outbox at the end), which is not how the bot runs.
        self._worker = asyncio.create_task(self.bot.worker.run_forever(), name="delivery-worker")
        self.monitor.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.monitor.stop()
        assert self.bot.worker is not None
        await self.bot.worker.stop()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self.bot.close()

    async def settle(self, patience: float = 30.0) -> None:
        """Wait until the outbox holds nothing pending (the worker task has sent it all)."""
        assert self.bot.storage is not None
        deadline = time.perf_counter() + patience
        while time.perf_counter() < deadline:
            if not (await self.bot.storage.delivery_counts()).get("pending"):
                return
            await asyncio.sleep(0.01)

    async def scheduled_polls(self, names: Sequence[str], gap: float = 0.2) -> list[float]:
        """Poll these feeds one at a time as the scheduler does (NewsBot._scheduled_poll is what
        APScheduler calls for a feed whose interval is up), letting the outbox drain in between.
        Returns the event loop's lag meanwhile."""
        assert self.bot.storage is not None
        by_name = {f.name: f for f in await self.bot.storage.list_feeds()}
        await asyncio.sleep(self.monitor.interval * 2)
        self.monitor.take()
        since = time.perf_counter()
        for name in names:
            await self.bot._scheduled_poll(by_name[name].id)
            await self.settle()
            await asyncio.sleep(gap)
        return self.monitor.take(since=since)

    async def cycle(self, name: str) -> Cycle:
        # Let the sleeper wake first: it may have been stalled by the (blocking) naive loop.
        await asyncio.sleep(self.monitor.interval * 2)
        self.monitor.take()
        wall, cpu = time.perf_counter(), time.process_time()
        reports = await self.bot.run_once()
        lag = self.monitor.take(since=wall)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return Cycle(
            name,
            wall,
            cpu,
            lag,
            Counter(r.status for r in reports),
            sum(r.new for r in reports),
            sum(r.updated for r in reports),
            sum(r.alerts for r in reports),
            [f"{r.feed}: {r.error}" for r in reports if r.status == "error"],
        )

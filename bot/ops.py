"""Operations endpoint: /healthz for the container's HEALTHCHECK and /metrics for Prometheus.

prometheus_client writes the exposition format and histograms correctly; a registry per bot
keeps tests (several bots in one process) apart. Labels carry feed names only, never tokens."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import datetime

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from bot.core.models import Delivery, StoredStory
from bot.core.pipeline import PollReport

log = logging.getLogger(__name__)


# One chat connection at scrape time: platform, connected, reconnects, seconds disconnected.
ChatRow = tuple[str, bool, int, float]


class _ChatCollector(Collector):
    """Read at each scrape from the connections themselves, so /metrics is never stale."""

    def __init__(self, rows: Callable[[], Iterable[ChatRow]]) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily(
            "newsbot_chat_connected", "1 while the chat connection is up", labels=["platform"]
        )
        reconnects = CounterMetricFamily(
            "newsbot_chat_reconnects",
            "Times the chat connection came back after being up",
            labels=["platform"],
        )
        down = CounterMetricFamily(
            "newsbot_chat_disconnected_seconds",
            "Time the chat connection has been down since the start, the current outage included",
            labels=["platform"],
        )
        for platform, up, count, seconds in self.rows():
            connected.add_metric([platform], 1.0 if up else 0.0)
            reconnects.add_metric([platform], count)
            down.add_metric([platform], seconds)
        yield from (connected, reconnects, down)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "newsbot_polls_total", "Feed polls by outcome", ["feed", "status"], registry=r
        )
        self.fetch_errors = Counter(
            "newsbot_fetch_errors_total", "Failed polls", ["feed"], registry=r
        )
        self.stories = Counter("newsbot_stories_total", "New stories recorded", registry=r)
        self.matches = Counter("newsbot_matches_total", "Cards owed to destinations", registry=r)
        self.sent = Counter("newsbot_deliveries_sent_total", "Cards posted", registry=r)
        self.failed = Counter(
            "newsbot_deliveries_failed_total", "Cards that could not be posted", registry=r
        )
        self.pending = Gauge(
            "newsbot_deliveries_pending", "Cards waiting in the outbox", registry=r
        )
        self.from_published = Histogram(
            "newsbot_alert_delay_from_published_seconds",
            "From the story's publication time to its card being posted",
            buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
            registry=r,
        )
        self.from_first_seen = Histogram(
            "newsbot_alert_delay_from_first_seen_seconds",
            "From the story's first sighting in a feed to its card being posted",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800),
            registry=r,
        )

    def watch_chat(self, rows: Callable[[], Iterable[ChatRow]]) -> None:
        """Per platform: connected, reconnects and time disconnected (`rows` is read at scrape)."""
        self.registry.register(_ChatCollector(rows))

    def poll(self, report: PollReport) -> None:
        self.polls.labels(report.feed, report.status).inc()
        if report.status == "error":
            self.fetch_errors.labels(report.feed).inc()
        self.stories.inc(report.new)
        self.matches.inc(report.alerts)

    def delivered(self, delivery: Delivery, story: StoredStory, at: datetime) -> None:
        self.sent.inc()
        if story.story.published is not None and story.story.published <= at:
            self.from_published.observe((at - story.story.published).total_seconds())
        self.from_first_seen.observe(max(0.0, (at - story.first_seen).total_seconds()))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class OpsServer:
    def __init__(
        self,
        metrics: Metrics,
        health: Callable[[], dict[str, object]],
        refresh: Callable[[], Awaitable[None]],
    ) -> None:
        self.metrics = metrics
        self.health = health
        self.refresh = refresh
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self, host: str, port: int) -> bool:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            # Health reporting is a convenience; a taken port must not stop the alerts.
            log.error("cannot serve /healthz and /metrics on %s:%d: %s", host, port, exc.strerror)
            await self._runner.cleanup()
            self._runner = None
            return False
        server = site._server
        self.port = server.sockets[0].getsockname()[1] if server and server.sockets else port  # type: ignore[union-attr]
        log.info("health and metrics on http://%s:%d/healthz and /metrics", host, self.port)
        return True

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        state = self.health()
        return web.json_response(state, status=200 if state.get("ok") else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        await self.refresh()
        return web.Response(
            body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

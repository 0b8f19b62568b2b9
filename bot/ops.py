"""Operations: the notices the desk's ops channels get (OpsNotices), /healthz for the
container's HEALTHCHECK and /metrics for Prometheus (the same server carries the WebSub
callback, bot.feeds.websub, when `[http] public_url` is set).

prometheus_client writes the exposition format and histograms correctly; a registry per bot
keeps tests (several bots in one process) apart. Labels carry feed names only, never tokens."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from bot.chat.link import Link
from bot.core.latency import delay_from_published
from bot.core.models import Delivery, FeedState, StoredStory, platform_of
from bot.core.pipeline import PollReport, PollStatus
from bot.core.ports import Sender
from bot.core.routing import QueryKey, SkippedQuery

log = logging.getLogger(__name__)


class OpsNotices:
    """What the ops channels are told, each thing once: a feed that has failed `failing_after`
    polls in a row (and, only then, its recovery); a destination that refuses cards (again only
    after a card has reached it since); a stored query the matcher had to leave out (once per
    query text, for as long as the bot runs).

    A notice goes to every ops channel through that platform's sender. With no ops channel it
    is logged instead ("ops notice: ..."), and so is one whose platform has no connection or
    whose post failed: a notice never raises and never stops what reported it."""

    def __init__(
        self, channels: Sequence[str], senders: Mapping[str, Sender], *, failing_after: int
    ) -> None:
        self.channels = tuple(channels)
        self.senders = senders
        self.failing_after = failing_after
        self._refusing: set[str] = set()  # destinations already reported as refusing cards
        self._threads_dropped: set[int] = set()  # cards whose thread reply was reported lost
        self._skipped: set[tuple[QueryKey, str]] = set()  # (whose query, its text)

    async def notify(self, text: str) -> None:
        if not self.channels:
            log.warning("ops notice: %s", text)
            return
        for channel in self.channels:
            sender = self.senders.get(platform_of(channel))
            if sender is None:
                log.warning("ops notice (no %s connection): %s", platform_of(channel), text)
                continue
            result = await sender.notify(channel, text)
            if not result.ok:
                log.warning("could not post ops notice to %s: %s", channel, result.error)

    async def feed_health(self, feed: FeedState, report: PollReport, failures: int) -> None:
        """The pipeline's word on a poll (`failures`: in a row, this one included; `feed` as it
        was before the poll). Said on the poll that reaches the threshold, not on every one
        after it; a recovery only of a feed that was announced as failing."""
        if report.status == PollStatus.ERROR and failures == self.failing_after:
            await self.notify(
                f"Feed {feed.name!r} is failing: {report.error} ({failures} polls in a row). "
                "It keeps being retried with backoff."
            )
        elif report.status == PollStatus.RECOVERED and feed.failures >= self.failing_after:
            await self.notify(f"Feed {feed.name!r} recovered after {feed.failures} failed polls.")

    async def delivery_failed(self, delivery: Delivery, error: str) -> None:
        """A card marked failed for good (no permission, channel gone, DMs closed)."""
        if delivery.target in self._refusing:
            return
        self._refusing.add(delivery.target)
        await self.notify(
            f"Cannot deliver to {delivery.target}: {error}. Cards for it are marked failed; "
            "fix the permission or the watchlist's channel."
        )

    async def thread_reply_dropped(self, delivery: Delivery, error: str) -> None:
        """An update that could not go under its card (the card was deleted, threads are not
        allowed there). Told once per card: the update cap bounds the attempts anyway, and a
        deleted card must not become a stream of notices."""
        if delivery.id in self._threads_dropped:
            return
        self._threads_dropped.add(delivery.id)
        await self.notify(
            f"An update of a card in {delivery.target} was not posted in its thread: {error}. "
            "Nothing was posted in the channel instead (this is said once per card)."
        )

    def delivered(self, delivery: Delivery) -> None:
        # A destination that works again is reported again the next time it fails.
        self._refusing.discard(delivery.target)

    async def queries_skipped(self, skipped: Iterable[SkippedQuery]) -> None:
        """The queries a freshly compiled book left out; each is told once."""
        for item in skipped:
            if (item.key, item.query) in self._skipped:
                continue
            self._skipped.add((item.key, item.query))
            await self.notify(
                f"The {item.what} was skipped and alerts nobody: {item.reason}. "
                f"Query: {item.query[:200]}. Every other watchlist and subscription still "
                "alerts; edit or remove this one."
            )


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


@dataclass(frozen=True, slots=True)
class ClusterFigures:
    """This worker among those sharing its database, as /metrics shows it."""

    workers_alive: int
    feed_leases: int  # held by this worker
    destination_claims: int  # held by this worker
    roles: Mapping[str, bool]  # each unique role: held by this worker or not
    takeovers: int  # leases and claims this worker took from a lapsed worker
    leases_lost: int  # polls whose write was refused: the feed had moved to another worker


class _ClusterCollector(Collector):
    def __init__(self, figures: Callable[[], ClusterFigures]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        now = self.figures()
        yield GaugeMetricFamily(
            "newsbot_workers_alive",
            "Workers on this database whose process runs (its session lock is held)",
            now.workers_alive,
        )
        yield GaugeMetricFamily(
            "newsbot_feed_leases_held", "Feed polls this worker holds a lease on", now.feed_leases
        )
        yield GaugeMetricFamily(
            "newsbot_destination_claims_held",
            "Destinations whose cards this worker sends",
            now.destination_claims,
        )
        roles = GaugeMetricFamily(
            "newsbot_role_held", "1 while this worker holds the unique role", labels=["role"]
        )
        for role, held in sorted(now.roles.items()):
            roles.add_metric([role], 1.0 if held else 0.0)
        yield roles
        yield CounterMetricFamily(
            "newsbot_lease_takeovers",
            "Leases and claims this worker took over from a worker that let them lapse",
            now.takeovers,
        )
        yield CounterMetricFamily(
            "newsbot_feed_leases_lost",
            "Polls whose write was refused because the feed had moved to another worker",
            now.leases_lost,
        )


_PUBLISHED_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
_FIRST_SEEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800)


class Metrics:
    """Per-feed series are labelled with the feed's name. Feeds are few and set by admins,
    but a feed removed (or renamed in the config file) must not keep its series for as long as
    the process runs: `keep_feeds`, called at every scrape with the active feeds, drops the
    series of the others (a feed that comes back starts its counts afresh, which Prometheus
    reads as a counter reset)."""

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
            "From the story's publication time (when credible) to its card being posted",
            buckets=_PUBLISHED_BUCKETS,
            registry=r,
        )
        self.from_first_seen = Histogram(
            "newsbot_alert_delay_from_first_seen_seconds",
            "From the story's first sighting in a feed to its card being posted",
            buckets=_FIRST_SEEN_BUCKETS,
            registry=r,
        )
        # The same two per feed (the feed that saw the story first: the card's source).
        self.feed_from_published = Histogram(
            "newsbot_feed_alert_delay_from_published_seconds",
            "From a credible publication time to the card, by the story's first feed",
            ["feed"],
            buckets=_PUBLISHED_BUCKETS,
            registry=r,
        )
        self.feed_from_first_seen = Histogram(
            "newsbot_feed_alert_delay_from_first_seen_seconds",
            "From the story's first sighting to its card, by the feed that saw it",
            ["feed"],
            buckets=_FIRST_SEEN_BUCKETS,
            registry=r,
        )
        self.first_source = Counter(
            "newsbot_first_source_total",
            "Stories carried by several feeds, by the feed that had them first",
            ["feed"],
            registry=r,
        )
        self.first_source_lead = Histogram(
            "newsbot_first_source_lead_seconds",
            "How long the first feed had a shared story before the next feed",
            ["feed"],
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400),
            registry=r,
        )
        self._feeds: set[str] = set()  # the feed labels that have a series

    def watch_chat(self, rows: Callable[[], Iterable[ChatRow]]) -> None:
        """Per platform: connected, reconnects and time disconnected (`rows` is read at scrape)."""
        self.registry.register(_ChatCollector(rows))

    def watch_cluster(self, figures: Callable[[], ClusterFigures]) -> None:
        """Workers sharing the database (read at scrape; see ClusterFigures)."""
        self.registry.register(_ClusterCollector(figures))

    def poll(self, report: PollReport) -> None:
        self._feeds.add(report.feed)
        self.polls.labels(report.feed, report.status).inc()
        if report.status == PollStatus.ERROR:
            self.fetch_errors.labels(report.feed).inc()
        self.stories.inc(report.new)
        self.matches.inc(report.alerts)
        for lead in report.leads:
            self._feeds.add(lead.first)
            self.first_source.labels(lead.first).inc()
            self.first_source_lead.labels(lead.first).observe(lead.seconds)

    def pushed(self, report: PollReport) -> None:
        """Stories a WebSub hub pushed (counted like a poll's, without a poll)."""
        self.stories.inc(report.new)
        self.matches.inc(report.alerts)

    def delivered(self, delivery: Delivery, story: StoredStory, at: datetime) -> None:
        """A card was posted: its delays, overall and for the story's first feed. A publish
        time that cannot be believed (bot.core.latency.credible_published) is left out."""
        self.sent.inc()
        feed = story.story.feed
        self._feeds.add(feed)
        published = delay_from_published(
            story.story.published, story.first_seen, at, stamped=story.published_stamped
        )
        if published is not None:
            self.from_published.observe(published)
            self.feed_from_published.labels(feed).observe(published)
        seen = max(0.0, (at - story.first_seen).total_seconds())
        self.from_first_seen.observe(seen)
        self.feed_from_first_seen.labels(feed).observe(seen)

    def keep_feeds(self, names: Iterable[str]) -> None:
        """Drop the per-feed series of every feed not among `names` (the active feeds)."""
        keep = set(names)
        for name in self._feeds - keep:
            for metric in (
                self.feed_from_published,
                self.feed_from_first_seen,
                self.first_source,
                self.first_source_lead,
                self.fetch_errors,
            ):
                _remove(metric, name)
            for status in PollStatus:
                _remove(self.polls, name, status.value)
        self._feeds &= keep

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _remove(metric: Counter | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):  # never observed with these labels
        metric.remove(*labels)


def health_report(
    scheduler_running: bool,
    chat: Mapping[str, tuple[bool, Link]],
    last_poll_at: datetime | None,
) -> dict[str, object]:
    """What /healthz answers: ok while the scheduler runs and every chat connection (`chat`:
    by platform, whether it is connected and its link) is up or on standby (another worker of
    the database holds it); otherwise each reason."""
    problems = []
    if not scheduler_running:
        problems.append("the scheduler is not running")
    problems += [
        f"{name} is disconnected ({link.reason or 'no connection'})"
        for name, (up, link) in chat.items()
        if not up and not link.standing_by
    ]
    return {
        "ok": not problems,
        "reason": "; ".join(problems) or None,
        "scheduler": scheduler_running,
        "connections": {name: up for name, (up, _) in chat.items()},
        "chat": {
            name: {
                "connected": up,
                "standby": link.standing_by,
                "reason": None if up else link.reason,
                "reconnects": link.reconnects,
                "disconnected_seconds": round(link.disconnected_seconds(), 3),
            }
            for name, (up, link) in chat.items()
        },
        "last_poll_at": last_poll_at.isoformat() if last_poll_at else None,
    }


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
        self._mounted: list[Callable[[web.Application], None]] = []

    def mount(self, routes: Callable[[web.Application], None]) -> None:
        """More routes on the same server (the WebSub callback); before `start`."""
        self._mounted.append(routes)

    async def start(self, host: str, port: int) -> bool:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        for routes in self._mounted:
            routes(app)
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
        sockets = getattr(site._server, "sockets", None)  # an asyncio.Server's, when it has one
        self.port = sockets[0].getsockname()[1] if sockets else port
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

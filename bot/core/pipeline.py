"""poll -> parse -> identify -> match -> pending deliveries, each poll all or nothing.

`Pipeline` does the I/O around the pure planner (bot.core.plan): fetch and parse through the
FeedReader, read what the store knows of the stories' keys, plan, write the plan. The polls
waiting for the store at the same moment are planned one after the other in one ingest
session (one commit; see IngestStore.ingest_session). Poll outcomes are `PollStatus` values."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from bot.core.identity import (
    PERMANENT_KINDS,
    DocumentIdentity,
    identify,
    remember_print,
    strong_keys,
)
from bot.core.latency import Lead, SourceSighting
from bot.core.models import FeedState, StoredStory, Story
from bot.core.plan import (  # re-exported: the planner's names were long imported from here
    MAX_VERIFIED,
    IngestPlan,
    IngestSettings,
    NewStory,
    PlannedDelivery,
    PlannedKey,
    Revision,
    _Sighting,
    check_candidates,
    fuzzy_candidates,
    is_fresh,
    key_index,
    listed_stories,
    plan_ingest,
    ranked_candidates,
)
from bot.core.polling import PollingPolicy, PollSchedule, PollSeen, schedule_after, skipped
from bot.core.ports import (
    FeedError,
    FeedReader,
    FetchResult,
    FetchStatus,
    IngestSession,
    IngestStore,
    KeyHit,
    PollOutcome,
)
from bot.core.routing import QueryBook

__all__ = [
    "MAX_VERIFIED",
    "BackoffPolicy",
    "IngestPlan",
    "IngestSettings",
    "NewStory",
    "Pipeline",
    "PlannedDelivery",
    "PlannedKey",
    "PollReport",
    "PollStatus",
    "Revision",
    "_Sighting",
    "fuzzy_candidates",
    "is_fresh",
    "plan_ingest",
]

log = logging.getLogger(__name__)

# An ingest session takes the polls waiting for the store, up to this many, for up to this
# long: chat commands and the delivery worker wait for the store while it runs.
GROUP_POLLS = 32
GROUP_SECONDS = 0.25
# Parsed polls that may wait for the store while others fetch and parse: enough to fill two
# ingest sessions, few enough that waiting documents never hold much memory.
INGEST_BACKLOG = 2 * GROUP_POLLS


# --- the orchestrator -----------------------------------------------------------------------------


class PollStatus(StrEnum):
    """How a poll of one feed ended. Strings (they are log words and metric labels)."""

    NEW = "new"  # the document was read and its stories ingested (new ones or not)
    NOT_MODIFIED = "not_modified"  # HTTP 304
    UNCHANGED = "unchanged"  # 200 with the same bytes as last time: not parsed
    ERROR = "error"  # fetch, parse or save failed; the feed backs off
    SKIPPED = "skipped"  # still backing off from earlier failures, or in its skipHours/Days
    RECOVERED = "recovered"  # told to the health hook only: the first success after failures


@dataclass(frozen=True, slots=True)
class PollReport:
    feed: str
    status: PollStatus
    stories: int = 0
    new: int = 0
    updated: int = 0
    alerts: int = 0
    error: str | None = None
    warning: str | None = None
    # The feed's polling after a successful poll (bot.core.polling): the scheduler re-times
    # its job when the interval moved.
    schedule: PollSchedule | None = None
    # Stories this poll made shared: which feed had each first, and by how much.
    leads: tuple[Lead, ...] = ()


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    max_delay: timedelta = timedelta(hours=1)

    def next_retry(
        self, feed: FeedState, failures: int, now: datetime, retry_after: float | None
    ) -> datetime:
        # Double the wait with every consecutive failure: a dead feed is tried less and less
        # often but never given up on; a server's Retry-After wins when it asks for longer.
        # From the interval the feed is polled at now (adaptive: bot.core.polling).
        interval = feed.poll_interval
        delay: timedelta = interval * 2 ** min(failures - 1, 16)
        delay = min(max(delay, interval), self.max_delay)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=min(retry_after, 86400)))
        return now + delay


class Pipeline:
    def __init__(
        self,
        store: IngestStore,
        reader: FeedReader,
        queries: Callable[[], Awaitable[QueryBook]],
        *,
        settings: IngestSettings | None = None,
        clock: Callable[[], datetime],
        on_alerts: Callable[[], None] = lambda: None,
        backoff: BackoffPolicy | None = None,
        on_feed_health: Callable[[FeedState, PollReport, int], Awaitable[None]] | None = None,
        concurrency: int = 32,
        polling: PollingPolicy | None = None,
        on_read: Callable[[FeedState, FetchResult], Awaitable[None]] | None = None,
        is_pushed: Callable[[FeedState], Awaitable[bool]] | None = None,
    ) -> None:
        """`concurrency`: polls fetching or parsing at once ([fetch] concurrency)."""
        self.store = store
        self.reader = reader
        self.queries = queries
        self.settings = settings or IngestSettings()
        self.clock = clock
        self.on_alerts = on_alerts
        self.backoff = backoff or BackoffPolicy()
        self.on_feed_health = on_feed_health
        self.polling = polling or PollingPolicy()
        # Told of each fetched document once its stories are in (WebSub discovery reads its
        # hub there); it must not raise.
        self.on_read = on_read
        # Whether a WebSub hub pushes the feed now (its polls then wait the ceiling).
        self.is_pushed = is_pushed
        # One ingest at a time: the plan is computed from what the database holds, and must be
        # applied before the next plan reads it. Fetching and parsing stay concurrent.
        self._ingest_lock = asyncio.Lock()
        self._waiting: deque[_Ingest] = deque()
        # Two bounds, not one: a poll whose document is parsed gives its fetch slot to the next
        # poll while it waits for the store, so fetching, parsing (other processes) and writing
        # overlap. Under one bound the slots all filled with polls waiting for the store, and
        # the fetches and the writes took turns (issue 13: a first poll slower than the naive
        # loop with both cores half idle).
        self._fetching = asyncio.Semaphore(concurrency)
        self._in_flight = asyncio.Semaphore(concurrency + INGEST_BACKLOG)

    async def poll(self, feed: FeedState, *, force: bool = False) -> PollReport:
        now = self.clock()
        if not force and feed.retry_at is not None and feed.retry_at > now:
            return PollReport(feed.name, PollStatus.SKIPPED)
        if not force and skipped(feed.schedule, self.polling, now, feed.last_poll_at):
            return PollReport(feed.name, PollStatus.SKIPPED)  # its <skipHours> or <skipDays>
        async with self._in_flight:
            return await self._poll(feed)

    async def _poll(self, feed: FeedState) -> PollReport:
        async with self._fetching:
            result = await self.reader.fetch(feed)
            if result.status == FetchStatus.ERROR:
                error = result.error or "fetch failed"
                return await self._failed(feed, error, result.retry_after)
            if result.status in (FetchStatus.NOT_MODIFIED, FetchStatus.UNCHANGED):
                pushed = await self._pushed(feed)
                now = self.clock()
                seen = PollSeen(
                    max_age=result.max_age, retry_after=result.retry_after, pushed=pushed
                )
                schedule = self._schedule(feed, seen, now)
                outcome = replace(self._success(feed, result), schedule=schedule)
                await self.store.record_poll(feed, outcome, now)
                await self._recovered(feed)
                return PollReport(feed.name, PollStatus(result.status.value), schedule=schedule)
            try:
                parsed = await self.reader.parse(result, feed.name)
            except FeedError as exc:
                return await self._failed(feed, str(exc), None)
        seen = PollSeen(
            parsed=True,
            published=tuple(s.published for s in parsed.stories if s.published is not None),
            hints=parsed.hints,
            max_age=result.max_age,
            retry_after=result.retry_after,
            pushed=await self._pushed(feed),
        )
        report = await self.ingest(
            feed,
            parsed.stories,
            self._success(feed, result),
            parsed.identity,
            seen=seen,
        )
        if self.on_read is not None:
            await self.on_read(feed, result)
        await self._recovered(feed)
        return replace(report, warning=parsed.warning)

    async def _pushed(self, feed: FeedState) -> bool:
        return self.is_pushed is not None and await self.is_pushed(feed)

    def _schedule(self, feed: FeedState, seen: PollSeen, now: datetime) -> PollSchedule:
        return schedule_after(
            self.polling,
            interval=feed.interval,
            fixed=feed.fixed,
            baseline=not feed.baseline_done,
            prior=feed.schedule,
            seen=seen,
            now=now,
        )

    def _success(self, feed: FeedState, result: FetchResult) -> PollOutcome:
        return PollOutcome(
            ok=True,
            etag=result.etag,
            last_modified=result.last_modified,
            body_hash=result.body_hash or feed.body_hash,
        )

    async def _failed(self, feed: FeedState, error: str, retry_after: float | None) -> PollReport:
        now = self.clock()
        if not self.polling.honour_http_hints:
            retry_after = None
        elif retry_after is not None:
            # Like every hint: never longer than the ceiling ([polling] max_interval), however
            # long the server asks (the doubling of the backoff itself may go further).
            retry_after = min(retry_after, self.polling.max_interval.total_seconds())
        failures = feed.failures + 1
        retry_at = self.backoff.next_retry(feed, failures, now, retry_after)
        outcome = PollOutcome(
            ok=False,
            error=error,
            failures=failures,
            retry_at=retry_at,
            etag=feed.etag,
            last_modified=feed.last_modified,
            body_hash=feed.body_hash,
        )
        await self.store.record_poll(feed, outcome, now)
        # Report each failing feed once, and again only when the reason changes: an offline
        # desk must not drown its log in the same line every two minutes.
        if failures == 1 or error != feed.last_error:
            log.warning(
                "feed %r failed: %s (retrying in %s)",
                feed.name,
                error,
                _human(retry_at - now),
            )
        else:
            log.debug("feed %r still failing (%d times): %s", feed.name, failures, error)
        report = PollReport(feed.name, PollStatus.ERROR, error=error)
        if self.on_feed_health is not None:
            await self.on_feed_health(feed, report, failures)
        return report

    async def _recovered(self, feed: FeedState) -> None:
        if feed.failures:
            log.info("feed %r recovered after %d failed polls", feed.name, feed.failures)
            if self.on_feed_health is not None:
                await self.on_feed_health(feed, PollReport(feed.name, PollStatus.RECOVERED), 0)

    async def ingest(
        self,
        feed: FeedState,
        stories: Sequence[Story],
        outcome: PollOutcome,
        identity: DocumentIdentity | None = None,
        *,
        seen: PollSeen | None = None,
    ) -> PollReport:
        """`identity`: `identify(stories)`, when the parse worker has computed it already.
        `seen`: what the poll saw of the feed's rate and hints (its new stories are counted
        here): the feed's schedule is written with the poll.

        Polls are ingested one after the other (each plan is computed from what the database
        holds, and must be written before the next plan reads it), but those waiting when the
        store is free go through together, in one ingest session: one commit for all."""
        book = await self.queries()
        if identity is None:
            # CPU work that needs no database: off the loop, outside the ingest lock.
            identity = await asyncio.to_thread(identify, stories)
        job = _Ingest(feed, _sightings(feed, stories, identity), outcome, identity.ignore, book)
        job.seen = seen
        self._waiting.append(job)
        async with self._ingest_lock:
            while not job.done:
                await self._ingest_waiting()
        plan = job.result()
        return PollReport(
            feed.name,
            PollStatus.NEW,
            stories=len(job.sightings),
            new=len(plan.new_stories),
            updated=sum(1 for r in plan.revisions if r.notify),
            alerts=plan.alerts,
            schedule=job.schedule,
            leads=tuple(plan.leads),
        )

    async def _ingest_waiting(self) -> None:
        """The polls waiting (oldest first, up to GROUP_POLLS, while the session is younger
        than GROUP_SECONDS), in one ingest session. A poll that fails fails alone; a session
        that cannot commit fails them all."""
        group: list[_Ingest] = []
        committed = False
        try:
            async with self.store.ingest_session() as session:
                started = time.monotonic()  # the session's age, from when it is open
                while self._waiting and (
                    not group  # at least one poll, however long the session took to open
                    or (len(group) < GROUP_POLLS and time.monotonic() - started < GROUP_SECONDS)
                ):
                    job = self._waiting.popleft()
                    group.append(job)
                    try:
                        job.plan = await self._plan_and_apply(session, job)
                    except Exception as exc:
                        job.error = exc
            committed = True
        except Exception as exc:
            if not group and self._waiting:
                # The session did not even open (the database locked, unreachable): the
                # oldest poll fails with the reason, rather than waiting for ever.
                group.append(self._waiting.popleft())
            for job in group:
                if job.error is None:
                    job.plan, job.error = None, exc
        finally:
            for job in group:
                if not committed and job.error is None:
                    job.plan = None  # cut short (shutdown): nothing of it was committed
                job.done = True
        if any(job.plan is not None and _wakes(job.plan) for job in group):
            self.on_alerts()

    async def _plan_and_apply(self, session: IngestSession, job: _Ingest) -> IngestPlan:
        now = self.clock()
        since = now - self.settings.dedupe_window
        hits, unresolved = await self._lookup(session, job.sightings, since)
        # A near-duplicate candidate is a stored story, and a sighting that a stored story
        # holds by GUID or link is one already: only the others' prints are worth keeping for
        # later checks (a changed document's known items filled the kept prints, some 30 MB of
        # the bot's memory after a restart).
        for sighting in unresolved:
            if sighting.print is not None:
                remember_print(sighting.story, sighting.print)
        by_key = key_index(hits, since)
        listed = listed_stories(job.sightings, by_key)
        ranked = _ranked(job.sightings, by_key)
        wanted = listed.union(*([ref for ref, _ in c] for c in ranked))
        # The plan needs no hit on a story it will not read (the GUID and link hits it keeps
        # all: they decide, loaded or not).
        hits = [h for h in hits if h.kind in PERMANENT_KINDS or h.story_id in wanted]
        # A near-duplicate candidate is read as its headline and lead, and in full only when
        # a sighting's check accepts it (on formulaic feeds most candidates are checked and
        # rejected: loading them whole was a tenth of the writing process's work).
        texts = await session.story_texts(sorted(wanted - listed))
        # Matching and near-duplicate checks are CPU work whose cost grows with the stories
        # and the queries: off the loop, so chat heartbeats and commands never wait on it.
        checks = (
            await asyncio.to_thread(
                check_candidates, job.sightings, ranked, texts, listed, job.ignore
            )
            if texts
            else None
        )
        matched = {ref for c in checks or () for ref, same in c.items() if same}
        stories_by_id, targets, carriers = await self._load(session, listed | matched, job.feed)
        plan = await asyncio.to_thread(
            plan_ingest,
            job.feed,
            job.sightings,
            hits,
            stories_by_id,
            job.book,
            self.settings,
            now,
            targets,
            job.ignore,
            carriers,
            texts,
            checks,
            ranked,
        )
        outcome = job.outcome
        if job.seen is not None:
            seen = replace(job.seen, new=len(plan.new_stories))
            job.schedule = self._schedule(job.feed, seen, now)
            outcome = replace(outcome, schedule=job.schedule)
        await session.apply_ingest(job.feed, plan.ingest_batch(), outcome, now)
        return plan

    async def _lookup(
        self, session: IngestSession, sightings: Sequence[_Sighting], since: datetime
    ) -> tuple[list[KeyHit], list[_Sighting]]:
        """Hits on the sightings' GUIDs and links, then on the near-duplicate keys of those
        that neither finds (returned too), seen since `since` (the de-duplication window)."""
        hits = await session.find_keys([k.value for s in sightings for k in s.strong])
        unresolved = _unresolved(sightings, hits)
        if unresolved:
            hits += await session.find_keys(
                [k.value for s in unresolved for k in s.fuzzy], since=since
            )
        return hits, unresolved

    async def _load(
        self, session: IngestSession, ids: set[int], feed: FeedState
    ) -> tuple[dict[int, StoredStory], dict[int, set[str]], dict[int, list[SourceSighting]]]:
        """The stories, who has their cards, and (for those first seen in another feed: the
        usual poll lists only its own) which feeds carry them. Not on a baseline poll: its
        sightings say only when we started polling, so they lead nobody (plan._plan_carrier),
        and a carrier row the store already holds is kept as it is."""
        if not ids:
            return {}, {}, {}
        candidates = sorted(ids)
        stories = await session.load_stories(candidates)
        targets = await session.delivery_targets(candidates)
        others = [i for i, story in stories.items() if story.feed_id != feed.id]
        if not others or not feed.baseline_done:
            return stories, targets, {}
        return stories, targets, await session.story_carriers(others)


class _Ingest:
    """One poll waiting for the store, then its plan (or why it failed)."""

    def __init__(
        self,
        feed: FeedState,
        sightings: list[_Sighting],
        outcome: PollOutcome,
        ignore: frozenset[str],
        book: QueryBook,
    ) -> None:
        self.feed = feed
        self.sightings = sightings
        self.outcome = outcome
        self.ignore = ignore
        self.book = book
        self.seen: PollSeen | None = None  # for the feed's schedule, once the plan counts
        self.schedule: PollSchedule | None = None
        self.plan: IngestPlan | None = None
        self.error: BaseException | None = None
        self.done = False

    def result(self) -> IngestPlan:
        if self.error is not None:
            raise self.error
        if self.plan is None:  # its session was cut short (shutdown)
            raise asyncio.CancelledError
        return self.plan


def _wakes(plan: IngestPlan) -> bool:
    """Whether the delivery worker has something new to do."""
    return bool(plan.deliveries) or any(r.notify for r in plan.revisions)


def _sightings(
    feed: FeedState, stories: Sequence[Story], identity: DocumentIdentity
) -> list[_Sighting]:
    sightings = []
    for item in identity.items:
        story = stories[item.index]
        strong = strong_keys(story, feed.id, guid_unique=item.guid_unique, link=item.link)
        sightings.append(_Sighting(story, strong, item.fuzzy, item.print, item.link))
    return sightings


def _unresolved(sightings: Sequence[_Sighting], hits: Sequence[KeyHit]) -> list[_Sighting]:
    known = {hit.key for hit in hits}
    return [s for s in sightings if not any(k.value in known for k in s.strong)]


def _ranked(
    sightings: Sequence[_Sighting], by_key: dict[int, list[int]]
) -> list[list[tuple[int, int]]]:
    """Per sighting, its best-voted near-duplicate candidates among the stored stories, with
    their votes (a few, however many share a band); none for a sighting whose GUID or link a
    stored story holds. Voted once: the checks and the plan take them as they are."""
    ranked: list[list[tuple[int, int]]] = []
    for sighting in sightings:
        if sighting.fuzzy and not any(k.value in by_key for k in sighting.strong):
            ranked.append(ranked_candidates(sighting.fuzzy, by_key)[:MAX_VERIFIED])
        else:
            ranked.append([])
    return ranked


def _human(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"

"""poll -> parse -> identify -> match -> pending deliveries, one transaction per poll.

`plan_ingest` is pure: given the stories of one document and what the database knows about
their keys, it decides what is new, what is an update, what was seen, and who gets a card.
`Pipeline` does the I/O around it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from bot.core.identity import (
    PERMANENT_KINDS,
    DocumentIdentity,
    Fingerprint,
    IdentityKey,
    KeyKind,
    boilerplate,
    fingerprint,
    identify,
    material_change,
    remember_print,
    same_story,
    strong_keys,
    url_key,
)
from bot.core.models import FeedState, StoredStory, Story
from bot.core.ports import (
    FeedError,
    FeedReader,
    FetchResult,
    FetchStatus,
    IngestStore,
    KeyHit,
    PollOutcome,
)
from bot.core.routing import QueryBook, Route
from bot.core.store import DeliveryRow, IngestBatch, KeyRow, NewStoryRow, RevisionRow, StoryRef

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class IngestSettings:
    max_age: timedelta = timedelta(hours=24)
    dedupe_window: timedelta = timedelta(hours=48)
    max_updates: int = 3
    # Stories dated this far in the future are treated as undated for the age check.
    clock_skew: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class NewStory:
    ref: int  # negative: a story this plan creates
    story: Story
    alertable: bool


@dataclass(frozen=True, slots=True)
class Revision:
    story_id: int
    story: Story
    notify: bool  # post an update of cards already sent
    alertable: bool


class PlannedKey(NamedTuple):  # a tuple: a first poll plans a dozen per item
    story_ref: int  # positive: existing story id; negative: NewStory.ref
    key: IdentityKey


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    story_ref: int
    route: Route
    refresh: bool = False  # the destination has its card; only its matched terms are renewed


@dataclass
class IngestPlan:
    new_stories: list[NewStory] = field(default_factory=list)
    revisions: list[Revision] = field(default_factory=list)
    keys: list[PlannedKey] = field(default_factory=list)
    deliveries: list[PlannedDelivery] = field(default_factory=list)
    seen: int = 0
    max_updates: int = 3
    # Near-duplicate checks made (at most MAX_VERIFIED per sighting): the work of the plan.
    verified: int = 0

    @property
    def alerts(self) -> int:
        return sum(1 for d in self.deliveries if not d.refresh)

    def ingest_batch(self) -> IngestBatch:
        """The rows the store writes, each naming its story outright (a negative reference is
        the plan's own label for a story it creates)."""
        refs: dict[int, StoryRef] = {}

        def ref(value: int) -> StoryRef:
            found = refs.get(value)
            if found is None:
                found = refs[value] = StoryRef(value, value < 0)
            return found

        return IngestBatch(
            [NewStoryRow(n.ref, n.story, n.alertable) for n in self.new_stories],
            [RevisionRow(r.story_id, r.story, r.notify, r.alertable) for r in self.revisions],
            [KeyRow(ref(k.story_ref), k.key) for k in self.keys],
            [DeliveryRow(ref(d.story_ref), d.route) for d in self.deliveries],
            self.max_updates,
        )


def is_fresh(story: Story, now: datetime, settings: IngestSettings) -> bool:
    """Old news never alerts. An undated story, or one dated in the future, counts as new now."""
    published = story.published
    if published is None or published > now + settings.clock_skew:
        return True
    return now - published <= settings.max_age


@dataclass
class _Sighting:
    story: Story
    strong: tuple[IdentityKey, ...]
    fuzzy: tuple[IdentityKey, ...] = ()
    print: Fingerprint | None = None  # computed on demand when not given
    link: str | None = None  # url_key(story.link), likewise


def plan_ingest(
    feed: FeedState,
    sightings: Sequence[_Sighting],
    hits: Sequence[KeyHit],
    stories: dict[int, StoredStory],
    book: QueryBook,
    settings: IngestSettings,
    now: datetime,
    targets: Mapping[int, set[str]] | None = None,
    ignore: frozenset[str] | None = None,
) -> IngestPlan:
    """`targets`: the destinations that already have a delivery, per known story. `ignore`:
    the document's boilerplate, when already known (see `identity.boilerplate`)."""
    targets = targets or {}
    plan = IngestPlan(max_updates=settings.max_updates)
    by_key: dict[int, list[int]] = {}
    hit_kind: dict[tuple[int, int], KeyKind] = {}
    for hit in hits:
        # Windowed kinds only count inside the window; the store filters, this makes sure.
        if hit.kind not in PERMANENT_KINDS and now - hit.seen_at > settings.dedupe_window:
            continue
        by_key.setdefault(hit.key, []).append(hit.story_id)
        hit_kind[(hit.key, hit.story_id)] = hit.kind
    # Stored stories this document still lists (by GUID or link): another item of the document
    # is not one of them moved under a new address.
    listed = {ref for s in sightings for k in s.strong for ref in by_key.get(k.value, ())}
    if ignore is None:
        ignore = boilerplate(s.story for s in sightings)
    links = {s.link or url_key(s.story.link) for s in sightings} - {None}
    # Stories created by this plan, so that a document repeating a story finds it too.
    local: dict[int, Story] = {}
    prints: dict[int, Fingerprint] = {}

    def print_of(ref: int) -> Fingerprint | None:
        if ref not in prints:
            story = local[ref] if ref < 0 else (stories[ref].story if ref in stories else None)
            if story is None:
                return None
            prints[ref] = fingerprint(story)
        return prints[ref]

    for sighting in sightings:
        story = sighting.story
        match_ref: int | None = None
        exact = False
        for key in sighting.strong:
            refs = by_key.get(key.value)
            if refs:
                match_ref, exact = max(refs), True  # the newest story holding the key
                break
        if match_ref is None and sighting.fuzzy:
            mine = sighting.print or fingerprint(story)
            verified = 0
            for ref in fuzzy_candidates(sighting.fuzzy, by_key):
                other = print_of(ref)
                if other is None:
                    continue
                plan.verified += 1
                co_listed = ref < 0 or ref in listed
                if same_story(other, mine, co_listed=co_listed, ignore=ignore):
                    match_ref = ref
                    break
                verified += 1
                if verified >= MAX_VERIFIED:
                    break
        if match_ref is None:
            ref = -(len(plan.new_stories) + 1)
            alertable = feed.baseline_done and is_fresh(story, now, settings)
            plan.new_stories.append(NewStory(ref, story, alertable))
            local[ref] = story
            _remember(plan, by_key, ref, sighting.strong + sighting.fuzzy)
            if alertable:
                plan.deliveries.extend(PlannedDelivery(ref, r) for r in book.route(story))
            continue

        _remember(plan, by_key, match_ref, sighting.strong)
        if match_ref < 0 or match_ref not in stories:
            # Repeated inside this document, or a story pruned long ago: seen, nothing to say.
            plan.seen += 1
            continue
        delivered = targets.get(match_ref, set())
        planned = {d.route.target for d in plan.deliveries if d.story_ref == match_ref}
        _plan_sighting(
            plan,
            feed,
            stories[match_ref],
            story,
            exact,
            book,
            settings,
            now,
            delivered | planned,
            links,
        )
    return plan


# Near-duplicate candidates verified per sighting, best-voted first. On formulaic feeds (market
# reports, results, quake bulletins) every stored story shares some MinHash band with a new one;
# the story it repeats shares the most, so a few are enough and the work per story is bounded.
MAX_VERIFIED = 4


def fuzzy_candidates(keys: Sequence[IdentityKey], by_key: Mapping[int, list[int]]) -> list[int]:
    """Stories sharing a fuzzy key with a sighting, most votes first (a same headline outweighs
    any number of bands), the newest first among equals."""
    votes: dict[int, int] = {}
    for key in keys:
        for ref in by_key.get(key.value, ()):
            weight = 10 if key.kind == KeyKind.TITLE else 1
            votes[ref] = votes.get(ref, 0) + weight
    return sorted(votes, key=lambda r: (-votes[r], -r))


def _remember(plan: IngestPlan, by_key: dict[int, list[int]], ref: int, keys) -> None:
    for key in keys:
        refs = by_key.setdefault(key.value, [])
        if ref not in refs:
            refs.append(ref)
            plan.keys.append(PlannedKey(ref, key))


def _plan_sighting(
    plan: IngestPlan,
    feed: FeedState,
    known: StoredStory,
    story: Story,
    exact: bool,
    book: QueryBook,
    settings: IngestSettings,
    now: datetime,
    delivered: set[str],
    links: set[str],
) -> None:
    """`links`: the links the document lists."""
    same_feed = known.feed_id == feed.id
    old = known.story
    if same_feed and (story.title, story.summary, story.link, story.content) == (
        old.title,
        old.summary,
        old.link,
        old.content,
    ):
        plan.seen += 1  # the usual case: a feed lists what it listed last time
        return
    sighting_fresh = feed.baseline_done and is_fresh(story, now, settings)
    # Only the same article (same feed, or the same link elsewhere) can revise a card; another
    # publisher's wording of the story is not an update of ours.
    can_revise = same_feed or (exact and url_key(story.link) == url_key(known.story.link))
    # Moved: the feed no longer lists the story's link and lists this one. A document that
    # lists one story under two links (CNN did) must not move the card back and forth.
    old_link = url_key(known.story.link)
    moved = same_feed and url_key(story.link) != old_link and old_link not in links
    changed = can_revise and (material_change(known.story, story) or moved)
    if changed:
        merged = _merge_story(known.story, story)
        # Cards already sent are edited (the store marks them); a destination the rewrite
        # newly matches alerts normally.
        routes = book.route(merged) if known.alertable or sighting_fresh else []
        if not known.alertable:
            # Never alerted (recorded as a baseline): only what the rewrite itself brought in.
            before = {r.target for r in book.route(known.story)}
            routes = [r for r in routes if r.target not in before]
        plan.revisions.append(
            Revision(known.id, merged, notify=True, alertable=known.alertable or bool(routes))
        )
        plan.deliveries.extend(
            PlannedDelivery(known.id, r, refresh=r.target in delivered) for r in routes
        )
        return
    if not same_feed and sighting_fresh:
        # Another feed's sighting of a known story alerts every destination its own text
        # matches that has no card for the story yet: who hears of a story must not depend on
        # which wording was polled first. A destination with a card is never told again.
        # A story recorded while its first feed was a new baseline was never alerted: what its
        # stored text matches is owed too.
        routes = book.route(story)
        if not known.alertable:
            routes = [*book.route(known.story), *routes]
        owed: dict[str, Route] = {}
        for route in routes:
            if route.target not in delivered:
                owed.setdefault(route.target, route)
        if owed:
            if not known.alertable:
                plan.revisions.append(Revision(known.id, known.story, notify=False, alertable=True))
            plan.deliveries.extend(PlannedDelivery(known.id, r) for r in owed.values())
            if not (can_revise and _grew(known.story, story)):
                return
    if can_revise and _grew(known.story, story):
        # The whole lead after one cut short: keep the better text, tell nobody.
        plan.revisions.append(
            Revision(
                known.id, _merge_story(known.story, story), notify=False, alertable=known.alertable
            )
        )
        return
    plan.seen += 1


def _grew(old: Story, new: Story) -> bool:
    return len(new.summary) > len(old.summary) or len(new.content) > len(old.content)


def _merge_story(old: Story, new: Story) -> Story:
    """The newest text, but never lose what only the older sighting had."""
    rewritten = material_change(old, new)
    return Story(
        feed=old.feed,
        title=new.title or old.title,
        link=new.link or old.link,
        guid=new.guid or old.guid,
        summary=new.summary if rewritten or len(new.summary) >= len(old.summary) else old.summary,
        content=new.content if rewritten or len(new.content) >= len(old.content) else old.content,
        published=old.published or new.published,
        author=new.author or old.author,
        categories=new.categories or old.categories,
        image=new.image or old.image,
    )


# --- the orchestrator -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PollReport:
    feed: str
    status: str  # "new", "not_modified", "unchanged", "error", "skipped"
    stories: int = 0
    new: int = 0
    updated: int = 0
    alerts: int = 0
    error: str | None = None
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    max_delay: timedelta = timedelta(hours=1)

    def next_retry(
        self, feed: FeedState, failures: int, now: datetime, retry_after: float | None
    ) -> datetime:
        # Double the wait with every consecutive failure: a dead feed is tried less and less
        # often but never given up on; a server's Retry-After wins when it asks for longer.
        delay = feed.interval * (2 ** min(failures - 1, 16))
        delay = min(max(delay, feed.interval), self.max_delay)
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
    ) -> None:
        self.store = store
        self.reader = reader
        self.queries = queries
        self.settings = settings or IngestSettings()
        self.clock = clock
        self.on_alerts = on_alerts
        self.backoff = backoff or BackoffPolicy()
        self.on_feed_health = on_feed_health
        # One ingest at a time: the plan is computed from what the database holds, and must be
        # applied before the next plan reads it. Fetching and parsing stay concurrent.
        self._ingest_lock = asyncio.Lock()

    async def poll(self, feed: FeedState, *, force: bool = False) -> PollReport:
        now = self.clock()
        if not force and feed.retry_at is not None and feed.retry_at > now:
            return PollReport(feed.name, "skipped")
        result = await self.reader.fetch(feed)
        if result.status == FetchStatus.ERROR:
            return await self._failed(feed, result.error or "fetch failed", result.retry_after)
        if result.status in (FetchStatus.NOT_MODIFIED, FetchStatus.UNCHANGED):
            outcome = self._success(feed, result)
            await self.store.record_poll(feed, outcome, self.clock())
            await self._recovered(feed)
            return PollReport(feed.name, result.status.value)
        try:
            parsed = await self.reader.parse(result, feed.name)
        except FeedError as exc:
            return await self._failed(feed, str(exc), None)
        report = await self.ingest(
            feed, parsed.stories, self._success(feed, result), parsed.identity
        )
        await self._recovered(feed)
        return PollReport(
            feed.name,
            "new",
            stories=report.stories,
            new=report.new,
            updated=report.updated,
            alerts=report.alerts,
            warning=parsed.warning,
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
        report = PollReport(feed.name, "error", error=error)
        if self.on_feed_health is not None:
            await self.on_feed_health(feed, report, failures)
        return report

    async def _recovered(self, feed: FeedState) -> None:
        if feed.failures:
            log.info("feed %r recovered after %d failed polls", feed.name, feed.failures)
            if self.on_feed_health is not None:
                await self.on_feed_health(feed, PollReport(feed.name, "recovered"), 0)

    async def ingest(
        self,
        feed: FeedState,
        stories: Sequence[Story],
        outcome: PollOutcome,
        identity: DocumentIdentity | None = None,
    ) -> PollReport:
        """`identity`: `identify(stories)`, when the parse worker has computed it already."""
        book = await self.queries()
        if identity is None:
            # CPU work that needs no database: off the loop, outside the ingest lock.
            identity = await asyncio.to_thread(identify, stories)
        sightings = _sightings(feed, stories, identity)
        async with self._ingest_lock:
            now = self.clock()
            hits = await self._lookup(sightings, now)
            wanted = _worth_loading(sightings, hits)
            # The plan needs no hit on a story it will not read (the GUID and link hits it
            # keeps all: they decide, loaded or not).
            hits = [h for h in hits if h.kind in PERMANENT_KINDS or h.story_id in wanted]
            stories_by_id, targets = await self._load(wanted)
            # Matching and near-duplicate checks are CPU work whose cost grows with the stories
            # and the queries: off the loop, so chat heartbeats and commands never wait on it.
            plan = await asyncio.to_thread(
                plan_ingest,
                feed,
                sightings,
                hits,
                stories_by_id,
                book,
                self.settings,
                now,
                targets,
                identity.ignore,
            )
            await self.store.apply_ingest(feed, plan.ingest_batch(), outcome, now)
        if plan.deliveries or any(r.notify for r in plan.revisions):
            self.on_alerts()
        return PollReport(
            feed.name,
            "new",
            stories=len(sightings),
            new=len(plan.new_stories),
            updated=sum(1 for r in plan.revisions if r.notify),
            alerts=plan.alerts,
        )

    async def _lookup(self, sightings: Sequence[_Sighting], now: datetime) -> list[KeyHit]:
        """Hits on the sightings' GUIDs and links, then on the near-duplicate keys of those
        that neither finds."""
        hits = await self.store.find_keys([k.value for s in sightings for k in s.strong])
        unresolved = _unresolved(sightings, hits)
        if unresolved:
            hits += await self.store.find_keys(
                [k.value for s in unresolved for k in s.fuzzy],
                since=now - self.settings.dedupe_window,
            )
        return hits

    async def _load(self, ids: set[int]) -> tuple[dict[int, StoredStory], dict[int, set[str]]]:
        if not ids:
            return {}, {}
        candidates = sorted(ids)
        return (
            await self.store.load_stories(candidates),
            await self.store.delivery_targets(candidates),
        )


def _sightings(
    feed: FeedState, stories: Sequence[Story], identity: DocumentIdentity
) -> list[_Sighting]:
    sightings = []
    for item in identity.items:
        story = stories[item.index]
        strong = strong_keys(story, feed.id, guid_unique=item.guid_unique, link=item.link)
        remember_print(story, item.print)
        sightings.append(_Sighting(story, strong, item.fuzzy, item.print, item.link))
    return sightings


def _unresolved(sightings: Sequence[_Sighting], hits: Sequence[KeyHit]) -> list[_Sighting]:
    known = {hit.key for hit in hits}
    return [s for s in sightings if not any(k.value in known for k in s.strong)]


def _worth_loading(sightings: Sequence[_Sighting], hits: Sequence[KeyHit]) -> set[int]:
    """The stored stories a plan can use: those holding a sighting's GUID or link, and each
    sighting's best-voted near-duplicate candidates (a few, however many share a band)."""
    by_key: dict[int, list[int]] = {}
    for hit in hits:
        by_key.setdefault(hit.key, []).append(hit.story_id)
    wanted: set[int] = set()
    for sighting in sightings:
        for key in sighting.strong:
            wanted.update(by_key.get(key.value, ()))
        if sighting.fuzzy:
            wanted.update(fuzzy_candidates(sighting.fuzzy, by_key)[:MAX_VERIFIED])
    return wanted


def _human(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"

"""The pure planner: given the stories of one document and what the database knows about their
keys, decide what is new, what is an update, what was seen, and who gets a card. No I/O: the
pipeline (bot.core.pipeline) reads what it needs, calls `plan_ingest`, and hands the store
the plan's rows (`IngestPlan.ingest_batch`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import NamedTuple

from bot.core.identity import (
    PERMANENT_KINDS,
    Fingerprint,
    IdentityKey,
    KeyKind,
    boilerplate,
    fingerprint,
    headlines_allow,
    material_change,
    same_story,
    text_print,
    url_key,
    words,
)
from bot.core.latency import Lead, SourceSighting, comparable, stamped_times
from bot.core.models import HELD_BASELINE, HELD_OLD, FeedState, StoredStory, Story
from bot.core.ports import KeyHit
from bot.core.routing import QueryBook, Route
from bot.core.store import (
    CarrierRow,
    DeliveryRow,
    IngestBatch,
    KeyRow,
    NewStoryRow,
    RevisionRow,
    SightingRow,
    SourceRow,
    StoryRef,
)


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
    held: str = ""  # why it does not alert: HELD_BASELINE or HELD_OLD
    stamped: bool = False  # its publish time is one several items of the document share


@dataclass(frozen=True, slots=True)
class Revision:
    story_id: int
    story: Story
    notify: bool  # post an update of cards already sent
    alertable: bool


class PlannedKey(NamedTuple):  # a tuple: a first poll plans a dozen per item
    story_ref: int  # positive: existing story id; negative: NewStory.ref
    key: IdentityKey


class PlannedCarrier(NamedTuple):
    story_ref: int
    baseline: bool  # seen in the feed's baseline poll


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
    sources: list[SourceRow] = field(default_factory=list)  # other feeds carrying a story
    # Other feeds' items found to be stored stories, the first time each is seen (for /why).
    sightings: list[SightingRow] = field(default_factory=list)
    # The feed carries these stories (new ones, and stored ones it had not carried yet).
    carriers: list[PlannedCarrier] = field(default_factory=list)
    # Stories this poll made shared: which feed had each first, and by how much.
    leads: list[Lead] = field(default_factory=list)
    feed_id: int = 0
    feed_name: str = ""
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

        new = tuple.__new__  # a KeyRow without the constructor's Python call: a dozen per item
        return IngestBatch(
            [NewStoryRow(n.ref, n.story, n.alertable, n.held, n.stamped) for n in self.new_stories],
            [RevisionRow(r.story_id, r.story, r.notify, r.alertable) for r in self.revisions],
            [new(KeyRow, (ref(story_ref), key)) for story_ref, key in self.keys],
            [DeliveryRow(ref(d.story_ref), d.route) for d in self.deliveries],
            self.max_updates,
            sources=list(dict.fromkeys(self.sources)),
            sightings=self.sightings,
            carriers=[
                CarrierRow(ref(p.story_ref), self.feed_id, self.feed_name, p.baseline)
                for p in self.carriers
            ],
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
    carriers: Mapping[int, Sequence[SourceSighting]] | None = None,
    texts: Mapping[int, tuple[str, str]] | None = None,
    checks: Sequence[dict[int, bool]] | None = None,
    ranked: Sequence[Sequence[tuple[int, int]]] | None = None,
) -> IngestPlan:
    """`targets`: the destinations that already have a delivery, per known story. `ignore`:
    the document's boilerplate, when already known (see `identity.boilerplate`). `carriers`:
    the feeds recorded as carrying each known story (IngestSession.story_carriers). `texts`:
    headline and lead of near-duplicate candidates not in `stories`; `ranked`, per sighting,
    its stored candidates (the best-voted few, with their votes) and `checks` the verdicts on
    them already known (see `check_candidates`). Without `ranked`, every stored story sharing
    a key with a sighting is a candidate."""
    targets = targets or {}
    carriers = carriers or {}
    texts = texts or {}
    plan = IngestPlan(max_updates=settings.max_updates, feed_id=feed.id, feed_name=feed.name)
    stamps = stamped_times(s.story for s in sightings)
    carried: set[int] = set()  # known stories this plan records the feed as carrying
    by_key = key_index(hits, now - settings.dedupe_window)
    listed = listed_stories(sightings, by_key)
    if ignore is None:
        ignore = boilerplate(s.story for s in sightings)
    links = {link for s in sightings if (link := s.link or url_key(s.story.link))}
    # Stories created by this plan, so that a document repeating a story finds it too.
    local: dict[int, Story] = {}

    def text_of(ref: int) -> tuple[str, str] | None:
        story = local[ref] if ref < 0 else (stories[ref].story if ref in stories else None)
        return (story.title, story.summary) if story is not None else texts.get(ref)

    for position, sighting in enumerate(sightings):
        story = sighting.story
        match_ref: int | None = None
        exact = False
        for key in sighting.strong:
            refs = by_key.get(key.value)
            if refs:
                match_ref, exact = max(refs), True  # the newest story holding the key
                break
        if match_ref is None and sighting.fuzzy:
            if ranked is None:
                candidates = fuzzy_candidates(sighting.fuzzy, by_key)
            else:
                # Its stored candidates as ranked, and this plan's own stories in their place.
                own = ranked_candidates(sighting.fuzzy, by_key, local=True)
                both = sorted([*ranked[position], *own], key=_VOTES_THEN_REF, reverse=True)
                candidates = [ref for ref, _ in both]
            verdicts = dict(checks[position]) if checks else {}
            match_ref, checked = _near_duplicate(
                sighting, candidates, text_of, listed, ignore, verdicts
            )
            plan.verified += checked
        if match_ref is None:
            ref = -(len(plan.new_stories) + 1)
            held = (
                HELD_BASELINE
                if not feed.baseline_done
                else ""
                if is_fresh(story, now, settings)
                else HELD_OLD
            )
            alertable = not held
            stamped = story.published is not None and story.published in stamps
            plan.new_stories.append(NewStory(ref, story, alertable, held, stamped))
            plan.carriers.append(PlannedCarrier(ref, not feed.baseline_done))
            local[ref] = story
            _remember(plan, by_key, ref, sighting.strong + sighting.fuzzy)
            if alertable:
                plan.deliveries.extend(PlannedDelivery(ref, r) for r in book.route(story))
            continue

        first_sighting = _remember(plan, by_key, match_ref, sighting.strong)
        if match_ref < 0 or match_ref not in stories:
            # Repeated inside this document, or a story pruned long ago: seen, nothing to say.
            plan.seen += 1
            continue
        if first_sighting and stories[match_ref].feed_id != feed.id:
            # Another feed's item that is a story we have: kept once (its keys are new only
            # the first time), so that /why can name the duplicate and the story it repeats.
            plan.sightings.append(SightingRow(match_ref, story.feed, story.title, story.link))
        known = stories[match_ref]
        if known.feed_id != feed.id and match_ref not in carried:
            carried.add(match_ref)
            _plan_carrier(plan, feed, known, carriers.get(match_ref, ()), now)
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


def key_index(hits: Sequence[KeyHit], since: datetime) -> dict[int, list[int]]:
    """The stories holding each key. Windowed kinds only count inside the window (`since`):
    the store filters, this makes sure (one comparison per hit: a first poll of formulaic
    feeds reads millions)."""
    by_key: dict[int, list[int]] = {}
    for hit in hits:
        if hit.seen_at < since and hit.kind not in PERMANENT_KINDS:
            continue
        by_key.setdefault(hit.key, []).append(hit.story_id)
    return by_key


def listed_stories(sightings: Sequence[_Sighting], by_key: Mapping[int, list[int]]) -> set[int]:
    """Stored stories the document still lists (by GUID or link): another item of the document
    is not one of them moved under a new address."""
    return {ref for s in sightings for k in s.strong for ref in by_key.get(k.value, ())}


def check_candidates(
    sightings: Sequence[_Sighting],
    ranked: Sequence[Sequence[tuple[int, int]]],
    texts: Mapping[int, tuple[str, str]],
    listed: set[int],
    ignore: frozenset[str],
) -> list[dict[int, bool]]:
    """Per sighting, the stored near-duplicate candidates its check reads (`ranked`: per
    sighting, its best-voted few with their votes, as `ranked_candidates` gives them), read as
    headline and lead (`texts`), and whether it accepts each: the first accepted ends it.
    `listed`: the stored stories holding a GUID or link of the document (`listed_stories`).
    `plan_ingest`, given the same candidates and these checks, makes the same checks in the
    same order (or fewer: its own new stories take turns), so the stored story it matches is
    an accepted one: only those need loading in full."""

    checks: list[dict[int, bool]] = []
    for sighting, candidates in zip(sightings, ranked, strict=True):
        checks.append({})
        if candidates:
            refs = [ref for ref, _ in candidates]
            _near_duplicate(sighting, refs, texts.get, listed, ignore, checks[-1])
    return checks


def _near_duplicate(
    sighting: _Sighting,
    candidates: Iterable[int],
    text_of: Callable[[int], tuple[str, str] | None],
    listed: set[int],
    ignore: frozenset[str],
    checks: dict[int, bool],
) -> tuple[int | None, int]:
    """The first candidate that is the sighting's story, and how many were checked (at most
    MAX_VERIFIED; a candidate with no text, pruned, is not checked). `text_of`: a candidate's
    headline and lead. `checks`: verdicts already known, by candidate (`check_candidates`);
    the new ones are added."""
    mine = None
    checked = 0
    for ref in candidates:
        same = checks.get(ref)
        if same is None:
            text = text_of(ref)
            if text is None:
                continue
            mine = mine or sighting.print or fingerprint(sighting.story)
            # Both listed in this document at once (a story of this plan, or a stored one it
            # lists by GUID or link): only the same headline counts.
            co_listed = ref < 0 or ref in listed
            # Most candidates fail on the headline alone: their print (a few hundred word
            # pairs to make) only for those that pass it.
            same = checks[ref] = headlines_allow(
                words(text[0]), mine.title, co_listed=co_listed
            ) and same_story(text_print(*text), mine, co_listed=co_listed, ignore=ignore)
        checked += 1
        if same:
            return ref, checked
        if checked >= MAX_VERIFIED:
            break
    return None, checked


def fuzzy_candidates(keys: Sequence[IdentityKey], by_key: Mapping[int, list[int]]) -> list[int]:
    """Stories sharing a fuzzy key with a sighting, most votes first (a same headline outweighs
    any number of bands), the newest first among equals."""
    return [ref for ref, _ in ranked_candidates(keys, by_key)]


def ranked_candidates(
    keys: Sequence[IdentityKey], by_key: Mapping[int, list[int]], *, local: bool = False
) -> list[tuple[int, int]]:
    """(story, votes) for `fuzzy_candidates`, in its order. `local`: only the stories the plan
    itself creates (negative references)."""
    votes: dict[int, int] = {}
    get = votes.get
    for key in keys:
        refs = by_key.get(key.value)
        if refs:
            weight = 10 if key.kind == KeyKind.TITLE else 1
            for ref in refs:
                if ref < 0 or not local:
                    votes[ref] = get(ref, 0) + weight
    # (votes, ref) pairs from the greatest: most votes first, then the newest (highest id).
    return sorted(votes.items(), key=_VOTES_THEN_REF, reverse=True)


_VOTES_THEN_REF = itemgetter(1, 0)


def _plan_carrier(
    plan: IngestPlan,
    feed: FeedState,
    known: StoredStory,
    recorded: Sequence[SourceSighting],
    now: datetime,
) -> None:
    """Another feed carries a stored story: recorded the first time it does. The first feed
    that can be compared with an earlier one (no baseline on either side) makes the story
    shared, and says which feed had it first and by how much."""
    if not recorded and known.feed_id is not None:
        # Stored before carriers were recorded: its own first sighting stands in.
        recorded = [
            SourceSighting(known.feed_id, known.story.feed, known.first_seen, not known.alertable)
        ]
    if any(s.feed_id == feed.id for s in recorded):
        return
    plan.carriers.append(PlannedCarrier(known.id, not feed.baseline_done))
    earlier = comparable(recorded)
    if feed.baseline_done and len(earlier) == 1:
        first = earlier[0]
        plan.leads.append(
            Lead(first.feed_name, feed.name, max(0.0, (now - first.seen_at).total_seconds()))
        )


def _remember(
    plan: IngestPlan, by_key: dict[int, list[int]], ref: int, keys: Sequence[IdentityKey]
) -> bool:
    """Whether any of the keys was new to the story."""
    new = tuple.__new__  # a PlannedKey without the constructor's Python call
    added = False
    for key in keys:
        refs = by_key.setdefault(key.value, [])
        if ref not in refs:
            refs.append(ref)
            plan.keys.append(new(PlannedKey, (ref, key)))
            added = True
    return added


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
    if not same_feed and feed.name.casefold() != old.feed.casefold():
        # One more source carries the story (however it was recognised): a card in thread
        # mode names it. The store keeps each feed once, so a feed listing it poll after poll
        # edits nothing.
        plan.sources.append(SourceRow(known.id, feed.name))
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

"""/why: what happened to one story, and why, in plain words.

The story is found by its link (any link a feed listed it under: the identity keys remember them
all) or by headline words (the best few stored matches). What is said comes from what was
stored when it happened: which feed saw the story first and when, why it was held back (a
baseline poll, older than max_age: `StoredStory.held`), which other feeds repeated it (the
sightings kept as duplicates), and each card (watchlists, terms, sent, folded into a digest,
updates at the cap, a failed delivery with its reason). Only "why did this query not match" is
worked out now, by the real matcher on the stored text (bot.core.query_explain), which is exact
for the query as it stands.

Who sees what: admins everything; anyone else the watchlists that post to channels of their own
server or workspace (`Viewer.sees`, decided by the platform), their own subscriptions and cards,
and nothing of other channels or other people."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.core.durations import format_duration
from bot.core.identity import link_identity, safe_link, url_key, words
from bot.core.models import (
    HELD_BASELINE,
    HELD_OLD,
    Delivery,
    DeliveryStatus,
    Sighting,
    StoredStory,
    dm_target,
)
from bot.core.query import Query, QueryError
from bot.core.query_explain import failing_parts
from bot.core.replies import Reply, ReplyItem, refused, story_item
from bot.core.routing import parsed
from bot.core.store import CommandStore
from bot.core.tokens import split_text

WHY_LIMIT = 1000  # characters of a link or headline words
LOOK_BACK = timedelta(days=7)  # how far back headline words are looked for
SCAN_LIMIT = 100_000  # headlines read for one look-up by words
CLOSEST = 3  # other candidates named besides the story explained


def no_channel(target: str) -> bool:
    """The channels of someone asking from no server (a direct message): none."""
    return False


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who asks /why. `sees(target)`: whether a channel belongs to the asker's own server or
    workspace (the platform decides; a direct message is never a channel)."""

    subscriber: str  # "<platform>:<user id>", as subscriptions are kept
    admin: bool = False
    sees: Callable[[str], bool] = field(default=no_channel, compare=False)

    def may_see(self, target: str) -> bool:
        if self.admin or target == dm_target(self.subscriber):
            return True
        return not is_dm(target) and self.sees(target)


def is_dm(target: str) -> bool:
    """A person's direct messages: "<platform>:dm:<user id>" on every platform (see
    bot.core.destinations, which holds each platform's form to it)."""
    return target.partition(":")[2].startswith("dm:")


@dataclass(frozen=True, slots=True)
class WhySettings:
    max_age: timedelta = timedelta(hours=24)
    max_updates: int = 3


@dataclass(frozen=True, slots=True)
class _Found:
    story: StoredStory | None
    others: tuple[StoredStory, ...] = ()  # the next best candidates
    others_exact: tuple[bool, ...] = ()  # whether each has every word too
    exact: bool = True  # every word was in the headline, or the link is the story's
    duplicate: Sighting | None = None  # the asked link is this duplicate of `story`
    elsewhere: bool = False  # the asked link is not the story's own (another feed listed it)


def _when(moment: datetime) -> str:
    return moment.strftime("%d %b %H:%M UTC")


def _is_link(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


async def explain(
    store: CommandStore, asked: str, viewer: Viewer, settings: WhySettings, now: datetime
) -> Reply:
    text = " ".join((asked or "").split())
    if not text:
        return refused("Give a story's link or some words of its headline.")
    if len(text) > WHY_LIMIT:
        return refused(f"That is more than {WHY_LIMIT} characters; give a link or a few words.")
    if _is_link(text):
        found = await _by_link(store, text)
        if found.story is None:
            closest = await _by_words(store, _slug_words(text), now)
            head = "No stored story has that link."
            if closest.story is None:
                return Reply(head)
            candidates = (closest.story, *closest.others)
            return Reply(
                f"{head} The closest stored stories by its words:",
                tuple(story_item(s) for s in candidates),
            )
    else:
        found = await _by_words(store, words(text), now)
        if found.story is None:
            return Reply("No stored story has any of those words in its headline.")
    return await _explain(store, found, viewer, settings)


def _slug_words(link: str) -> tuple[str, ...]:
    """The words of a link's path (`/world/north-korea-fires-missile` gives north korea fires
    missile): what an article's address usually says of it."""
    key = url_key(link) or ""
    path = key.partition("/")[2].partition("?")[0]
    return tuple(w for w in words(path.replace("-", " ").replace("_", " ")) if not w.isdigit())


async def _by_link(store: CommandStore, link: str) -> _Found:
    key = link_identity(link)
    if key is None:
        return _Found(None)
    hits = await store.find_keys([key])
    loaded = await store.load_stories(sorted({h.story_id for h in hits}))
    if not loaded:
        return _Found(None)
    story = loaded[max(loaded)]  # the newest story holding the link
    mine = url_key(link)
    if url_key(story.story.link) == mine:
        return _Found(story)
    # Listed by another feed under this link: a duplicate of the story (kept as a sighting
    # when first seen; older databases did not keep them).
    sightings = await store.sightings(story.id)
    duplicate = next((s for s in sightings if url_key(s.link) == mine), None)
    return _Found(story, duplicate=duplicate, elsewhere=True)


async def _by_words(store: CommandStore, wanted: Sequence[str], now: datetime) -> _Found:
    """The stored stories whose headlines hold most of the words (all of them, at best),
    newest first among equals. Only the headlines of the week are read (not whole stories),
    and scored off the event loop."""
    wanted_set = frozenset(wanted)
    if not wanted_set:
        return _Found(None)
    titles = await store.recent_titles(now - LOOK_BACK, limit=SCAN_LIMIT)

    def score() -> list[tuple[int, int]]:
        # A headline holding none of the words as text cannot hold them as words: most are
        # passed over without being cut into words.
        folded = [w.casefold() for w in wanted_set]
        scored = []
        for story_id, title in titles:
            text = title.casefold()
            if any(w in text for w in folded) or not title.isascii():
                # split_text, not the cached `words`: a week of headlines would evict what
                # the polls keep there.
                hits = len(wanted_set.intersection(split_text(title)[1]))
                if hits:
                    scored.append((hits, story_id))
        # Newest first within each score: titles come newest first and sorting is stable.
        scored.sort(key=lambda p: -p[0])
        return scored[: CLOSEST + 1]

    best = await asyncio.to_thread(score)
    loaded = await store.load_stories([story_id for _, story_id in best])
    best = [(hits, story_id) for hits, story_id in best if story_id in loaded]  # pruned since
    if not best:
        return _Found(None)
    every = len(wanted_set)
    return _Found(
        loaded[best[0][1]],
        tuple(loaded[story_id] for _, story_id in best[1:]),
        tuple(hits == every for hits, _ in best[1:]),
        exact=best[0][0] == every,
    )


# --- the answer ---------------------------------------------------------------------------------


def _held(story: StoredStory, settings: WhySettings) -> str:
    if story.held == HELD_BASELINE:
        return (
            f"it was first seen in the baseline poll of {story.story.feed} (a new feed's "
            "first poll is recorded, not alerted)"
        )
    if story.held == HELD_OLD:
        published = story.story.published
        when = f"published {_when(published)}, " if published else ""
        return (
            f"it was {when}older than max_age ({format_duration(settings.max_age)}) when first seen"
        )
    return ""


def _card(delivery: Delivery, story: StoredStory, settings: WhySettings) -> str:
    folded = " (folded into a digest with other cards of a burst)" if delivery.digest_group else ""
    match delivery.status:
        case DeliveryStatus.FAILED:
            return f"the delivery failed: {delivery.error or 'no reason recorded'}"
        case DeliveryStatus.PENDING:
            waiting = f"card waiting to be sent{folded}"
            if delivery.error:
                waiting += f"; attempt {delivery.attempts} failed: {delivery.error}"
            return waiting
    said = f"card posted{folded}"
    if delivery.update_count:
        said += f", edited {delivery.update_count} times for updates"
    if delivery.update_count >= settings.max_updates and story.revision > delivery.update_count:
        said += (
            f"; later updates were not posted (over the cap of {settings.max_updates} edits, "
            "alerts.max_updates)"
        )
    return said


def _whose(delivery: Delivery, viewer: Viewer) -> str:
    if delivery.subscriber is not None:
        if delivery.subscriber == viewer.subscriber:
            return "Your subscriptions"
        return f"Subscriptions of {delivery.subscriber}"
    names = ", ".join(delivery.watchlists) or "a watchlist"
    return f"Watchlist {names}" if len(delivery.watchlists) < 2 else f"Watchlists {names}"


async def _explain(
    store: CommandStore, found: _Found, viewer: Viewer, settings: WhySettings
) -> Reply:
    story = found.story
    assert story is not None
    held = _held(story, settings)
    deliveries = [d for d in await store.deliveries_for_story(story.id) if viewer.may_see(d.target)]
    sightings = await store.sightings(story.id)

    if found.duplicate is not None:
        dup = found.duplicate
        head = (
            f"Why: that link ({dup.feed}, {_when(dup.seen_at)}) is a duplicate of a story "
            f'first seen on {story.story.feed}: "{story.title}". One story gets one card per '
            "channel, so the duplicate alerted nobody by itself; the story's cards are below."
        )
    elif found.elsewhere:
        head = (
            f"Why: that link is another listing of a story first seen on {story.story.feed}: "
            f'"{story.title}". One story gets one card per channel; its cards are below.'
        )
    elif not found.exact:
        head = f'Why: no stored story has all those words; the closest is "{story.title}".'
    else:
        head = f'Why: "{story.title}"'

    items: list[ReplyItem] = [
        ReplyItem(
            f"First seen on {story.story.feed} at {_when(story.first_seen)}",
            safe_link(story.story.link),
            f"published {_when(story.story.published)}" if story.story.published else "",
        )
    ]
    for seen in sightings:
        items.append(
            ReplyItem(
                f"Also seen on {seen.feed} at {_when(seen.seen_at)}: a duplicate of this story "
                "(no second card where it had one)",
                safe_link(seen.link),
                seen.title,
            )
        )
    if held and story.alertable:
        # Another feed's fresh sighting (or a rewrite) alerted it after all.
        items.append(
            ReplyItem(
                f"Not alerted when first seen: {held}; alerted later, when another feed "
                "listed it or its text changed."
            )
        )
        held = ""
    elif held:
        items.append(ReplyItem(f"Not alerted: {held}."))
    told = len(items)

    # The cards this person may see, then each query they may see that has no card here.
    carded: set[str] = set()
    mine_carded = False
    for delivery in deliveries:
        carded.update(delivery.watchlists)
        if delivery.subscriber == viewer.subscriber:
            mine_carded = True
        matched = ", ".join(delivery.matched)
        items.append(
            ReplyItem(
                f"{_whose(delivery, viewer)} → {delivery.target}: "
                f"{_card(delivery, story, settings)}",
                detail=f"matched {matched}" if matched else "",
            )
        )

    # Every query this person may see that has no card here, judged in one pass.
    judged: list[tuple[str, str, bool]] = []  # (who, query, whether its card is listed above)
    for watchlist in await store.list_watchlists():
        visible = viewer.admin or any(viewer.may_see(c) for c in watchlist.channels)
        if visible and watchlist.name not in carded:
            judged.append((f"Watchlist {watchlist.name}", watchlist.query, False))
    for subscription in await store.list_subscriptions(viewer.subscriber):
        judged.append((f"Your subscription {subscription.query}", subscription.query, mine_carded))
    verdicts = await asyncio.to_thread(_verdicts, [q for _, q, _ in judged], story, held)
    for (who, _, has_card), (matches, verdict) in zip(judged, verdicts, strict=True):
        if not (matches and has_card):
            items.append(ReplyItem(f"{who}: {verdict}"))

    if len(items) == told:
        items.append(
            ReplyItem(
                "No watchlist posting to this server and none of your subscriptions "
                "concern this story."
            )
        )
    items.extend(
        ReplyItem(
            f"{'Also has those words' if every else 'Also close'}: {other.title}",
            safe_link(other.story.link),
            f"{other.story.feed} · {_when(other.first_seen)}",
        )
        for other, every in zip(found.others, found.others_exact, strict=True)
    )
    return Reply(head, tuple(items))


def _verdicts(queries: Sequence[str], story: StoredStory, held: str) -> list[tuple[bool, str]]:
    """Per query: whether it matches the story, and what to say of a query without a card."""
    parsed_ok: dict[int, Query] = {}
    verdicts: dict[int, tuple[bool, str]] = {}
    for index, text in enumerate(queries):
        try:
            parsed_ok[index] = parsed(text)
        except QueryError:
            verdicts[index] = (False, "its query does not parse, so it alerts nobody until fixed")
    reasons = failing_parts(list(parsed_ok.values()), story)
    for index, reason in zip(parsed_ok, reasons, strict=True):
        if reason is not None:
            verdicts[index] = (False, f"did not match: {reason}")
        elif held:
            verdicts[index] = (True, f"matches, but no card: {held}")
        else:
            # The stored text matches but the story has no card for it: the query was made or
            # changed after the story was seen, or matched only a later rewrite of the text.
            verdicts[index] = (
                True,
                "matches the story as it reads now, but did not when it was seen "
                "(the query is newer)",
            )
    return [verdicts[index] for index in range(len(queries))]

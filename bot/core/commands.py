"""Chat commands, once for every platform. The platforms only translate: each parses its own
input into these calls, decides who is an admin from its own data, and renders the Reply.

Which commands there are, their arguments and who may run them is declared in
bot.core.catalog, which also checks that an admin-only command comes from an admin before it
calls a handler here; the admins' handlers are in admin_commands.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.core.admin_commands import URL_LIMIT, AdminCommands
from bot.core.cluster import Coordinator
from bot.core.destinations import Destinations
from bot.core.durations import format_duration
from bot.core.explain import Viewer, WhySettings, explain, no_channel
from bot.core.matcher import Matcher
from bot.core.models import DigestMode, StoredStory
from bot.core.ports import ParsedFeed
from bot.core.query import Query, QueryCost, QueryError, query_cost
from bot.core.quiet import SettingError, describe, updated
from bot.core.replies import (
    MAX_HOURS,
    MAX_LIMIT,
    NAME_LIMIT,
    Actor,
    Reply,
    ReplyItem,
    ago,
    hinted,
    query_or_refusal,
    refused,
    story_item,
    window,
    worker_items,
)
from bot.core.routing import QueryBook, parsed
from bot.core.store import CommandStore

# Re-exported: callers have always found these here.
__all__ = [
    "MAX_HOURS",
    "MAX_LIMIT",
    "MAX_SUBSCRIPTIONS",
    "MAX_SUBSCRIPTION_NEAR",
    "MAX_SUBSCRIPTION_TERMS",
    "NAME_LIMIT",
    "URL_LIMIT",
    "Actor",
    "CommandSettings",
    "CommandStore",
    "Commands",
    "Home",
    "Reply",
    "ReplyItem",
    "Services",
    "refused",
]

log = logging.getLogger(__name__)

MAX_SUBSCRIPTIONS = 50
# What one person's subscriptions may cost together (see query.query_cost): enough for fifty
# ordinary ones, not for fifty lists of the commonest words on both sides of a NEAR.
MAX_SUBSCRIPTION_TERMS = 250
MAX_SUBSCRIPTION_NEAR = 10
SCAN_PAGE = 1000
SCAN_LIMIT = 50_000  # stories read for one /recent or /watchlist test


class Services(Protocol):
    """What the commands need from the running bot (implemented by
    bot.runtime.CommandServices)."""

    started_at: datetime
    config_source: str
    destinations: Destinations  # what a watchlist may post to: every platform's channels

    @property
    def last_poll_at(self) -> datetime | None: ...

    async def query_book(self) -> QueryBook: ...

    async def probe_feed(self, url: str, name: str) -> ParsedFeed:
        """Fetch and parse a URL as a chat-added feed would be (address guard included).
        Raises FeedError with the reason."""
        ...

    async def feeds_changed(self) -> None: ...

    def connections(self) -> dict[str, bool | None]:
        """Each chat connection: up, down, or None on standby (another worker of the
        database holds it)."""
        ...


@dataclass
class CommandSettings:
    min_interval: timedelta = timedelta(seconds=30)
    default_interval: timedelta = timedelta(minutes=5)
    subscription_limit: int = MAX_SUBSCRIPTIONS
    subscription_terms: int = MAX_SUBSCRIPTION_TERMS
    subscription_near: int = MAX_SUBSCRIPTION_NEAR
    why: WhySettings = field(default_factory=WhySettings)  # what /why says of max_age and caps


def _cost(text: str) -> QueryCost:
    try:
        return query_cost(parsed(text))
    except QueryError:
        return QueryCost(0, 0)  # left out by the matcher anyway (see routing.QueryBook)


@dataclass(frozen=True, slots=True)
class Home:
    """One person's own page: their subscriptions and the latest stories that matched them."""

    subscriptions: tuple[str, ...]
    stories: tuple[StoredStory, ...]


class Commands(AdminCommands):
    """The handlers. Platforms reach them through bot.core.catalog (Command.run), which checks
    who may run each one first; a handler itself trusts its caller on that."""

    def __init__(
        self,
        store: CommandStore,
        services: Services,
        *,
        clock: Any,
        settings: CommandSettings | None = None,
        cluster: Coordinator | None = None,
    ) -> None:
        self.store = store
        self.services = services
        self.clock = clock
        self.settings = settings or CommandSettings()
        self.cluster = cluster  # the workers sharing the database, when it is shared
        self._subscribing: dict[str, asyncio.Lock] = {}

    # --- helpers -------------------------------------------------------------------------------

    async def _audit(self, actor: Actor, action: str, **detail: Any) -> None:
        await self.store.record_audit(
            actor.key, action, {"by": actor.name or actor.user_id, **detail}, self.clock()
        )

    async def _matching(
        self, query: Any, hours: float, limit: int, *, count_all: bool
    ) -> tuple[list[tuple[StoredStory, tuple[str, ...]]], int | None]:
        """The newest stories of the window that match, newest first: (up to `limit` of them,
        how many match in all - or None when `count_all` is off and the scan stopped early).
        The window is read a page at a time and matched off the event loop, so a long window
        never stalls the chat connections."""
        since = self.clock() - timedelta(hours=hours)
        if query is None:
            # No query: what the desk's watchlists would have alerted.
            matcher: Matcher[Any] = (await self.services.query_book()).matcher
        else:
            matcher = Matcher([(0, query)])
        found: list[tuple[StoredStory, tuple[str, ...]]] = []
        total = 0

        def scan(page: list[StoredStory]) -> bool:
            nonlocal total
            for stored in page:
                matches = matcher.match(stored)
                if not matches:
                    continue
                total += 1
                if len(found) < limit:
                    terms = tuple(dict.fromkeys(t for ts in matches.values() for t in ts))
                    found.append((stored, terms))
                elif not count_all:
                    return False
            return True

        def newest(
            pairs: list[tuple[StoredStory, tuple[str, ...]]],
        ) -> list[tuple[StoredStory, tuple[str, ...]]]:
            # Read in the order we saw them; shown by the time the publisher gives.
            return sorted(
                pairs, key=lambda p: p[0].story.published or p[0].first_seen, reverse=True
            )

        page = await self.store.recent_stories(since, limit=SCAN_PAGE)
        scanned = 0
        while page and scanned < SCAN_LIMIT:
            scanned += len(page)
            if not await asyncio.to_thread(scan, page):
                return newest(found), None
            if len(page) < SCAN_PAGE:
                break
            page = await self.store.recent_stories(since, limit=SCAN_PAGE, after=page[-1])
        return newest(found), total

    def _over_budget(self, mine: Sequence[Any], query: Query) -> Reply | None:
        """A person's subscriptions together may cost the matcher only so much per story."""
        limits = self.settings
        if len(mine) >= limits.subscription_limit:
            return refused(
                f"You have {len(mine)} subscriptions, the most allowed; remove one first."
            )
        costs = [_cost(s.query) for s in mine]
        cost = query_cost(query)
        terms = sum(c.terms for c in costs) + cost.terms
        if terms > limits.subscription_terms:
            return refused(
                f"Your subscriptions would look for {terms} words and phrases in all; the limit "
                f"is {limits.subscription_terms}. Remove or shorten one first."
            )
        near = sum(c.near for c in costs) + cost.near
        if cost.near and near > limits.subscription_near:
            return refused(
                f"Your subscriptions would use NEAR {near} times in all; the limit is "
                f"{limits.subscription_near}. Remove one that uses NEAR first."
            )
        return None

    # --- everyone ------------------------------------------------------------------------------

    async def subscribe(
        self,
        actor: Actor,
        query: str | None = None,
        timezone: str | None = None,
        quiet: str | None = None,
        urgent: str | None = None,
        mode: str | None = None,
        at: str | None = None,
    ) -> Reply:
        """A new subscription, new delivery settings (bot.core.quiet), or both. Everything
        typed is checked before anything is written: a bad value changes nothing."""
        typed = {"timezone": timezone, "quiet": quiet, "urgent": urgent, "mode": mode, "at": at}
        changes = {name: value for name, value in typed.items() if value is not None}
        wanted = None
        if query is not None and query.strip():
            words = query.split()
            if len(words) == 2 and words[0].lower() in typed:
                # "quiet 22:00-07:00" typed as the query (where options are typed, they are
                # --flags): subscribing to those words is never what was meant.
                name = words[0].lower()
                return refused(
                    f"{query.strip()!r} looks like the {name} setting, not a query: give it as "
                    f"the {name} option (typed as --{name} {words[1]}). Nothing was changed."
                )
            wanted, error = query_or_refusal(query)
            if error:
                return error
        elif not changes:
            return refused(
                "Give a query to subscribe to, or a setting (timezone, quiet, urgent, mode, at), "
                'e.g. a query "North Korea" OR Pyongyang, or the quiet option with 22:00-07:00 '
                "(typed as --quiet 22:00-07:00)."
            )
        settings = None
        if changes:
            try:
                current = (await self.store.subscriber_settings([actor.key])).get(actor.key)
                settings = updated(current, **changes)
            except SettingError as exc:
                return refused(f"{exc} Nothing was changed.")
        lines = []
        if wanted is not None:
            # One subscribe at a time per person: the limits below are checked and the row
            # written as one step, so a burst of concurrent commands cannot slip past them.
            async with self._subscribing.setdefault(actor.key, asyncio.Lock()):
                mine = await self.store.list_subscriptions(actor.key)
                if refusal := self._over_budget(mine, wanted):
                    return refusal
                # The store counts and inserts in one statement too: the cap holds even for a
                # second process writing to the same database.
                added = await self.store.add_subscription(
                    actor.key, wanted.text, self.clock(), limit=self.settings.subscription_limit
                )
            if added:
                await self._audit(actor, "subscribe", query=wanted.text)
                lines.append(
                    hinted(
                        f"Subscribed. Stories matching {wanted.text} will come to you by "
                        "direct message.",
                        wanted,
                    )
                )
            else:
                lines.append(f"You are already subscribed to: {wanted.text}")
        if settings is not None:
            await self.store.set_subscriber_settings(actor.key, settings, self.clock())
            await self._audit(actor, "subscribe settings", **changes)
            lines.append(f"Your delivery settings: {describe(settings)}.")
            if timezone is None and settings.timezone == "UTC" and (quiet or at):
                lines.append("Times are UTC until you set your time zone, e.g. Europe/London.")
            if at is not None and settings.mode is not DigestMode.DAILY:
                lines.append("The daily digest's time applies once your mode is daily.")
        return Reply("\n".join(lines))

    async def unsubscribe(self, actor: Actor, query: str) -> Reply:
        text = (query or "").strip()
        # As typed too: a subscription stored with its spaces by an earlier version.
        removed = await self.store.remove_subscription(actor.key, text) or (
            bool(query) and query != text and await self.store.remove_subscription(actor.key, query)
        )
        if not removed:
            mine = [s.query for s in await self.store.list_subscriptions(actor.key)]
            hint = f" Yours: {'; '.join(mine)}" if mine else " You have none."
            return refused(f"You have no subscription {text!r}.{hint}")
        await self._audit(actor, "unsubscribe", query=text)
        return Reply(f"Unsubscribed from: {text}")

    async def subscriptions(self, actor: Actor) -> Reply:
        mine = await self.store.list_subscriptions(actor.key)
        settings = (await self.store.subscriber_settings([actor.key])).get(actor.key)
        # Shown once the person has set any: how and when their cards come.
        shown = (ReplyItem("Delivery settings", detail=describe(settings)),) if settings else ()
        if not mine:
            return Reply(
                "You have no subscriptions. Add one with subscribe, e.g. "
                '"North Korea" OR Pyongyang.',
                shown,
            )
        return Reply(
            f"Your subscriptions ({len(mine)}):", (*(ReplyItem(s.query) for s in mine), *shown)
        )

    async def subscription_choices(self, actor: Actor, typed: str) -> list[str]:
        typed = (typed or "").casefold()
        mine = await self.store.list_subscriptions(actor.key)
        return [s.query for s in mine if typed in s.query.casefold()][:25]

    async def home(self, actor: Actor, stories: int) -> Home:
        subscriber = actor.key
        mine = await self.store.list_subscriptions(subscriber)
        latest = await self.store.recent_for_subscriber(subscriber, stories)
        return Home(tuple(s.query for s in mine), tuple(latest))

    async def recent(
        self,
        actor: Actor,
        query: str | None = None,
        hours: float | None = None,
        limit: int | None = None,
    ) -> Reply:
        hours, limit, error = window(hours, limit)
        if error:
            return error
        wanted = None
        if query and query.strip():
            wanted, error = query_or_refusal(query)
            if error:
                return error
        found, total = await self._matching(wanted, hours, limit, count_all=False)
        what = f"matching {wanted.text}" if wanted else "matching the watchlists"
        span = format_duration(timedelta(hours=hours))
        if not found:
            return Reply(f"No stories {what} in the last {span}.")
        head = f"{total} stories" if total is not None else f"The newest {len(found)} stories"
        return Reply(
            f"{head} {what} in the last {span}:",
            tuple(story_item(s, terms) for s, terms in found),
        )

    async def why(self, actor: Actor, story: str) -> Reply:
        """What happened to a story and why. Admins see every watchlist and card; anyone else
        those of their own server's channels and their own subscriptions."""
        viewer = Viewer(actor.key, actor.is_admin, actor.sees or no_channel)
        return await explain(self.store, story or "", viewer, self.settings.why, self.clock())

    async def status(self, actor: Actor) -> Reply:
        now = self.clock()
        feeds = await self.store.list_feeds()
        failing = [f for f in feeds if f.failures]
        healthy = [f for f in feeds if not f.failures and f.last_success_at]
        counts = await self.store.delivery_counts()
        connections = self.services.connections()
        items = [
            ReplyItem(f"Up for {format_duration(now - self.services.started_at) or '0s'}"),
            ReplyItem(
                f"Feeds: {len(healthy)} healthy, {len(failing)} failing, "
                f"{len(feeds) - len(healthy) - len(failing)} not polled yet"
            ),
            ReplyItem(f"Last poll: {ago(self.services.last_poll_at, now)}"),
            ReplyItem(
                f"Deliveries: {counts.get('pending', 0)} pending, "
                f"{counts.get('sent', 0)} sent, {counts.get('failed', 0)} failed"
            ),
        ]
        if connections:
            items.append(
                ReplyItem(
                    "Connections: "
                    + ", ".join(
                        f"{name} {'standby' if up is None else 'up' if up else 'DOWN'}"
                        for name, up in connections.items()
                    )
                )
            )
        if self.cluster is not None:
            items += worker_items(
                await self.cluster.workers(), self.cluster.worker, self.cluster.takeovers, now
            )
        items.extend(ReplyItem(f"Failing: {f.name}", detail=f.last_error or "") for f in failing)
        skipped = (await self.services.query_book()).skipped
        if skipped:
            items.append(
                ReplyItem(f"Skipped queries: {len(skipped)} (they alert nobody until fixed)")
            )
            if actor.is_admin:  # whose they are is for admins
                items.extend(
                    ReplyItem(f"Skipped: {q.what}", detail=f"{q.reason} · {q.query[:100]}")
                    for q in skipped
                )
        return Reply("newsbot status", tuple(items))

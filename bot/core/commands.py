"""Chat commands, once for every platform. Discord and Slack only translate: they parse their own
input into these calls, decide who is an admin from their own data, and render the Reply.

Replies carry plain text only; each platform escapes it for its own markup, so a headline can
never turn into a mention or a link in a reply."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.core.durations import format_duration, parse_duration
from bot.core.identity import safe_link
from bot.core.matcher import Matcher
from bot.core.models import FeedSpec, FeedState, Origin, StoredStory, valid_channel
from bot.core.ports import FeedError, ParsedFeed
from bot.core.query import Query, QueryCost, QueryError, parse_query, query_cost
from bot.core.routing import QueryBook, parsed

log = logging.getLogger(__name__)

NAME_LIMIT = 100
URL_LIMIT = 2000
MAX_HOURS = 24 * 7
MAX_LIMIT = 25
MAX_SUBSCRIPTIONS = 50
# What one person's subscriptions may cost together (see query.query_cost): enough for fifty
# ordinary ones, not for fifty lists of the commonest words on both sides of a NEAR.
MAX_SUBSCRIPTION_TERMS = 250
MAX_SUBSCRIPTION_NEAR = 10
SCAN_PAGE = 1000
SCAN_LIMIT = 50_000  # stories read for one /recent or /watchlist test
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking. `is_admin` is decided by the platform from its own data, server side."""

    platform: str
    user_id: str
    name: str = ""
    is_admin: bool = False

    @property
    def key(self) -> str:
        return f"{self.platform}:{self.user_id}"


@dataclass(frozen=True, slots=True)
class ReplyItem:
    text: str
    url: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    text: str
    items: tuple[ReplyItem, ...] = ()
    code: str | None = None  # shown in a monospace block (a query's error with its caret)
    ok: bool = True
    ephemeral: bool = True


class CommandStore(Protocol):
    async def add_subscription(
        self, subscriber: str, query: str, now: datetime, *, limit: int | None = ...
    ) -> bool: ...
    async def remove_subscription(self, subscriber: str, query: str) -> bool: ...
    async def list_subscriptions(self, subscriber: str | None = None) -> list[Any]: ...
    async def recent_stories(
        self, since: datetime, *, limit: int = ..., after: StoredStory | None = ...
    ) -> list[StoredStory]: ...
    async def list_watchlists(self) -> list[Any]: ...
    async def get_watchlist(self, name: str) -> Any: ...
    async def add_watchlist(
        self, name: str, query: str, channels: Sequence[str], created_by: str, now: datetime
    ) -> Any: ...
    async def update_watchlist(
        self,
        name: str,
        *,
        query: str | None = ...,
        channels: Sequence[str] | None = ...,
        now: datetime,
    ) -> bool: ...
    async def remove_watchlist(self, name: str) -> bool: ...
    async def list_feeds(self) -> list[FeedState]: ...
    async def get_feed(self, name: str) -> FeedState | None: ...
    async def find_feed_by_url(self, url: str) -> FeedState | None: ...
    async def add_feed(self, spec: FeedSpec, created_by: str, now: datetime) -> FeedState: ...
    async def remove_feed(self, name: str) -> bool: ...
    async def stories_per_feed(self, since: datetime) -> dict[int, int]: ...
    async def delivery_counts(self) -> dict[str, int]: ...
    async def record_audit(
        self, actor: str, action: str, detail: dict[str, Any], now: datetime
    ) -> None: ...
    async def recent_for_subscriber(self, subscriber: str, limit: int) -> list[StoredStory]: ...


class Services(Protocol):
    """What the commands need from the running bot (implemented by bot.app.NewsBot)."""

    started_at: datetime
    last_poll_at: datetime | None
    config_source: str

    async def query_book(self) -> QueryBook: ...

    async def probe_feed(self, url: str, name: str) -> ParsedFeed:
        """Fetch and parse a URL as a chat-added feed would be (address guard included).
        Raises FeedError with the reason."""
        ...

    async def feeds_changed(self) -> None: ...

    def connections(self) -> dict[str, bool]: ...


@dataclass
class CommandSettings:
    min_interval: timedelta = timedelta(seconds=30)
    default_interval: timedelta = timedelta(minutes=5)
    subscription_limit: int = MAX_SUBSCRIPTIONS
    subscription_terms: int = MAX_SUBSCRIPTION_TERMS
    subscription_near: int = MAX_SUBSCRIPTION_NEAR


def refused(text: str) -> Reply:
    return Reply(text, ok=False)


def _clean_name(raw: str | None, what: str) -> tuple[str | None, Reply | None]:
    name = " ".join((raw or "").split())
    if not name:
        return None, refused(f"Give the {what} a name.")
    if len(name) > NAME_LIMIT or _CONTROL.search(name):
        return None, refused(f"A {what} name is at most {NAME_LIMIT} plain characters.")
    return name, None


def _cost(text: str) -> QueryCost:
    try:
        return query_cost(parsed(text))
    except QueryError:
        return QueryCost(0, 0)  # left out by the matcher anyway (see routing.QueryBook)


def _hinted(text: str, query: Query) -> str:
    """A reply about a valid query, with the parser's advice when it is probably not what was
    meant (`putin or kremlin` is a phrase)."""
    return "\n".join([text, *(f"Note: {hint}" for hint in query.hints)])


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 90:
        return f"{seconds}s ago"
    if seconds < 5400:
        return f"{seconds // 60}m ago"
    if seconds < 172800:
        return f"{seconds // 3600}h ago"
    return f"{seconds // 86400}d ago"


def _story_item(stored: StoredStory, terms: Sequence[str] = ()) -> ReplyItem:
    story = stored.story
    when = story.published or stored.first_seen
    detail = f"{story.feed} · {when.strftime('%d %b %H:%M UTC')}"
    if terms:
        detail += " · " + ", ".join(terms)
    return ReplyItem(story.title, safe_link(story.link), detail)


class Commands:
    def __init__(
        self,
        store: CommandStore,
        services: Services,
        *,
        clock: Any,
        settings: CommandSettings | None = None,
    ) -> None:
        self.store = store
        self.services = services
        self.clock = clock
        self.settings = settings or CommandSettings()
        self._subscribing: dict[str, asyncio.Lock] = {}

    # --- helpers -------------------------------------------------------------------------------

    def _parse(self, text: str | None) -> tuple[Any, Reply | None]:
        try:
            return parse_query(text or ""), None
        except QueryError as exc:
            return None, Reply("That query does not parse:", code=str(exc), ok=False)

    async def _audit(self, actor: Actor, action: str, **detail: Any) -> None:
        await self.store.record_audit(
            actor.key, action, {"by": actor.name or actor.user_id, **detail}, self.clock()
        )

    def _admin_only(self, actor: Actor, what: str) -> Reply | None:
        if actor.is_admin:
            return None
        return refused(
            f"Only admins can {what}. Ask someone with the Manage Server permission "
            "(Discord) or a workspace admin (Slack)."
        )

    def _not_editable(self, kind: str, found: Any, name: str) -> Reply | None:
        """Chat edits only what chat made: config-file entries are the file's."""
        if found is None:
            return refused(f"There is no {kind} {name!r}.")
        if found.origin == Origin.CONFIG:
            return refused(
                f"The {kind} {found.name!r} comes from the config file "
                f"({self.services.config_source}); change it there and restart the bot."
            )
        return None

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

        def newest(pairs: list[tuple[StoredStory, tuple[str, ...]]]) -> list:
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

    @staticmethod
    def _bounds(hours: float | None, limit: int | None) -> tuple[float, int, Reply | None]:
        hours = 24 if hours is None else hours
        limit = 10 if limit is None else limit
        if not 0 < hours <= MAX_HOURS:
            return 0, 0, refused(f"hours must be between 1 and {MAX_HOURS}.")
        if not 1 <= limit <= MAX_LIMIT:
            return 0, 0, refused(f"limit must be between 1 and {MAX_LIMIT}.")
        return hours, limit, None

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

    async def subscribe(self, actor: Actor, query_text: str) -> Reply:
        query, error = self._parse(query_text)
        if error:
            return error
        # One subscribe at a time per person: the limits below are checked and the row written
        # as one step, so a burst of concurrent commands cannot slip past them.
        async with self._subscribing.setdefault(actor.key, asyncio.Lock()):
            mine = await self.store.list_subscriptions(actor.key)
            if refusal := self._over_budget(mine, query):
                return refusal
            # The store counts and inserts in one statement too: the cap holds even for a
            # second process writing to the same database.
            added = await self.store.add_subscription(
                actor.key, query.text, self.clock(), limit=self.settings.subscription_limit
            )
            if not added:
                return Reply(f"You are already subscribed to: {query.text}")
        await self._audit(actor, "subscribe", query=query.text)
        return Reply(
            _hinted(
                f"Subscribed. Stories matching {query.text} will come to you by direct message.",
                query,
            )
        )

    async def unsubscribe(self, actor: Actor, query_text: str) -> Reply:
        text = (query_text or "").strip()
        if not await self.store.remove_subscription(actor.key, text):
            mine = [s.query for s in await self.store.list_subscriptions(actor.key)]
            hint = f" Yours: {'; '.join(mine)}" if mine else " You have none."
            return refused(f"You have no subscription {text!r}.{hint}")
        await self._audit(actor, "unsubscribe", query=text)
        return Reply(f"Unsubscribed from: {text}")

    async def subscriptions(self, actor: Actor) -> Reply:
        mine = await self.store.list_subscriptions(actor.key)
        if not mine:
            return Reply(
                "You have no subscriptions. Add one with subscribe, e.g. "
                '"North Korea" OR Pyongyang.'
            )
        return Reply(f"Your subscriptions ({len(mine)}):", tuple(ReplyItem(s.query) for s in mine))

    async def subscription_choices(self, actor: Actor, typed: str) -> list[str]:
        typed = (typed or "").casefold()
        mine = await self.store.list_subscriptions(actor.key)
        return [s.query for s in mine if typed in s.query.casefold()][:25]

    async def recent(
        self,
        actor: Actor,
        query_text: str | None = None,
        hours: float | None = None,
        limit: int | None = None,
    ) -> Reply:
        hours, limit, error = self._bounds(hours, limit)
        if error:
            return error
        query = None
        if query_text and query_text.strip():
            query, error = self._parse(query_text)
            if error:
                return error
        found, total = await self._matching(query, hours, limit, count_all=False)
        what = f"matching {query.text}" if query else "matching the watchlists"
        span = format_duration(timedelta(hours=hours))
        if not found:
            return Reply(f"No stories {what} in the last {span}.")
        head = f"{total} stories" if total is not None else f"The newest {len(found)} stories"
        return Reply(
            f"{head} {what} in the last {span}:",
            tuple(_story_item(s, terms) for s, terms in found),
        )

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
            ReplyItem(f"Last poll: {_ago(self.services.last_poll_at, now)}"),
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
                        f"{name} {'up' if up else 'DOWN'}" for name, up in connections.items()
                    )
                )
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

    # --- admins: watchlists ---------------------------------------------------------------------

    async def watchlist_add(self, actor: Actor, name: str, query_text: str, channel: str) -> Reply:
        if denied := self._admin_only(actor, "add watchlists"):
            return denied
        name, error = _clean_name(name, "watchlist")
        if error:
            return error
        query, error = self._parse(query_text)
        if error:
            return error
        if not valid_channel(channel):
            return refused(f"{channel!r} is not a channel this bot can post to.")
        existing = await self.store.get_watchlist(name)
        if existing is not None:
            return refused(f"A watchlist named {existing.name!r} already exists; edit it instead.")
        await self.store.add_watchlist(name, query.text, [channel], actor.key, self.clock())
        await self._audit(actor, "watchlist.add", name=name, query=query.text, channel=channel)
        return Reply(
            _hinted(
                f"Watchlist {name!r} added: {query.text} -> {channel}. "
                "It applies from the next poll.",
                query,
            )
        )

    async def watchlist_edit(self, actor: Actor, name: str, query_text: str) -> Reply:
        if denied := self._admin_only(actor, "edit watchlists"):
            return denied
        existing = await self.store.get_watchlist((name or "").strip())
        if refusal := self._not_editable("watchlist", existing, name):
            return refusal
        query, error = self._parse(query_text)
        if error:
            return error
        await self.store.update_watchlist(existing.name, query=query.text, now=self.clock())
        await self._audit(
            actor, "watchlist.edit", name=existing.name, old=existing.query, query=query.text
        )
        return Reply(_hinted(f"Watchlist {existing.name!r} now watches: {query.text}", query))

    async def watchlist_remove(self, actor: Actor, name: str) -> Reply:
        if denied := self._admin_only(actor, "remove watchlists"):
            return denied
        existing = await self.store.get_watchlist((name or "").strip())
        if refusal := self._not_editable("watchlist", existing, name):
            return refusal
        await self.store.remove_watchlist(existing.name)
        await self._audit(actor, "watchlist.remove", name=existing.name, query=existing.query)
        return Reply(f"Watchlist {existing.name!r} removed.")

    async def watchlist_list(self, actor: Actor) -> Reply:
        if denied := self._admin_only(actor, "list watchlists"):
            return denied
        watchlists = await self.store.list_watchlists()
        if not watchlists:
            return Reply("No watchlists yet. Add one with watchlist add.")
        return Reply(
            f"{len(watchlists)} watchlists:",
            tuple(
                ReplyItem(
                    w.name,
                    detail=f"{w.query} -> {', '.join(w.channels)}"
                    + (" (config file)" if w.origin == Origin.CONFIG else ""),
                )
                for w in watchlists
            ),
        )

    async def watchlist_test(
        self, actor: Actor, query_text: str, hours: float | None = None
    ) -> Reply:
        if denied := self._admin_only(actor, "test watchlists"):
            return denied
        hours, limit, error = self._bounds(hours, 10)
        if error:
            return error
        query, error = self._parse(query_text)
        if error:
            return error
        found, total = await self._matching(query, hours, limit, count_all=True)
        total = total or 0
        span = format_duration(timedelta(hours=hours))
        if not found:
            return Reply(
                _hinted(
                    f"{query.text} would have matched no stored story in the last {span}. "
                    "Nothing was saved.",
                    query,
                )
            )
        return Reply(
            _hinted(
                f"{query.text} would have matched {total} stories in the last {span}"
                f"{f' (newest {len(found)} shown)' if total > len(found) else ''}. "
                "Nothing was saved.",
                query,
            ),
            tuple(_story_item(s, terms) for s, terms in found),
        )

    # --- admins: feeds -----------------------------------------------------------------------

    async def feed_add(
        self, actor: Actor, url: str, name: str | None = None, interval: str | None = None
    ) -> Reply:
        if denied := self._admin_only(actor, "add feeds"):
            return denied
        url = (url or "").strip()
        if len(url) > URL_LIMIT or not re.match(r"^https?://[^\s/]+", url, re.IGNORECASE):
            return refused(
                "Give an http:// or https:// feed URL (file:// feeds belong in the config file)."
            )
        every = self.settings.default_interval
        if interval:
            try:
                every = parse_duration(interval)
            except ValueError as exc:
                return refused(str(exc))
            if every < self.settings.min_interval:
                return refused(
                    f"The shortest interval is {format_duration(self.settings.min_interval)}."
                )
        if await self.store.find_feed_by_url(url) is not None:
            return refused("That feed is already polled.")
        try:
            parsed = await self.services.probe_feed(url, name or url)
        except FeedError as exc:
            return refused(f"Not added: {exc}")
        name, error = _clean_name(name or parsed.title or url, "feed")
        if error:
            return error
        if await self.store.get_feed(name) is not None:
            return refused(f"A feed named {name!r} already exists; pick another name.")
        await self.store.add_feed(FeedSpec(name, url, every, Origin.CHAT), actor.key, self.clock())
        await self._audit(actor, "feed.add", name=name, url=url, interval=format_duration(every))
        await self.services.feeds_changed()
        newest = parsed.stories[:3]
        return Reply(
            f"Feed {name!r} added: {len(parsed.stories)} stories found, polled every "
            f"{format_duration(every)}. Its first poll records what is there without alerting.",
            tuple(ReplyItem(s.title, safe_link(s.link)) for s in newest),
        )

    async def feed_remove(self, actor: Actor, name: str) -> Reply:
        if denied := self._admin_only(actor, "remove feeds"):
            return denied
        feed = await self.store.get_feed((name or "").strip())
        if refusal := self._not_editable("feed", feed, name):
            return refusal
        await self.store.remove_feed(feed.name)
        await self._audit(actor, "feed.remove", name=feed.name, url=feed.url)
        await self.services.feeds_changed()
        return Reply(f"Feed {feed.name!r} removed.")

    async def feed_list(self, actor: Actor) -> Reply:
        if denied := self._admin_only(actor, "list feeds"):
            return denied
        now = self.clock()
        feeds = await self.store.list_feeds()
        if not feeds:
            return Reply("No feeds yet. Add one with feed add.")
        per_feed = await self.store.stories_per_feed(now - timedelta(days=1))
        items = []
        for feed in feeds:
            if feed.failures:
                health = f"FAILING x{feed.failures}: {feed.last_error}"
            elif feed.last_success_at:
                health = "ok"
            else:
                health = "not polled yet"
            items.append(
                ReplyItem(
                    feed.name,
                    detail=f"{health} · last success {_ago(feed.last_success_at, now)} · "
                    f"{per_feed.get(feed.id, 0)} stories in 24h · every "
                    f"{format_duration(feed.interval)}"
                    + (" · config file" if feed.origin == Origin.CONFIG else ""),
                )
            )
        return Reply(f"{len(feeds)} feeds:", tuple(items))

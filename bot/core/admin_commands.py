"""The admins' chat commands: the desk's watchlists and feeds.

Mixed into bot.core.commands.Commands, whose store, services, clock, settings and two helpers
(`_audit`, `_matching`) these handlers use; kept in a file of their own so
that neither half grows past a readable size. Who may run them is declared in bot.core.catalog
and checked there, before a handler runs."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from bot.core import latency
from bot.core.durations import format_duration, parse_duration
from bot.core.identity import safe_link
from bot.core.models import UPDATE_MODES, FeedSpec, FeedState, Origin, PingWhen, Updates, Watchlist
from bot.core.pings import PingError, parse_pings
from bot.core.ports import FeedError
from bot.core.replies import (
    Actor,
    Reply,
    ReplyItem,
    ago,
    clean_name,
    hinted,
    query_or_refusal,
    refused,
    story_item,
    window,
)
from bot.core.text import truncate

if TYPE_CHECKING:
    from bot.core.commands import CommandSettings, CommandStore, Services
    from bot.core.models import StoredStory

URL_LIMIT = 2000
# /feed list: a failing feed's error is cut to this many characters, and a page holds as many
# feeds as fit in PAGE_CHARACTERS (and at most PAGE_FEEDS): with the header and each
# platform's markup, a page stays inside the strictest platform's 2,000 characters.
ERROR_SHOWN = 120
PAGE_CHARACTERS = 1400
PAGE_FEEDS = 10

# What a reply adds about a watchlist's updates mode.
_UPDATES_SAID = {
    Updates.EDIT: "",
    Updates.THREAD: (
        ", updates posted as replies in a thread under each card, which names every feed "
        "that carries the story"
    ),
}

_UPDATES_NOW = {
    Updates.EDIT: "edits its cards in place when a story is updated",
    Updates.THREAD: (
        "posts updates as replies in a thread under each card, which names every feed that "
        "carries the story"
    ),
}


def _updates_mode(value: str | None) -> Updates | Reply | None:
    """The `updates` option as given (None: not given), or why it is refused."""
    if value is None or not value.strip():
        return None
    word = value.strip().casefold()
    if word not in UPDATE_MODES:
        return refused(
            f"updates must be {' or '.join(repr(m) for m in UPDATE_MODES)}, "
            f"not {value.strip()[:40]!r}."
        )
    return Updates(word)


_Entry = TypeVar("_Entry", Watchlist, FeedState)  # what chat may edit


class AdminCommands:
    store: CommandStore
    services: Services
    settings: CommandSettings
    clock: Any

    if TYPE_CHECKING:  # defined by Commands, shared with everyone's handlers

        async def _audit(self, actor: Actor, action: str, **detail: Any) -> None: ...

        async def _matching(
            self, query: Any, hours: float, limit: int, *, count_all: bool
        ) -> tuple[list[tuple[StoredStory, tuple[str, ...]]], int | None]: ...

    def _editable(self, kind: str, found: _Entry | None, name: str) -> _Entry | Reply:
        """What chat may edit, or why not: chat edits only what chat made (config-file entries
        are the file's)."""
        if found is None:
            return refused(f"There is no {kind} {name!r}.")
        if found.origin == Origin.CONFIG:
            return refused(
                f"The {kind} {found.name!r} comes from the config file "
                f"({self.services.config_source}); change it there and restart the bot."
            )
        return found

    # --- watchlists ----------------------------------------------------------------------------

    async def watchlist_add(
        self, actor: Actor, name: str, query: str, channel: str, updates: str | None = None
    ) -> Reply:
        cleaned = clean_name(name, "watchlist")
        if isinstance(cleaned, Reply):
            return cleaned
        name = cleaned
        parsed, error = query_or_refusal(query)
        if error:
            return error
        mode = _updates_mode(updates)
        if isinstance(mode, Reply):
            return mode
        if not self.services.destinations.is_channel(channel or ""):
            return refused(f"{channel!r} is not a channel this bot can post to.")
        existing = await self.store.get_watchlist(name)
        if existing is not None:
            return refused(f"A watchlist named {existing.name!r} already exists; edit it instead.")
        mode = mode or Updates.EDIT
        await self.store.add_watchlist(
            name, parsed.text, [channel], actor.key, self.clock(), updates=mode
        )
        detail: dict[str, Any] = {"name": name, "query": parsed.text, "channel": channel}
        if mode != Updates.EDIT:
            detail["updates"] = str(mode)
        await self._audit(actor, "watchlist.add", **detail)
        return Reply(
            hinted(
                f"Watchlist {name!r} added: {parsed.text} -> {channel}"
                f"{_UPDATES_SAID[mode]}. It applies from the next poll.",
                parsed,
            )
        )

    async def watchlist_edit(
        self, actor: Actor, name: str, query: str | None = None, updates: str | None = None
    ) -> Reply:
        existing = self._editable(
            "watchlist", await self.store.get_watchlist(" ".join((name or "").split())), name
        )
        if isinstance(existing, Reply):
            return existing
        mode = _updates_mode(updates)
        if isinstance(mode, Reply):
            return mode
        if not (query or "").strip() and mode is None:
            return refused(
                "Give the watchlist's new query, its updates mode "
                f"({' or '.join(UPDATE_MODES)}), or both."
            )
        parsed = None
        if (query or "").strip():
            parsed, error = query_or_refusal(query or "")
            if error:
                return error
        await self.store.update_watchlist(
            existing.name,
            query=parsed.text if parsed else None,
            updates=mode,
            now=self.clock(),
        )
        detail: dict[str, Any] = {"name": existing.name}
        said = []
        if parsed is not None:
            detail.update(old=existing.query, query=parsed.text)
            said.append(f"Watchlist {existing.name!r} now watches: {parsed.text}")
        if mode is not None:
            detail.update(old_updates=str(existing.updates), updates=str(mode))
            who = "It" if said else f"Watchlist {existing.name!r}"
            said.append(f"{who} now {_UPDATES_NOW[mode]}")
        await self._audit(actor, "watchlist.edit", **detail)
        text = ". ".join(said)
        return Reply(hinted(text, parsed) if parsed else text + ".")

    async def watchlist_ping(self, actor: Actor, name: str, pings: str) -> Reply:
        """Who the watchlist's cards ping, and when: "role:<id> user:<id> ..." (what each
        platform can send: Destinations.check_ping), "urgent" or "always" (when), or "off".
        Admins only (the catalog checks it): a ping reaches people who did not ask for it."""
        existing = self._editable(
            "watchlist", await self.store.get_watchlist(" ".join((name or "").split())), name
        )
        if isinstance(existing, Reply):
            return existing
        entries: list[str] = []
        when: PingWhen | None = None
        off = False
        for word in (pings or "").replace(",", " ").split():
            folded = word.lower()
            if folded in (PingWhen.URGENT, PingWhen.ALWAYS):
                when = PingWhen(folded)
            elif folded in ("off", "none", "nobody"):
                off = True
            else:
                entries.append(word)
        destinations = self.services.destinations
        example = "e.g. `role:123456789012345678 urgent`, `usergroup:S0123ABCD always` or `off`"
        if off and entries:
            return refused(f"Give who to ping, or off, not both ({example}).")
        if not off and not entries and when is None:
            return refused(f"Say who to ping ({destinations.ping_help}), and when; {example}.")
        try:
            checked = [str(destinations.check_ping(entry)) for entry in entries]
            ping = [str(p) for p in parse_pings(checked)]
        except PingError as exc:
            return refused(f"{exc}.")
        if not off and not ping:  # only "when" changes
            if not existing.ping:
                return refused(f"{existing.name!r} pings nobody yet: say who ({example}).")
            ping = list(existing.ping)
        when = when or existing.ping_when
        await self.store.update_watchlist(
            existing.name, ping=ping, ping_when=when, now=self.clock()
        )
        await self._audit(
            actor,
            "watchlist.ping",
            name=existing.name,
            old=[*existing.ping, existing.ping_when.value],
            ping=ping,
            ping_when=when.value,
        )
        if not ping:
            return Reply(f"Watchlist {existing.name!r} pings nobody now.")
        return Reply(
            f"Watchlist {existing.name!r} now pings {', '.join(ping)} "
            + ("on every new card." if when == PingWhen.ALWAYS else "on urgent stories only.")
            + " Only these are ever mentioned; an updated card does not ping again."
        )

    async def watchlist_remove(self, actor: Actor, name: str) -> Reply:
        existing = self._editable(
            "watchlist", await self.store.get_watchlist(" ".join((name or "").split())), name
        )
        if isinstance(existing, Reply):
            return existing
        await self.store.remove_watchlist(existing.name)
        await self._audit(actor, "watchlist.remove", name=existing.name, query=existing.query)
        return Reply(f"Watchlist {existing.name!r} removed.")

    async def watchlist_list(self, actor: Actor) -> Reply:
        watchlists = await self.store.list_watchlists()
        if not watchlists:
            return Reply("No watchlists yet. Add one with watchlist add.")
        return Reply(
            f"{len(watchlists)} watchlists:",
            tuple(
                ReplyItem(
                    w.name,
                    detail=f"{w.query} -> {', '.join(w.channels)}"
                    + (" · updates in a thread" if w.updates == Updates.THREAD else "")
                    + (f" · pings {', '.join(w.ping)} ({w.ping_when})" if w.ping else "")
                    + (" (config file)" if w.origin == Origin.CONFIG else ""),
                )
                for w in watchlists
            ),
        )

    async def watchlist_test(self, actor: Actor, query: str, hours: float | None = None) -> Reply:
        hours, limit, error = window(hours, 10)
        if error:
            return error
        parsed, error = query_or_refusal(query)
        if error:
            return error
        found, total = await self._matching(parsed, hours, limit, count_all=True)
        total = total or 0
        span = format_duration(timedelta(hours=hours))
        if not found:
            return Reply(
                hinted(
                    f"{parsed.text} would have matched no stored story in the last {span}. "
                    "Nothing was saved.",
                    parsed,
                )
            )
        return Reply(
            hinted(
                f"{parsed.text} would have matched {total} stories in the last {span}"
                f"{f' (newest {len(found)} shown)' if total > len(found) else ''}. "
                "Nothing was saved.",
                parsed,
            ),
            tuple(story_item(s, terms) for s, terms in found),
        )

    # --- feeds ---------------------------------------------------------------------------------

    async def feed_add(
        self, actor: Actor, url: str, name: str | None = None, interval: str | None = None
    ) -> Reply:
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
            probed = await self.services.probe_feed(url, name or url)
        except FeedError as exc:
            return refused(f"Not added: {exc}")
        cleaned = clean_name(name or probed.title or url, "feed")
        if isinstance(cleaned, Reply):
            return cleaned
        name = cleaned
        if await self.store.get_feed(name) is not None:
            return refused(f"A feed named {name!r} already exists; pick another name.")
        # Its own interval is a fixed override; without one it follows its publishing rate.
        spec = FeedSpec(name, url, every, Origin.CHAT, fixed=bool(interval))
        await self.store.add_feed(spec, actor.key, self.clock())
        await self._audit(actor, "feed.add", name=name, url=url, interval=format_duration(every))
        await self.services.feeds_changed()
        newest = probed.stories[:3]
        return Reply(
            f"Feed {name!r} added: {len(probed.stories)} stories found, polled every "
            f"{format_duration(every)}"
            f"{'' if interval else ' until its publishing rate is known'}. "
            "Its first poll records what is there without alerting.",
            tuple(ReplyItem(s.title, safe_link(s.link)) for s in newest),
        )

    async def feed_remove(self, actor: Actor, name: str) -> Reply:
        feed = self._editable(
            "feed", await self.store.get_feed(" ".join((name or "").split())), name
        )
        if isinstance(feed, Reply):
            return feed
        await self.store.remove_feed(feed.name)
        await self._audit(actor, "feed.remove", name=feed.name, url=feed.url)
        await self.services.feeds_changed()
        return Reply(f"Feed {feed.name!r} removed.")

    async def feed_list(self, actor: Actor, page: int | None = None) -> Reply:
        """Each feed's health and the latency its stories reach the desk with (bot.core.latency),
        in pages that fit the strictest platform's message."""
        now = self.clock()
        feeds = await self.store.list_feeds()
        if not feeds:
            return Reply("No feeds yet. Add one with feed add.")
        per_feed = await self.store.stories_per_feed(now - timedelta(days=1))
        summary = latency.summarise(
            await self.store.card_timings(now - latency.WINDOW),
            await self.store.shared_stories(now - latency.WINDOW),
        )
        items = []
        for feed in feeds:
            if feed.failures:
                error = truncate(feed.last_error or "", ERROR_SHOWN)
                health = f"FAILING x{feed.failures}: {error}"
            elif feed.last_success_at:
                health = "ok"
            else:
                health = "not polled yet"
            items.append(
                ReplyItem(
                    feed.name,
                    detail=f"{health} · last success {ago(feed.last_success_at, now)} · "
                    f"{per_feed.get(feed.id, 0)} stories in 24h · {feed.describe_polling()}"
                    + (" · config file" if feed.origin == Origin.CONFIG else "")
                    + f" · {latency.feed_line(summary.per_feed.get(feed.id))}",
                )
            )
        pages = _pages(items)
        wanted = 1 if page is None else page
        if not 1 <= wanted <= len(pages):
            return refused(
                f"There are {len(pages)} pages of feeds; ask for page 1 to {len(pages)}."
            )
        head = f"{len(feeds)} feeds"
        if len(pages) > 1:
            head += f", page {wanted} of {len(pages)}"
            if wanted < len(pages):
                head += f" (ask for page {wanted + 1} for the next)"
        return Reply(f"{head}: {latency.summary_line(summary)}", pages[wanted - 1])


def _pages(items: list[ReplyItem]) -> list[tuple[ReplyItem, ...]]:
    """Items in pages of at most PAGE_FEEDS, each as many as fit in PAGE_CHARACTERS (a page
    holds one item at least, however long)."""
    pages: list[tuple[ReplyItem, ...]] = []
    page: list[ReplyItem] = []
    used = 0
    for item in items:
        size = len(item.text) + len(item.detail) + 8  # a bullet, a dash, a line break
        if page and (used + size > PAGE_CHARACTERS or len(page) >= PAGE_FEEDS):
            pages.append(tuple(page))
            page, used = [], 0
        page.append(item)
        used += size
    pages.append(tuple(page))
    return pages

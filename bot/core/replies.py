"""What a chat command is asked by and answers with: the Actor, the Reply, and how a reply words
stories, times and queries. Shared by the handlers in commands.py and admin_commands.py (a module
of its own so that neither imports the other's half).

Replies carry plain text only; each platform escapes it for its own markup, so a headline can
never turn into a mention or a link in a reply."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.cluster import WorkerRow
from bot.core.identity import safe_link
from bot.core.models import StoredStory
from bot.core.query import Query, QueryError, parse_query

NAME_LIMIT = 100
MAX_HOURS = 24 * 7
MAX_LIMIT = 25
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking. `is_admin` is decided by the platform from its own data, server side;
    `admin_hint` says, in the platform's own words, whom to ask when a command is for admins."""

    platform: str
    user_id: str
    name: str = ""
    is_admin: bool = False
    admin_hint: str = ""
    # Whether a channel ("<platform>:<id>") belongs to the server or workspace the person asks
    # from, as the platform knows it: /why shows a member only those channels' watchlists.
    # None: no channel is theirs (a direct message, say).
    sees: Callable[[str], bool] | None = field(default=None, compare=False)

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


def refused(text: str) -> Reply:
    return Reply(text, ok=False)


def query_or_refusal(text: str | None) -> tuple[Any, Reply | None]:
    """The parsed query, or the refusal that shows where it does not parse. Surrounding spaces
    are not part of it: a query is stored, listed and removed as the same text."""
    try:
        return parse_query((text or "").strip()), None
    except QueryError as exc:
        return None, Reply("That query does not parse:", code=str(exc), ok=False)


def window(hours: float | None, limit: int | None) -> tuple[float, int, Reply | None]:
    """How far back and how many stories to show: the defaults, or a refusal out of bounds."""
    hours = 24 if hours is None else hours
    limit = 10 if limit is None else limit
    if not 0 < hours <= MAX_HOURS:
        return 0, 0, refused(f"hours must be between 1 and {MAX_HOURS}.")
    if not 1 <= limit <= MAX_LIMIT:
        return 0, 0, refused(f"limit must be between 1 and {MAX_LIMIT}.")
    return hours, limit, None


def clean_name(raw: str | None, what: str) -> str | Reply:
    """The name with its spaces tidied, or the refusal to show."""
    name = " ".join((raw or "").split())
    if not name:
        return refused(f"Give the {what} a name.")
    if len(name) > NAME_LIMIT or _CONTROL.search(name):
        return refused(f"A {what} name is at most {NAME_LIMIT} plain characters.")
    return name


def hinted(text: str, query: Query) -> str:
    """A reply about a valid query, with the parser's advice when it is probably not what was
    meant (`putin or kremlin` is a phrase)."""
    return "\n".join([text, *(f"Note: {hint}" for hint in query.hints)])


def ago(moment: datetime | None, now: datetime) -> str:
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


def story_item(stored: StoredStory, terms: Sequence[str] = ()) -> ReplyItem:
    story = stored.story
    when = story.published or stored.first_seen
    detail = f"{story.feed} · {when.strftime('%d %b %H:%M UTC')}"
    if terms:
        detail += " · " + ", ".join(terms)
    return ReplyItem(story.title, safe_link(story.link), detail)


def worker_items(
    rows: Sequence[WorkerRow], me: str, takeovers: int, now: datetime
) -> list[ReplyItem]:
    """/status of the workers sharing the database: each, alive or not, with what it holds."""
    alive = sum(1 for row in rows if row.alive)
    items = [ReplyItem(f"Workers: {alive} alive, {len(rows) - alive} gone")]
    for row in sorted(rows, key=lambda r: (not r.alive, r.started_at)):
        holds = f" · holds {', '.join(row.holds)}" if row.holds else ""
        items.append(
            ReplyItem(
                f"Worker {row.worker}{' (this one)' if row.worker == me else ''}",
                detail=(
                    f"{'alive' if row.alive else 'gone'}, seen {ago(row.seen_at, now)} · "
                    f"{row.feeds} feeds leased · {row.destinations} destinations claimed{holds}"
                ),
            )
        )
    items.append(ReplyItem(f"Leases this worker took over from lapsed workers: {takeovers}"))
    return items

"""Block Kit for cards, digests, command replies, notices and the App Home. Pure: values in,
JSON-ready dicts out; nothing here talks to Slack.

Every string that did not come from this module (feed text, what a user typed, a feed's error or
HTTP reason phrase, story links) goes through `escape`, the one escaping function of this
platform, used by cards, digests, replies, notices and the Home tab alike. Slack's three control
characters become entities, so remote text can form no link (`<url|label>` is mrkdwn's only link
syntax; Markdown's `[label](url)` is shown as typed), no `<!channel>`/`<!here>` and no `<@U..>`
mention, and the mrkdwn formatting characters (* _ ~ `) are fenced with zero-width joiners so
that "*not bold*" in a headline stays as written. Text objects carrying such text are
`verbatim`, which also stops Slack from linkifying "#general" or "@here" spelled out in the
text. Limits are Slack's (docs.slack.dev/reference/block-kit): 3,000 characters per text object,
50 blocks per message, 100 per Home view; text is cut at a word boundary, after escaping has
been accounted for.

The one mention a card may carry is ours, not the feed's: a watchlist's opt-in pings
(bot.core.pings), written here as `<!subteam^S…>` and `<@U…>` from ids the config or an admin
gave (checked against DESTINATION_FORM), in a first section and in the notification text."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from bot.chat.slack.destination import DESTINATION_FORM
from bot.core.cards import Card, Digest, sources_line
from bot.core.commands import Reply, ReplyItem
from bot.core.identity import safe_link
from bot.core.models import StoredStory
from bot.core.pings import Ping, PingKind, union
from bot.core.text import truncate

ZWJ = "\u200d"
TEXT_LIMIT = 3000  # a section's text, a context element
FALLBACK_LIMIT = 3000  # a message's `text`: Slack cuts at 40,000 but advises far less
MESSAGE_BLOCKS = 50
HOME_BLOCKS = 100
HEADER_LIMIT = 150
URL_LIMIT = 2000  # a longer link is shown as text only: it would eat the section's budget
IMAGE_URL_LIMIT = 3000
ALT_TEXT_LIMIT = 200
HOME_STORIES = 20

_ESCAPES = {
    ord("&"): "&amp;",
    ord("<"): "&lt;",
    ord(">"): "&gt;",
    **{ord(c): f"{ZWJ}{c}{ZWJ}" for c in "*_~`"},
}
# Inside a ``` block nothing is formatted; only a run of backticks could end it early.
_CODE_ESCAPES = {ord("&"): "&amp;", ord("<"): "&lt;", ord(">"): "&gt;", ord("`"): f"`{ZWJ}"}


# --- text ------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """`text` made inert in mrkdwn: shown exactly as written, never a link, mention or format."""
    return text.translate(_ESCAPES)


def fit(text: str, limit: int, *, table: dict[int, str] = _ESCAPES) -> str:
    """`text` escaped and at most `limit` characters long, cut at a word boundary.

    Escaping lengthens text (`&` becomes five characters), so the cut is made on the raw text
    and shortened by the overshoot until the escaped form fits."""
    if limit <= 0:
        return ""
    escaped = text.translate(table)
    room = min(len(text), limit)
    while len(escaped) > limit:
        escaped = truncate(text, room).translate(table)
        if room == 1:
            break
        # Each raw character escapes to at least one: dropping the overshoot converges.
        room = max(1, room - max(1, len(escaped) - limit))
    return escaped if len(escaped) <= limit else ""


def href(url: str | None) -> str | None:
    """A link target fit for `<url|label>`: http(s) only (via safe_link), `|` encoded so that
    it cannot end the target early, `&` escaped as Slack expects, bounded in length."""
    link = safe_link(url)
    if link is None:
        return None
    target = link.replace("|", "%7C").replace("&", "&amp;")
    return target if len(target) <= URL_LIMIT else None


def link(url: str | None, label: str, limit: int) -> str:
    """`<url|label>` within `limit` characters; the label alone when there is no usable URL."""
    target = href(url)
    if target is None or limit - len(target) - 3 < 20:
        return fit(label, limit)
    shown = fit(label, limit - len(target) - 3)
    return f"<{target}|{shown}>" if shown else f"<{target}>"


def slack_date(moment: datetime) -> str:
    """Shown in each reader's own time zone; the fallback is for clients that cannot."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    fallback = moment.astimezone(UTC).strftime("%d %b %Y %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text or " ", "verbatim": True}


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text), **extra}


def context(*texts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts if t][:10]}


def header(text: str) -> dict[str, Any]:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(text, HEADER_LIMIT), "emoji": True},
    }


def pack(lines: Iterable[str], limit: int = TEXT_LIMIT) -> list[str]:
    """Lines (each already within `limit`) joined into as few texts of at most `limit` as fit."""
    chunks: list[str] = []
    current = ""
    for line in lines:
        if current and len(current) + 1 + len(line) > limit:
            chunks.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def _capped(blocks: list[dict[str, Any]], limit: int, more: str) -> list[dict[str, Any]]:
    if len(blocks) <= limit:
        return blocks
    hidden = len(blocks) - (limit - 1)
    return [*blocks[: limit - 1], context(more.format(n=hidden))]


# --- pings -----------------------------------------------------------------------------------


def render_mentions(pings: Iterable[Ping]) -> tuple[str, tuple[Ping, ...]]:
    """The mentions Slack can make of `pings` (user groups and users, ids checked against
    DESTINATION_FORM so that nothing but an id lands inside the angle brackets), and the pings
    it cannot (a Discord role or user id on a watchlist that also posts to Discord)."""
    made: list[str] = []
    skipped: list[Ping] = []
    for ping in pings:
        if not any(form.accepts(ping) for form in DESTINATION_FORM.pings):
            skipped.append(ping)
        elif ping.kind == PingKind.USERGROUP:
            made.append(f"<!subteam^{ping.id}>")
        else:
            made.append(f"<@{ping.id}>")
    return " ".join(made), tuple(skipped)


def card_pings(card: Card) -> tuple[Ping, ...]:
    """A new card's pings; an update's none (the edit must not ping again)."""
    return () if card.update else card.pings


def digest_pings(digest: Digest) -> tuple[Ping, ...]:
    """A digest pings, once, everyone its cards would have pinged."""
    return union(card_pings(c) for c in digest.cards)


def _with_mentions(payload: dict[str, Any], pings: Iterable[Ping]) -> dict[str, Any]:
    """The mentions first, in their own section and at the start of the notification text
    (already escaped and cut: FALLBACK_LIMIT is far below Slack's own limit, so the few
    mentions a watchlist may name fit beside it)."""
    mentions, _ = render_mentions(pings)
    if not mentions:
        return payload
    return {
        "text": f"{mentions} {payload['text']}".strip(),
        "blocks": [section(mentions), *payload["blocks"]][:MESSAGE_BLOCKS],
    }


# --- cards -----------------------------------------------------------------------------------


def _marks(card: Card) -> str:
    marks = []
    if card.urgent:
        marks.append(":rotating_light: *URGENT*")
    if card.update:
        marks.append(":pencil2: _Updated_")
    return "  ".join(marks)


def _when(published: datetime | None) -> str:
    return slack_date(published) if published else "time unknown"


def _headline(card: Card, limit: int) -> str:
    marks = _marks(card)
    prefix = f"{marks}\n" if marks else ""
    headline = card.headline.strip() or "(untitled story)"
    return f"{prefix}*{link(card.url, headline, limit - len(prefix) - 2)}*"


def render_card(card: Card) -> dict[str, Any]:
    """One alert: headline (linked, marked urgent/updated), summary, source and time, what
    matched and for whom; the story's image as a thumbnail when it has one."""
    top = section(_headline(card, TEXT_LIMIT))
    if card.image and len(card.image) <= IMAGE_URL_LIMIT:
        top["accessory"] = {
            "type": "image",
            "image_url": card.image,
            "alt_text": truncate(card.headline, ALT_TEXT_LIMIT) or "story image",
        }
    blocks = [top]
    if card.summary.strip():
        blocks.append(section(fit(card.summary, TEXT_LIMIT)))
    who = (
        "For you (your subscription)"
        if card.subscriber
        else ("Watchlist: " + fit(" + ".join(card.watchlists), 500) if card.watchlists else "")
    )
    matched = "Matched: " + fit(", ".join(card.matched), 1000) if card.matched else ""
    blocks.append(context(f"{fit(card.source, 300)} · {_when(card.published)}", matched, who))
    sources = sources_line(card.sources)
    if sources:
        blocks.append(context(":newspaper: " + fit(sources, 1000)))
    return _with_mentions({"text": _card_fallback(card), "blocks": blocks}, card_pings(card))


def _card_fallback(card: Card) -> str:
    marks = ("URGENT: " if card.urgent else "") + ("Updated: " if card.update else "")
    return fit(f"{marks}{card.headline} ({card.source})", FALLBACK_LIMIT)


def render_digest(digest: Digest) -> dict[str, Any]:
    """A burst for one channel, or a person's cards that waited, as one message: a line per
    story, within Slack's 50 blocks ("and N more" past them)."""
    cards = digest.cards
    names = list(dict.fromkeys(w for c in cards for w in c.watchlists))
    who = fit(" + ".join(names), 500) if names else "your subscriptions"
    if digest.reason:
        noun = "story" if len(cards) == 1 else "stories"
        blocks = [section(f"*{len(cards)} {noun}* {fit(digest.reason, 200)}")]
    else:
        blocks = [section(f"*{len(cards)} more stories* matching {who}, in one message")]
    for card in cards:
        # Which watchlist(s) matched: a burst mixes desks, and the line is all the reader gets.
        which = f" · {fit(' + '.join(card.watchlists), 300)}" if card.watchlists else ""
        line = f"{fit(card.source, 300)} · {_when(card.published)}{which}"
        blocks.append(section(f"{_headline(card, TEXT_LIMIT - len(line) - 1)}\n{line}"))
    pings = digest_pings(digest)
    room = MESSAGE_BLOCKS - (1 if render_mentions(pings)[0] else 0)  # the mentions' section
    blocks = _capped(blocks, room, "…and {n} more. `/news recent` lists them all.")
    what = (
        f"{len(cards)} stories {digest.reason}" if digest.reason else f"{len(cards)} more stories"
    )
    fallback = fit(
        f"{what}: " + "; ".join(c.headline for c in cards[:20]),
        FALLBACK_LIMIT,
    )
    return _with_mentions({"text": fallback, "blocks": blocks}, pings)


def render_notice(text: str) -> dict[str, Any]:
    """An operational notice (a feed failing, a channel the bot cannot post to)."""
    body = fit(text, TEXT_LIMIT - 3)
    return {"text": fit(text, FALLBACK_LIMIT), "blocks": [section(f":warning: {body}")]}


# --- command replies -------------------------------------------------------------------------


def _item_line(item: ReplyItem) -> str:
    line = f"• {link(item.url, item.text, 1200)}"
    if item.detail:
        line += f"\n      {fit(item.detail, 600)}"
    return line


def render_reply(reply: Reply) -> dict[str, Any]:
    """The body for `respond()`: ephemeral unless the reply says otherwise."""
    head = (":warning: " if not reply.ok else "") + fit(reply.text, TEXT_LIMIT - 11)
    blocks = [section(head)]
    if reply.code:
        blocks.append(section(f"```{fit(reply.code, TEXT_LIMIT - 6, table=_CODE_ESCAPES)}```"))
    blocks.extend(section(chunk) for chunk in pack(_item_line(i) for i in reply.items))
    count = f" ({len(reply.items)} items)" if reply.items else ""
    return {
        "response_type": "ephemeral" if reply.ephemeral else "in_channel",
        "text": fit(reply.text + count, FALLBACK_LIMIT),
        "blocks": _capped(blocks, MESSAGE_BLOCKS, "…and more not shown ({n} blocks)."),
    }


# --- App Home --------------------------------------------------------------------------------


def _story_line(stored: StoredStory) -> str:
    story = stored.story
    when = _when(story.published or stored.first_seen)
    line = f"{fit(story.feed, 300)} · {when}"
    return f"*{link(story.link, story.title, TEXT_LIMIT - len(line) - 3)}*\n{line}"


def render_home(subscriptions: Sequence[str], stories: Sequence[StoredStory]) -> dict[str, Any]:
    """The Home tab: the person's subscriptions and the latest stories that matched them."""
    blocks: list[dict[str, Any]] = [header("Your news alerts")]
    if subscriptions:
        blocks.append(
            section(
                f"*Your subscriptions ({len(subscriptions)})*. Stories matching them come to you "
                "by direct message."
            )
        )
        blocks.extend(section(c) for c in pack(f"• {fit(q, 1000)}" for q in subscriptions))
    else:
        blocks.append(
            section(
                'You have no subscriptions yet. Type `/news subscribe "North Korea" OR '
                "Pyongyang` in any channel, and matching stories come to you by direct message."
            )
        )
    blocks += [{"type": "divider"}, header("Latest stories for you")]
    if stories:
        blocks.extend(section(_story_line(s)) for s in stories[:HOME_STORIES])
    else:
        blocks.append(section("Nothing has matched your subscriptions yet."))
    blocks.append(
        context(
            "Manage them with `/news subscribe`, `/news unsubscribe` and `/news subscriptions`; "
            "`/news help` lists every command."
        )
    )
    return {"type": "home", "blocks": _capped(blocks, HOME_BLOCKS, "…and {n} more.")}

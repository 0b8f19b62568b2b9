"""Cards, digests and command replies as Discord embeds and messages. Pure: no I/O, no client.

Feed text is hostile input, and so is every other text from outside (a feed's error, an HTTP
reason phrase, a server's name). All of it reaches Discord through one function, `escape` (via
`fit`): cards, digests, command replies, ops notices and /status alike. It escapes every markdown
character, so no masked link (``[text](url)``) can come from outside - the only links on a card
are ours - and it breaks every mention-shaped string with a zero-width space (the client also
sends ``AllowedMentions.none()``, so nothing could ping even if a mention slipped through). Links
are http(s) only, and every field is cut at a word boundary to Discord's limits, the
6000-character total of an embed included.

The one exception is ours, not the feed's: a watchlist's opt-in pings (bot.core.pings). They go
in the message content, written here from the ids the config or an admin gave, never from card
text, and the message's `allowed_mentions` names exactly those roles and users (parse: [] - no
@everyone, @here, or anyone else, even if a mention slipped into the text)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import discord

from bot.chat.discord.destination import DESTINATION_FORM
from bot.core.cards import Card, Digest, is_urgent, sources_line
from bot.core.commands import Reply, ReplyItem
from bot.core.pings import Ping, PingKind, union
from bot.core.text import ELLIPSIS, truncate

# Discord's limits (discord.com/developers/docs/resources/message#embed-object-embed-limits).
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
AUTHOR_LIMIT = 256
EMBED_LIMIT = 6000
CONTENT_LIMIT = 2000
URL_LIMIT = 2048
NONCE_LIMIT = 25

URGENT_COLOUR = discord.Colour(0xD7263D)
UPDATED_COLOUR = discord.Colour(0xF0A202)
NORMAL_COLOUR = discord.Colour(0x2D7DD2)
DIGEST_COLOUR = discord.Colour(0x5C6B73)

ZWSP = "\u200b"
# <@user>, <@!user>, <@&role>, <#channel>, </command:id>, <:emoji:id>, <a:emoji:id>. Mentions with
# short ids are not caught by discord.utils.escape_mentions, and channel mentions never are.
# <t:1700000000:R> too: from a feed it would show a time that is not the story's.
_MENTION_OPENER = re.compile(r"<(?=[@#/]|a?:\w|t:-?\d)")
_SAFE_URL = re.compile(r"^https?://[^\s<>\"'`\\]+$", re.IGNORECASE)

# What `escape` does, and why not discord.utils.escape_markdown: that escapes only the first "["
# of a greedy `\[.+\]\(.+\)` match, so "[1] [Read more](https://evil.example)" kept a live
# masked link, and it leaves backslashes alone, so a feed's "\" could undo the escape after it.
# Here every markdown character is escaped, wherever it is, the backslash first of all.
#
# Discord's own autolink rule (simple-markdown's `url`): a bare http(s) address is a link whose
# text is its own target, and no markdown is parsed inside it, so it is left as it is (a
# backslash in it would end up in the link) - except for square brackets, which are
# percent-encoded (the same address), so that not even half of a masked link is left in it.
_BARE_URL = re.compile(r"https?://[^\s<]+[^<.,:;\"')\]\s]")
_MARKDOWN = re.compile(r"([\\*_~`|\[\]])")
# Block markup counts only at the start of a line: quotes, headings and subtext, lists.
_LINE_START = re.compile(r"^([ \t]*)(?:([>#-])|(\d+)\.(?=[ \t]))", re.MULTILINE)


# --- text helpers ---------------------------------------------------------------------------------


def neutralise_mentions(text: str) -> str:
    """@everyone, @here and <@...>/<#...>-style mentions, shown as text and unable to ping."""
    return _MENTION_OPENER.sub("<" + ZWSP, discord.utils.escape_mentions(text))


def escape_markdown(text: str) -> str:
    """`text` shown exactly as written where Discord renders markdown: no formatting, no masked
    link, no heading or quote; bare http(s) addresses stay clickable, as themselves."""
    out: list[str] = []
    start = 0
    for url in _BARE_URL.finditer(text):
        out.append(_MARKDOWN.sub(r"\\\1", text[start : url.start()]))
        out.append(url.group().replace("[", "%5B").replace("]", "%5D"))
        start = url.end()
    out.append(_MARKDOWN.sub(r"\\\1", text[start:]))
    return _LINE_START.sub(_escape_line_start, "".join(out))


def _escape_line_start(match: re.Match[str]) -> str:
    indent, marker, number = match.groups()
    return f"{indent}\\{marker}" if marker else f"{indent}{number}\\."


def escape(text: str) -> str:
    """Any text from outside, for a place where Discord renders markdown (titles, descriptions,
    fields, message content): markdown escaped, mentions neutralised. The one escaping function
    of this platform: cards, digests, replies and notices all go through it (via `fit`)."""
    return neutralise_mentions(escape_markdown(text))


def fit(text: str, limit: int, render=escape) -> str:
    """`render(text)` cut to `limit` characters at a word boundary.

    Cutting happens on the raw text, before escaping, so that an escape sequence is never split
    (a lone trailing backslash would escape whatever follows). Escaping lengthens the text, so
    the raw allowance shrinks until the rendered result fits."""
    budget = limit
    while budget > 0:
        out = render(truncate(text, budget))
        if len(out) <= limit:
            return out
        budget = min(budget - 1, budget * limit // len(out))
    return ""


def _plain(text: str, limit: int) -> str:
    """For footers and author names: Discord shows them literally (no markdown, no mentions),
    so escaping would only add visible backslashes. Mentions are still broken, for clients that
    render them anyway."""
    return fit(text, limit, render=neutralise_mentions)


def http_url(url: str | None) -> str | None:
    """Only http(s) links Discord will accept (the core already sanitised card links; this is the
    platform's own guard, also for reply items, which carry the feed's raw link)."""
    if not url or len(url) > URL_LIMIT or not _SAFE_URL.match(url):
        return None
    return url


def _link_target(url: str) -> str:
    # A parenthesis would end the masked link early; percent-encoding keeps the same address.
    return url.replace("(", "%28").replace(")", "%29")


def _link_text(text: str, limit: int) -> str:
    """Escaped text for the [...] of a masked link: `escape` escapes every bracket, so one in a
    headline cannot end the link text."""
    return fit(text, limit)


def embed_size(embed: discord.Embed) -> int:
    """The characters Discord counts towards the 6000 total."""
    size = len(embed.title or "") + len(embed.description or "")
    size += sum(len(f.name or "") + len(f.value or "") for f in embed.fields)
    size += len(embed.footer.text or "") + len(embed.author.name or "")
    return size


def delivery_nonce(delivery_id: int) -> str:
    """The idempotency key of one card: Discord returns the message already created with this
    nonce (enforce_nonce) instead of posting it twice."""
    return _nonce("newsbot-", str(delivery_id))


def update_nonce(delivery_id: int, revision: int) -> str:
    """The idempotency key of one thread reply: one per card and story revision."""
    return _nonce("newsbot-u", f"{delivery_id}r{revision}")


THREAD_NAME_LIMIT = 100  # Discord's limit on a thread's name


def thread_name(card: Card) -> str:
    """The thread started on a card: named after its headline. A name is shown as plain text
    (no markdown, no mentions), on one line."""
    name = " ".join((card.headline or "").split()) or "Updates"
    return neutralise_mentions(truncate("Updates: " + name, THREAD_NAME_LIMIT))[:THREAD_NAME_LIMIT]


def digest_nonce(delivery_ids: Iterable[int]) -> str:
    """A digest is identified by all the cards it carries: after a crash, the same set re-sent is
    de-duplicated, while a different set (more cards arrived) is posted rather than lost."""
    ids = ",".join(str(i) for i in sorted(delivery_ids))
    return _nonce("newsbot-d", hashlib.blake2b(ids.encode(), digest_size=8).hexdigest())


def _nonce(prefix: str, key: str) -> str:
    nonce = prefix + key
    if len(nonce) > NONCE_LIMIT:  # not reachable with SQLite row ids, but never send a bad nonce
        nonce = prefix + hashlib.blake2b(key.encode(), digest_size=8).hexdigest()
    return nonce[:NONCE_LIMIT]


def _unix(card: Card) -> int | None:
    return int(card.published.timestamp()) if card.published else None


def _who(watchlists: Sequence[str], subscriber: str | None) -> str:
    if subscriber:
        return "Your subscription"
    if not watchlists:
        return "newsbot"
    label = "Watchlist" if len(watchlists) == 1 else "Watchlists"
    return f"{label}: {', '.join(watchlists)}"


# --- pings ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mentions:
    """What a message pings: its content line (None: no content, nobody pinged), the
    allowed_mentions naming exactly those roles and users, and the pings Discord cannot send
    (a Slack user group or user id on a watchlist that also posts to Slack)."""

    content: str | None
    allowed: discord.AllowedMentions
    skipped: tuple[Ping, ...] = ()


def render_mentions(pings: Iterable[Ping]) -> Mentions:
    roles: list[str] = []
    users: list[str] = []
    skipped: list[Ping] = []
    for ping in pings:
        if not any(form.accepts(ping) for form in DESTINATION_FORM.pings):
            skipped.append(ping)
        elif ping.kind == PingKind.ROLE:
            roles.append(ping.id)
        else:
            users.append(ping.id)
    # The ids are digits (DESTINATION_FORM checked them), so the line is only these mentions.
    content = " ".join([f"<@&{r}>" for r in roles] + [f"<@{u}>" for u in users]) or None
    allowed = discord.AllowedMentions(
        everyone=False,
        roles=[discord.Object(id=int(r)) for r in roles] or False,
        users=[discord.Object(id=int(u)) for u in users] or False,
        replied_user=False,
    )
    return Mentions(content, allowed, tuple(skipped))


def card_mentions(card: Card) -> Mentions:
    """A new card's pings; an update's none (the edit must not ping again)."""
    return render_mentions(() if card.update else card.pings)


def digest_mentions(digest: Digest) -> Mentions:
    """A digest pings, once, everyone its cards would have pinged."""
    return render_mentions(union(c.pings for c in digest.cards if not c.update))


# --- cards ----------------------------------------------------------------------------------------


def render_card(card: Card) -> discord.Embed:
    """One story as an embed: linked headline, source, lead, time, matched terms, watchlists."""
    updated = card.update
    urgent = card.urgent or is_urgent(card.headline)
    colour = URGENT_COLOUR if urgent else UPDATED_COLOUR if updated else NORMAL_COLOUR
    mark = "Updated: " if updated else ""
    title = mark + fit(card.headline or "(no headline)", TITLE_LIMIT - len(mark))

    embed = discord.Embed(
        title=title,
        url=http_url(card.url),
        colour=colour,
        timestamp=card.published,
    )
    if card.source:
        embed.set_author(name=_plain(card.source, AUTHOR_LIMIT))
    stamp = _unix(card)
    if stamp is not None:
        embed.add_field(name="Published", value=f"<t:{stamp}:R>", inline=True)
    if card.matched:
        matched = fit(", ".join(card.matched), FIELD_VALUE_LIMIT)
        if matched:
            embed.add_field(name="Matched", value=matched, inline=True)
    sources = sources_line(card.sources)
    if sources:
        embed.add_field(name="Sources", value=fit(sources, FIELD_VALUE_LIMIT), inline=False)
    embed.set_footer(text=_plain(_who(card.watchlists, card.subscriber), FOOTER_LIMIT))
    image = http_url(card.image)
    if image:
        embed.set_thumbnail(url=image)
    room = min(DESCRIPTION_LIMIT, EMBED_LIMIT - embed_size(embed))
    if card.summary and room > 0:
        embed.description = fit(card.summary, room) or None
    return embed


def render_digest(digest: Digest) -> discord.Embed:
    """A burst for one channel, or a person's cards that waited, as one embed: every headline
    a link, as many as fit, then "and N more"."""
    cards = digest.cards
    urgent = any(c.urgent or is_urgent(c.headline) for c in cards)
    watchlists = list(dict.fromkeys(w for c in cards for w in c.watchlists))
    subscriber = next((c.subscriber for c in cards if c.subscriber), None)
    noun = "story" if len(cards) == 1 else "stories"
    title = (
        f"{len(cards)} {noun} {digest.reason}"
        if digest.reason
        else f"{len(cards)} more {noun} in a burst"
    )
    embed = discord.Embed(
        title=_plain(title, TITLE_LIMIT),
        colour=URGENT_COLOUR if urgent else DIGEST_COLOUR,
    )
    published = [c.published for c in cards if c.published]
    if published:
        embed.timestamp = max(published)
    embed.set_footer(text=_plain(_who(watchlists, subscriber), FOOTER_LIMIT))
    room = min(DESCRIPTION_LIMIT, EMBED_LIMIT - embed_size(embed))
    lines: list[str] = []
    used = 0
    for index, card in enumerate(cards):
        line = _digest_line(card)
        left = len(cards) - index - 1
        tail = len(f"\n{ELLIPSIS} and {left} more") if left else 0
        if used + len(line) + 1 + tail > room:
            lines.append(f"{ELLIPSIS} and {len(cards) - index} more")
            break
        lines.append(line)
        used += len(line) + 1
    embed.description = "\n".join(lines) or None
    return embed


def _digest_line(card: Card) -> str:
    url = http_url(card.url)
    source = f" · {fit(card.source, 60)}" if card.source else ""
    stamp = _unix(card)
    when = f" · <t:{stamp}:R>" if stamp is not None else ""
    mark = "Updated: " if card.update else ""
    # Which watchlist(s) matched: a burst mixes desks, and the line is all the reader gets.
    names = f" · {fit(' + '.join(card.watchlists), 120)}" if card.watchlists else ""
    if url and len(url) <= 512:
        return (
            f"• [{mark}{_link_text(card.headline, 200)}]({_link_target(url)}){source}{names}{when}"
        )
    return f"• {mark}{fit(card.headline, 200)}{source}{names}{when}"


# --- notices and replies --------------------------------------------------------------------------


def render_notice(text: str) -> str:
    """An operational notice as message content. It quotes remote text (a feed's error, an
    HTTP reason phrase chosen by whoever runs the feed's server), so it is escaped like a card."""
    return fit(text, CONTENT_LIMIT) or "(empty notice)"


def _code_block(code: str, limit: int) -> str:
    # Inside a code block markdown is inert; only a run of three backticks could close it early.
    # A zero-width space after every backtick keeps the text (and the caret's column) intact.
    body = truncate(code, limit).replace("`", "`" + ZWSP)
    return f"```\n{body}\n```"


def _item_line(item: ReplyItem) -> str:
    line = "• " + fit(item.text, 300)
    if item.detail:
        line += " · " + fit(item.detail, 300)
    url = http_url(item.url)
    if url and len(url) <= 500:
        line += f" <{url}>"  # angle brackets: a link without a preview card
    return line


def render_reply(reply: Reply) -> str:
    """A command's reply as message content (at most 2000 characters): the text, the code block,
    then the items as bullet lines, as many as fit."""
    code = _code_block(reply.code, 1200) if reply.code else ""
    head = fit(reply.text, CONTENT_LIMIT - len(code) - 1) if reply.text else ""
    out = "\n".join(part for part in (head, code) if part)
    items = reply.items
    for index, item in enumerate(items):
        line = _item_line(item)
        left = len(items) - index - 1
        tail = len(f"\n{ELLIPSIS} and {left} more") if left else 0
        if len(out) + 1 + len(line) + tail > CONTENT_LIMIT:
            more = f"{ELLIPSIS} and {len(items) - index} more"
            out = f"{out}\n{more}" if len(out) + 1 + len(more) <= CONTENT_LIMIT else out
            break
        out = f"{out}\n{line}" if out else line
    return out.strip() or "Done."

"""The real bot (NewsBot, SQLite, the feed reader, slack_bolt over Socket Mode, slack_sdk) against
a local feed server and FakeSlack. Nothing of ours is mocked; only the far side of the wire."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape

import pytest

from bot.app import NewsBot
from bot.chat.slack import SlackPlatform
from config.settings import Settings, settings_from_dict
from tests.chat.hostile import HOSTILE_LINK, HOSTILE_SLACK_LINK
from tests.fakes.feed_server import FeedServer
from tests.fakes.slack_server import FakeSlack, FakeSlackMessage, blocks_text, validate_blocks

pytestmark = pytest.mark.timeout(20)

DESK = "C0DESK"
ASIA = "C0ASIA"
GONE = "C0GONE"
OPS = "C0OPS"
ADMIN = "U0ADMIN"  # a workspace admin (users.info is_admin)
OWNER = "U0OWNER"  # a workspace owner (users.info is_owner)
LISTED = "U0LISTED"  # named in [slack].admin_user_ids
REPORTER = "U0RITA"  # nobody special


@dataclass(frozen=True)
class Item:
    title: str
    description: str = ""
    link: str | None = None
    guid: str | None = None
    published: datetime | None = None


def rss(items: list[Item]) -> bytes:
    """A small RSS 2.0 document (its own few lines, so these tests lean on no other helper)."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>']
    parts.append("<title>Test Wire</title><link>https://w.example/</link>")
    for item in items:
        parts.append(f"<item><title>{escape(item.title)}</title>")
        if item.link:
            parts.append(f"<link>{escape(item.link)}</link>")
        if item.guid:
            parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.description:
            parts.append(f"<description>{escape(item.description)}</description>")
        if item.published:
            parts.append(f"<pubDate>{format_datetime(item.published, usegmt=True)}</pubDate>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def minutes_ago(n: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=n)


BASELINE = Item(
    "Markets calm before the open", "Nothing to see.", "https://w.example/0", "0", minutes_ago(60)
)


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSlack]:
    # slack_sdk sends every request (the websocket too) through HTTP(S)_PROXY, ignoring NO_PROXY.
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    fake = FakeSlack()
    fake.add_user(ADMIN, name="ada", is_admin=True)
    fake.add_user(OWNER, name="otto", is_owner=True)
    fake.add_user(LISTED, name="lee")
    fake.add_user(REPORTER, name="rita")
    for channel, name in ((DESK, "newsdesk"), (ASIA, "asia"), (GONE, "gone"), (OPS, "ops")):
        fake.add_channel(channel, name=name)
    await fake.start()
    yield fake
    await fake.close()


class Desk:
    """One newsroom: a feed on the local feed server, a real NewsBot with SlackPlatform, and
    FakeSlack. `start` can be called again after `stop`: a restart on the same database."""

    def __init__(self, tmp_path, fake: FakeSlack, feeds: FeedServer) -> None:
        self.tmp_path = tmp_path
        self.fake = fake
        self.feeds = feeds
        self.items: list[Item] = [BASELINE]
        self.bot: NewsBot | None = None
        self.platform: SlackPlatform | None = None
        self.starts = 0
        self.feeds.set("wire.xml", rss(self.items))

    def settings(
        self,
        *,
        watchlists: list[dict] | None = None,
        bot_token: str | None = None,
        app_token: str | None = None,
        fetch: dict | None = None,
        more_feeds: list[dict] | None = None,
        chat: dict | None = None,
        **slack: Any,
    ) -> Settings:
        raw = {
            "storage": {"path": str(self.tmp_path / "newsbot.db")},
            "console": {"format": "jsonl"},
            "http": {"enabled": False},
            "feeds": [{"name": "Wire", "url": self.feeds.url("wire.xml")}, *(more_feeds or [])],
            "watchlists": watchlists
            if watchlists is not None
            else [{"name": "Korea", "query": "Pyongyang OR Seoul", "channels": [f"slack:{DESK}"]}],
            "slack": {"api_base": self.fake.api_base, "admin_user_ids": [LISTED], **slack},
            "fetch": fetch or {},
            "chat": chat or {},
        }
        env = {
            "SLACK_BOT_TOKEN": bot_token or self.fake.bot_token,
            "SLACK_APP_TOKEN": app_token or self.fake.app_token,
        }
        return settings_from_dict(raw, env)

    async def start(self, *, connect: bool = True, **options: Any) -> NewsBot:
        settings = self.settings(**options)
        self.platform = SlackPlatform(settings)
        self.bot = NewsBot(settings, stdout=io.StringIO(), platforms=[self.platform])
        await self.bot.open()
        await self.bot.run_once()  # starts Slack; the first poll of the feed is a baseline
        if connect:
            self.starts += 1
            await self.fake.wait_connected(self.starts)
            # The fake has sent its hello; slack_sdk takes the session as its own a moment
            # later (seen on a loaded machine: `connected` still False right after).
            for _ in range(500):
                if self.platform.connected:
                    break
                await asyncio.sleep(0.01)
        return self.bot

    async def stop(self) -> None:
        if self.bot is not None:
            await self.bot.close()
            self.bot = None

    async def publish(self, *items: Item) -> None:
        """New items at the top of the feed, then one poll and delivery pass."""
        assert self.bot is not None
        self.items = [*items, *self.items]
        self.feeds.set("wire.xml", rss(self.items))
        await self.bot.run_once()

    async def rewrite(self, guid: str, title: str) -> None:
        assert self.bot is not None
        self.items = [
            Item(title, i.description, i.link, i.guid, i.published) if i.guid == guid else i
            for i in self.items
        ]
        self.feeds.set("wire.xml", rss(self.items))
        await self.bot.run_once()

    def sql(self, statement: str, *params: Any) -> list[tuple]:
        """Straight at the database file, as an operator with the sqlite3 shell would."""
        with contextlib.closing(sqlite3.connect(self.tmp_path / "newsbot.db")) as db, db:
            return db.execute(statement, params).fetchall()

    def deliveries(self, target: str) -> list[tuple[int, str, str | None, str | None]]:
        return self.sql(
            "SELECT id, status, message_id, error FROM deliveries WHERE target = ? ORDER BY id",
            target,
        )


@pytest.fixture
async def desk(tmp_path, fake: FakeSlack, feed_server: FeedServer) -> AsyncIterator[Desk]:
    desk = Desk(tmp_path, fake, feed_server)
    yield desk
    # The bot (and its Socket Mode handler) goes before the fake Slack does.
    await desk.stop()


def story(title: str, guid: str, description: str = "", minutes: float = 2) -> Item:
    return Item(title, description, f"https://w.example/{guid}", guid, minutes_ago(minutes))


def with_delivery(messages: list[FakeSlackMessage], delivery_id: int) -> list[FakeSlackMessage]:
    return [m for m in messages if (m.event_payload or {}).get("delivery_id") == delivery_id]


def all_text(message: FakeSlackMessage) -> str:
    return (message.text or "") + json.dumps(message.blocks)


def live_markup(text: str) -> list[str]:
    """Every <...> sequence Slack would act on, except our own links and dates."""
    return [m for m in re.findall(r"<[^<>]*>", text) if not m.startswith(("<http", "<!date^"))]


# --- alerts -----------------------------------------------------------------------------------


async def test_alert_is_posted_as_blocks_with_no_live_mentions_and_its_delivery_id(
    desk: Desk, fake: FakeSlack
) -> None:
    await desk.start()
    assert fake.messages == []  # the first poll is a baseline

    await desk.publish(
        story(
            "BREAKING: Pyongyang fires missile <!channel> @here <@U0ADMIN> *now*",
            "1",
            "Seoul says &lt;!here&gt; AT&T <https://evil.example|click> `code` _x_ ~y~.",
        )
    )

    [message] = fake.messages_in(DESK)
    (delivery_id, status, message_id, _), *_ = desk.deliveries(f"slack:{DESK}")
    assert status == "sent" and message_id == f"{DESK}/{message.ts}"
    assert message.event_type == "newsbot_alert"
    assert message.event_payload["delivery_id"] == delivery_id
    assert validate_blocks(message.blocks) == []
    assert message.unfurl_links is False and message.unfurl_media is False
    text = all_text(message)
    # The only markup Slack acts on is ours: the headline's link and the date.
    assert live_markup(text) == []
    assert "<https://w.example/1|BREAKING: Pyongyang fires missile @here &lt;@U0ADMIN&gt;" in text
    assert "<!channel>" not in text and "<!here>" not in text and "<https://evil" not in text
    assert "*now*" not in text  # fenced with zero-width joiners: shown, not bold
    # Every text object with feed text is verbatim: Slack does not linkify "@here" in it.
    objects = [b["text"] for b in message.blocks if "text" in b]
    objects += [e for b in message.blocks for e in b.get("elements", [])]
    assert all(o.get("verbatim") for o in objects if o["type"] == "mrkdwn")
    visible = message.visible_text
    assert "Pyongyang fires missile" in visible and "URGENT" in visible
    assert "Matched: Pyongyang" in visible and "Watchlist: Korea" in visible
    assert "<!date^" in visible  # the time, in each reader's time zone


async def test_subscribe_then_the_next_matching_story_comes_by_direct_message(
    desk: Desk, fake: FakeSlack
) -> None:
    await desk.start()

    reply = await fake.slash_command('subscribe "Kim Jong Un" OR Kremlin', user_id=REPORTER)
    assert reply.ephemeral == [True]
    assert 'Subscribed. Stories matching "Kim Jong Un" OR Kremlin' in reply.text
    await desk.publish(story("Kremlin confirms Kim Jong Un visit", "7"))

    [dm] = fake.dms_to(REPORTER)
    [(delivery_id, status, message_id, _)] = desk.deliveries(f"slack:dm:{REPORTER}")
    assert (status, message_id) == ("sent", f"{dm.channel}/{dm.ts}")
    assert dm.channel.startswith("D") and dm.event_payload["delivery_id"] == delivery_id
    assert "Kremlin confirms Kim Jong Un visit" in dm.visible_text
    assert "your subscription" in dm.visible_text
    assert fake.calls_to("conversations.open") == [{"users": REPORTER}]
    assert fake.messages_in(DESK) == []  # no watchlist matched


async def test_recent_watchlist_test_and_feed_list_answer_only_the_asker(
    desk: Desk, fake: FakeSlack
) -> None:
    await desk.start()
    await desk.publish(story("Seoul and Pyongyang hold talks", "3"))

    recent = await fake.slash_command("recent Pyongyang --hours 2 --limit 5", user_id=REPORTER)
    preview = await fake.slash_command("watchlist test Seoul --hours 1", user_id=ADMIN)
    feeds = await fake.slash_command("feed list", user_id=ADMIN)
    bad = await fake.slash_command("recent --hours soon", user_id=REPORTER)

    for reply in (recent, preview, feeds, bad):
        assert reply.ephemeral == [True]
        assert [r.source for r in reply.replies] == ["response_url"]  # acked empty, then answered
        assert validate_blocks(reply.responses[0]["blocks"]) == []
    assert "stories matching Pyongyang in the last 2h" in recent.text
    assert "Seoul and Pyongyang hold talks" in recent.text
    assert "<https://w.example/3|Seoul and Pyongyang hold talks>" in json.dumps(recent.responses)
    assert "Seoul would have matched 1 stories in the last 1h" in preview.text
    assert "Nothing was saved" in preview.text
    assert "Wire" in feeds.text and "config file" in feeds.text
    assert "--hours takes a number of hours, not 'soon'" in bad.text
    assert "Usage: /news recent [query] [--hours N] [--limit N]" in bad.text
    assert desk.sql("SELECT name FROM watchlists") == [("Korea",)]


def link_targets(payload: object) -> list[str]:
    """Where every <target|label> or <target> Slack would act on points (dates aside)."""
    text = json.dumps(payload, ensure_ascii=False)
    found = [m.split("|", 1)[0] for m in re.findall(r"<([^<>]*)>", text)]
    return [t for t in found if not t.startswith("!date^")]


async def test_recent_lists_a_hostile_headline_with_no_link_but_the_storys(
    desk: Desk, fake: FakeSlack
) -> None:
    await desk.start()
    # (Slack's own <url|label> in feed text does not even get this far: clean_text strips it
    # as a tag. The reason phrase below is not feed markup, and keeps it.)
    await desk.publish(story(f"Seoul {HOSTILE_SLACK_LINK} {HOSTILE_LINK}", "h1"))

    reply = await fake.slash_command("recent Seoul", user_id=REPORTER)

    assert link_targets(reply.responses) == ["https://w.example/h1"]
    assert "<https://w.example/h1|Seoul [1] [Read more](https://evil.example)>" in reply.text


async def test_a_hostile_reason_phrase_is_inert_in_feed_add_status_and_ops_notices(
    desk: Desk, fake: FakeSlack, hostile_feed_url: str
) -> None:
    await desk.start(
        more_feeds=[{"name": "Hostile", "url": hostile_feed_url}],
        fetch={"failing_after": 1, "allow_networks": ["127.0.0.0/8"]},
        ops_channel=f"slack:{OPS}",
    )

    added = await fake.slash_command(f"feed add <{hostile_feed_url}?2> Again", user_id=ADMIN)
    status = await fake.slash_command("status", user_id=REPORTER)
    [notice] = fake.messages_in(OPS)

    reason = (
        "HTTP 502 Bad Gateway [1] [Read more](https://evil.example) "
        "&lt;https://evil.example|Read more&gt;"
    )
    assert f"Not added: {reason}" in added.text
    assert "Failing: Hostile" in status.text and reason in status.text
    assert f"Feed 'Hostile' is failing: {reason}" in notice.visible_text
    for payload in (added.responses, status.responses, notice.blocks, notice.text):
        assert link_targets(payload) == [], payload


ADMIN_ONLY = [
    'watchlist add "Japan" <#C0ASIA|asia> Tokyo',
    "watchlist edit Korea Pyongyang",
    "watchlist remove Korea",
    "watchlist ping Korea <!subteam^S0DESK|@desk> always",
    "watchlist list",
    "watchlist test Pyongyang",
    "feed add <https://example.com/rss.xml> Example",
    "feed remove Wire",
    "feed list",
]


@pytest.mark.parametrize("text", ADMIN_ONLY)
async def test_non_admin_is_refused_every_admin_sub_command(
    desk: Desk, fake: FakeSlack, text: str
) -> None:
    await desk.start()

    reply = await fake.slash_command(text, user_id=REPORTER)

    assert reply.ephemeral == [True]
    assert "Only admins can" in reply.text
    assert fake.calls_to("users.info") == [{"user": REPORTER}]  # decided on the server side
    assert desk.sql("SELECT count(*) FROM audit_log") == [(0,)]
    assert desk.sql("SELECT name, query FROM watchlists") == [("Korea", "Pyongyang OR Seoul")]
    assert desk.sql("SELECT name FROM feeds") == [("Wire",)]


# --- only the desk's own workspace ------------------------------------------------------------

OTHER_TEAM = "T0OTHER"  # another workspace the app is reachable from
NOT_SERVED = (
    ":warning: This bot serves the Fake Newsroom workspace only; it does nothing here. "
    "Ask the admins of Fake Newsroom if you need it."
)


def stored_state(desk: Desk) -> tuple:
    return (
        desk.sql("SELECT name, query, channels FROM watchlists ORDER BY name"),
        desk.sql("SELECT name FROM feeds ORDER BY name"),
        desk.sql("SELECT subscriber, query FROM subscriptions ORDER BY id"),
        desk.sql("SELECT count(*) FROM audit_log"),
    )


@pytest.mark.parametrize(
    "text",
    [*ADMIN_ONLY, "subscribe Seoul", "unsubscribe Seoul", "subscriptions", "recent", "status"],
)
async def test_a_workspace_admin_of_another_team_is_refused_everything(
    desk: Desk, fake: FakeSlack, text: str
) -> None:
    await desk.start()
    before = stored_state(desk)

    # ADMIN is a workspace admin by users.info; the command comes from another workspace.
    reply = await fake.slash_command(text, user_id=ADMIN, team_id=OTHER_TEAM)

    assert [r.source for r in reply.replies] == ["ack"]  # refused before any listener ran
    assert reply.ephemeral == [True]
    assert reply.text == NOT_SERVED
    assert validate_blocks(reply.ack_payload["blocks"]) == []
    assert fake.calls_to("users.info") == []
    assert stored_state(desk) == before
    assert fake.messages == []


async def test_the_home_tab_is_not_published_for_another_workspace(
    desk: Desk, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await desk.start()
    await fake.slash_command("subscribe Seoul", user_id=REPORTER)

    event = {"type": "app_home_opened", "user": REPORTER, "channel": fake.dm_channel(REPORTER)}
    await fake.send_event({**event, "tab": "home"}, team_id=OTHER_TEAM)

    # The refusal is decided (and logged) before the ACK, so it is there when the ACK is.
    assert f"refused a Slack event from team {OTHER_TEAM}" in caplog.text
    assert fake.calls_to("views.publish") == []


async def test_team_ids_name_the_workspaces_served(
    desk: Desk, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await desk.start(team_ids=[OTHER_TEAM])

    ours = await fake.slash_command("feed list", user_id=ADMIN)
    theirs = await fake.slash_command("feed list", user_id=ADMIN, team_id=OTHER_TEAM)

    assert ours.text == (
        f":warning: This bot serves the {OTHER_TEAM} workspace only; it does nothing here. "
        f"Ask the admins of {OTHER_TEAM} if you need it."
    )
    assert theirs.text.startswith("1 feeds:") and "Wire" in theirs.text
    assert f"Slack: serving {OTHER_TEAM} ({OTHER_TEAM}) (slack.team_ids)" in caplog.text
    assert "the bot token belongs to Fake Newsroom (T0001), which is not in slack.team_ids" in (
        caplog.text
    )


async def test_without_team_ids_the_token_s_workspace_is_served_and_said_so(
    desk: Desk, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    await desk.start()
    reply = await fake.slash_command("subscribe Seoul", user_id=REPORTER)
    assert "Subscribed" in reply.text
    assert (
        "Slack: serving Fake Newsroom (T0001), the workspace the bot token belongs to"
        in caplog.text
    )


@pytest.mark.parametrize("user", [ADMIN, OWNER, LISTED], ids=["is_admin", "is_owner", "listed"])
async def test_admins_by_slack_role_or_by_config_add_a_watchlist_that_then_alerts(
    desk: Desk, fake: FakeSlack, user: str
) -> None:
    await desk.start()

    reply = await fake.slash_command(
        'watchlist add "North Korea" <#C0ASIA|asia> "Kim Jong Un" OR DPRK', user_id=user
    )

    assert "Watchlist 'North Korea' added" in reply.text
    assert desk.sql(
        "SELECT query, channels, origin, created_by FROM watchlists WHERE name = 'North Korea'"
    ) == [('"Kim Jong Un" OR DPRK', '["slack:C0ASIA"]', "chat", f"slack:{user}")]
    [(actor, action, detail)] = desk.sql("SELECT actor, action, detail FROM audit_log")
    assert (actor, action) == (f"slack:{user}", "watchlist.add")
    assert json.loads(detail)["channel"] == "slack:C0ASIA"
    # admin_user_ids needs no look-up; the others are checked with users.info.
    assert fake.calls_to("users.info") == ([] if user == LISTED else [{"user": user}])

    await desk.publish(story("Kim Jong Un inspects a factory", "9"))
    [card] = fake.messages_in(ASIA)
    assert "Watchlist: North Korea" in card.visible_text


async def test_app_home_shows_subscriptions_and_the_stories_that_matched_them(
    desk: Desk, fake: FakeSlack
) -> None:
    await desk.start()
    empty = await fake.app_home_opened(REPORTER)
    assert "You have no subscriptions yet" in blocks_text(empty["blocks"])

    await fake.slash_command("subscribe Kremlin", user_id=REPORTER)
    await desk.publish(story("Kremlin denies report", "11"))
    view = await fake.app_home_opened(REPORTER)

    text = blocks_text(view["blocks"])
    assert "Your subscriptions (1)" in text and "• Kremlin" in text
    assert "Kremlin denies report" in text
    assert validate_blocks(view["blocks"], max_blocks=100) == []


async def test_rate_limited_post_is_retried_after_retry_after_and_posted_once(
    desk: Desk, fake: FakeSlack
) -> None:
    await desk.start()
    fake.rate_limit_next(1, retry_after=1)
    started = time.monotonic()

    await desk.publish(story("Seoul markets rally", "4"))

    assert time.monotonic() - started >= 1.0
    assert [c.status for c in fake.call_log if c.method == "chat.postMessage"] == [429, 200]
    assert len(fake.messages_in(DESK)) == 1
    assert desk.deliveries(f"slack:{DESK}")[0][1] == "sent"


async def test_long_rate_limit_goes_back_to_the_outbox_with_its_retry_after(
    desk: Desk, fake: FakeSlack
) -> None:
    await desk.start()
    fake.rate_limit_next(1, retry_after=30)

    await desk.publish(story("Seoul markets rally", "4"))

    assert fake.messages_in(DESK) == []
    [(_, status, _, error)] = desk.deliveries(f"slack:{DESK}")
    assert status == "pending" and "ratelimited" in error
    [(wait,)] = desk.sql("SELECT next_attempt_at - strftime('%s', 'now') FROM deliveries")
    assert wait >= 25


async def test_rewritten_headline_updates_the_message_already_posted(
    desk: Desk, fake: FakeSlack
) -> None:
    await desk.start()
    await desk.publish(story("Pyongyang fires missile", "5", "Seoul says it landed at sea."))
    [message] = fake.messages_in(DESK)

    await desk.rewrite("5", "Pyongyang fires two ballistic missiles into the sea")

    [update] = fake.updates
    assert (update.channel, update.ts) == (DESK, message.ts)
    assert fake.messages_in(DESK) == [message]  # edited in place, nothing new posted
    assert "two ballistic missiles" in message.visible_text
    assert "Updated" in message.visible_text
    assert message.event_payload["delivery_id"] == desk.deliveries(f"slack:{DESK}")[0][0]


async def test_restart_after_a_post_not_yet_marked_sent_posts_nothing_twice(
    desk: Desk, fake: FakeSlack
) -> None:
    await desk.start()
    await desk.publish(story("Seoul confirms talks", "6"))
    [(delivery_id, status, message_id, _)] = desk.deliveries(f"slack:{DESK}")
    assert status == "sent"
    await desk.stop()
    # What a crash between chat.postMessage and mark_sent leaves: posted, but still pending.
    desk.sql(
        "UPDATE deliveries SET status = 'pending', message_id = NULL, sent_at = NULL, "
        "next_attempt_at = 0 WHERE id = ?",
        delivery_id,
    )

    await desk.start()  # polls (nothing new) and drains the outbox

    assert len(with_delivery(fake.messages_in(DESK), delivery_id)) == 1
    assert len(fake.calls_to("chat.postMessage")) == 1
    assert desk.deliveries(f"slack:{DESK}") == [(delivery_id, "sent", message_id, None)]
    looked = fake.calls_to("conversations.history")[-1]
    assert looked["channel"] == DESK and looked["include_all_metadata"] in ("1", "true", True)


async def test_missing_channel_fails_with_its_reason_without_blocking_another_channel(
    desk: Desk, fake: FakeSlack
) -> None:
    fake.error_for_channel(GONE, "channel_not_found")
    await desk.start(
        watchlists=[
            {"name": "Korea", "query": "Seoul", "channels": [f"slack:{GONE}", f"slack:{DESK}"]}
        ],
        ops_channel=f"slack:{OPS}",
    )

    await desk.publish(story("Seoul hosts summit", "8"))

    [(_, status, _, error)] = desk.deliveries(f"slack:{GONE}")
    assert status == "failed"
    assert "channel_not_found" in error and "does not exist" in error
    assert len(fake.messages_in(DESK)) == 1
    assert desk.deliveries(f"slack:{DESK}")[0][1] == "sent"
    [notice] = fake.messages_in(OPS)  # the desk's ops channel hears about it, once
    assert f"Cannot deliver to slack:{GONE}" in notice.visible_text


async def test_socket_mode_reconnects_by_itself(desk: Desk, fake: FakeSlack) -> None:
    await desk.start()
    assert desk.platform is not None and desk.platform.connected

    await fake.drop_socket()
    await fake.wait_connected(2)
    reply = await fake.slash_command("status", user_id=REPORTER)

    assert "Connections: slack up" in reply.text
    assert desk.platform.connected


async def test_cards_owed_during_an_outage_go_out_when_the_socket_is_back(
    desk: Desk, fake: FakeSlack
) -> None:
    await desk.start()
    assert desk.bot is not None and desk.bot.worker is not None and desk.platform is not None
    fake.set_down(True)  # the Web API answers 503
    await desk.publish(story("Seoul hosts summit", "9"))
    [(_, status, _, error)] = desk.deliveries(f"slack:{DESK}")
    assert status == "pending" and "503" in error
    fake.set_down(False)
    # As after a long outage: the card's retry is an hour away; only a reconnect helps.
    desk.sql("UPDATE deliveries SET next_attempt_at = ?", time.time() + 3600)
    await desk.bot.worker.drain()
    assert fake.messages_in(DESK) == []

    await fake.drop_socket()
    await fake.wait_connected(2)
    await fake.wait_for(lambda: desk.platform.connected, what="the platform to be up again")
    await desk.bot.worker.drain()

    [card] = fake.messages_in(DESK)
    assert "Seoul hosts summit" in card.text
    assert desk.deliveries(f"slack:{DESK}")[0][1] == "sent"
    assert desk.platform.link.reconnects == 1


async def test_slack_answering_5xx_at_login_is_retried_until_it_works(
    desk: Desk, fake: FakeSlack
) -> None:
    fake.fail_next(2, status=503, method="auth.test", error="service_unavailable")
    fake.fail_next(1, status=500, method="apps.connections.open")

    await desk.start(chat={"reconnect_min": "20ms", "reconnect_max": "100ms"})

    assert desk.platform is not None and desk.platform.connected
    assert [c.status for c in fake.call_log if c.method == "auth.test"] == [503, 503, 200]
    await desk.publish(story("Seoul hosts summit", "5"))
    assert len(fake.messages_in(DESK)) == 1


@pytest.mark.parametrize("which", ["bot_token", "app_token"])
async def test_refused_token_is_logged_clearly_never_itself_and_polling_goes_on(
    desk: Desk, fake: FakeSlack, caplog: pytest.LogCaptureFixture, which: str
) -> None:
    secret = "xoxb-not-the-right-one" if which == "bot_token" else "xapp-not-the-right-one"
    caplog.set_level(logging.INFO)
    started = time.monotonic()

    await desk.start(connect=False, **{which: secret})
    assert desk.platform is not None
    await fake.wait_for(lambda: desk.platform.login_error is not None, what="the login error")

    assert time.monotonic() - started < 3
    env = "SLACK_BOT_TOKEN" if which == "bot_token" else "SLACK_APP_TOKEN"
    assert f"Slack login failed: {env} was refused" in caplog.text
    assert secret not in caplog.text and secret not in repr(desk.platform)
    assert not desk.platform.connected and fake.connections == 0
    # Polling does not depend on Slack: the feed was polled (its baseline recorded).
    assert desk.sql("SELECT count(*) FROM stories") == [(1,)]


async def test_admin_adds_a_feed_given_as_a_slack_wrapped_link(
    desk: Desk, fake: FakeSlack, feed_server: FeedServer
) -> None:
    # Feeds added in chat go through the address guard; this one is on the test's own host.
    await desk.start(fetch={"allow_networks": ["127.0.0.0/8"]})
    feed_server.set("asia.xml", rss([story("Seoul stocks open higher", "a1")]))
    url = feed_server.url("asia.xml")

    reply = await fake.slash_command(f"feed add <{url}> Asia Wire --every 5m", user_id=ADMIN)

    assert "Feed 'Asia Wire' added: 1 stories found, polled every 5m" in reply.text
    assert desk.sql("SELECT name, url, interval_s, origin FROM feeds WHERE name = 'Asia Wire'") == [
        ("Asia Wire", url, 300, "chat")
    ]
    [(action, detail)] = desk.sql("SELECT action, detail FROM audit_log")
    assert action == "feed.add" and json.loads(detail)["url"] == url


async def test_unexpected_failure_is_logged_and_answered_with_an_apology(
    desk: Desk, fake: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    await desk.start()
    desk.sql("DROP TABLE subscriptions")  # the database fails under the command

    reply = await fake.slash_command("subscriptions", user_id=REPORTER)

    assert reply.ephemeral == [True]
    assert reply.text.startswith(":warning: Sorry, that did not work")
    assert "no such table" not in reply.text  # the details go to the log, not to the user
    [record] = [r for r in caplog.records if r.message.startswith("/news 'subscriptions'")]
    assert record.levelno == logging.ERROR and "no such table" in caplog.text

"""The Slack sender against FakeSlack: every outcome a SendResult, re-sends idempotent, posts
paced. The real slack_sdk client does the HTTP; only Slack's side is fake."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.chat.slack.sender import SlackSender, make_client
from bot.core.cards import Card, Digest
from tests.fakes.slack_server import FakeSlack, validate_blocks

pytestmark = pytest.mark.timeout(15)

DESK = "C0DESK"
ASIA = "C0ASIA"
RITA = "U0RITA"


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSlack]:
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    fake = FakeSlack()
    fake.add_user(RITA, name="rita")
    fake.add_channel(DESK, name="newsdesk")
    fake.add_channel(ASIA, name="asia")
    await fake.start()
    yield fake
    await fake.close()


def sender_for(fake: FakeSlack, **options: object) -> SlackSender:
    return SlackSender(make_client(fake.api_base, fake.bot_token), **options)  # type: ignore[arg-type]


def card(delivery_id: int = 1, channel: str = f"slack:{DESK}", **fields: object) -> Card:
    values: dict = {
        "headline": f"Pyongyang fires missile {delivery_id}",
        "url": f"https://w.example/{delivery_id}",
        "source": "Wire",
        "published": datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        "summary": "Seoul says it landed at sea.",
        "matched": ("Pyongyang",),
        "channel": channel,
        "watchlists": ("Korea",),
        "delivery_id": delivery_id,
        "story_id": delivery_id,
    }
    values.update(fields)
    return Card(**values)


# --- failure mapping --------------------------------------------------------------------------


def refuse_channel(error: str):
    return lambda fake: fake.error_for_channel(DESK, error)


def refuse(method: str, error: str):
    return lambda fake: fake.fail_next(1, status=200, method=method, error=error)


PERMANENT = [
    ("channel_not_found", f"slack:{DESK}", refuse_channel("channel_not_found"), "does not exist"),
    ("not_in_channel", f"slack:{DESK}", refuse_channel("not_in_channel"), "invite it"),
    ("is_archived", f"slack:{DESK}", refuse_channel("is_archived"), "archived"),
    ("user_not_found", "slack:dm:U0NOBODY", lambda fake: None, "no such Slack user"),
    ("cannot_dm_bot", f"slack:dm:{RITA}", refuse("conversations.open", "cannot_dm_bot"), "bot"),
    ("invalid_auth", f"slack:{DESK}", refuse("chat.postMessage", "invalid_auth"), "TOKEN"),
    ("account_inactive", f"slack:{DESK}", refuse("chat.postMessage", "account_inactive"), ""),
    ("missing_scope", f"slack:{DESK}", refuse("chat.postMessage", "missing_scope"), "reinstall"),
    ("invalid_blocks", f"slack:{DESK}", refuse("chat.postMessage", "invalid_blocks"), "refused"),
]


@pytest.mark.parametrize(
    ("error", "target", "setup", "words"), PERMANENT, ids=[p[0] for p in PERMANENT]
)
async def test_permanent_refusals_fail_with_a_readable_reason(
    fake: FakeSlack, error: str, target: str, setup, words: str
) -> None:
    setup(fake)

    result = await sender_for(fake).send(card(channel=target))

    assert (result.ok, result.permanent) == (False, True)
    assert f"[{error}]" in result.error and words in result.error
    assert fake.messages == []


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retried(fake: FakeSlack, status: int) -> None:
    fake.fail_next(1, status=status)

    result = await sender_for(fake).send(card())

    assert (result.ok, result.permanent) == (False, False)
    assert f"HTTP {status}" in result.error


async def test_unreachable_slack_is_retried_and_nothing_raises(fake: FakeSlack) -> None:
    sender = SlackSender(make_client("http://127.0.0.1:9/api/", fake.bot_token), pace=0)

    results = [
        await sender.send(card()),
        await sender.edit(card(), f"{DESK}/1.0"),
        await sender.send_digest(Digest(f"slack:{DESK}", (card(1), card(2)))),
        await sender.notify(f"slack:{DESK}", "hello"),
    ]

    for result in results:
        assert (result.ok, result.permanent) == (False, False)
        assert "cannot reach Slack" in result.error


async def test_a_long_rate_limit_is_handed_back_with_its_retry_after(fake: FakeSlack) -> None:
    fake.rate_limit_next(1, retry_after=30)

    result = await sender_for(fake).send(card())

    assert (result.ok, result.permanent, result.retry_after) == (False, False, 30.0)
    assert len(fake.calls_to("chat.postMessage")) == 1  # not slept on inside the send


# --- idempotency --------------------------------------------------------------------------------


async def test_a_post_that_timed_out_but_landed_is_found_not_posted_again(fake: FakeSlack) -> None:
    sender = SlackSender(make_client(fake.api_base, fake.bot_token, timeout=1))
    assert (await sender.send(card(1))).ok  # the channel's history has been read once
    fake.set_down(True, hang=True)

    timed_out = await sender.send(card(2))
    assert (timed_out.ok, timed_out.permanent) == (False, False)
    fake.set_down(False)  # the held post now lands, as a real one can after a client timeout
    await fake.wait_for(lambda: len(fake.messages) == 2, what="the held post")

    again = await sender.send(card(2))

    assert again.ok and again.message_id == f"{DESK}/{fake.messages[1].ts}"
    assert len(fake.messages) == 2
    assert len(fake.calls_to("conversations.history")) == 2  # once at first, once to check


async def test_history_is_read_once_per_channel_not_once_per_card(fake: FakeSlack) -> None:
    sender = sender_for(fake, pace=0)

    for delivery_id in (1, 2, 3):
        assert (await sender.send(card(delivery_id))).ok
    assert (await sender.send(card(4, channel=f"slack:{ASIA}"))).ok
    assert (await sender.send(card(1))).ok  # a re-send in the same process

    assert [a["channel"] for a in fake.calls_to("conversations.history")] == [DESK, ASIA]
    assert len(fake.messages) == 4


async def test_digest_carries_every_delivery_id_and_is_not_repeated_after_a_restart(
    fake: FakeSlack,
) -> None:
    cards = tuple(card(i) for i in (1, 2, 3))
    first = await sender_for(fake).send_digest(Digest(f"slack:{DESK}", cards))
    [digest] = fake.messages
    assert first.message_id == f"{DESK}/{digest.ts}"
    assert digest.event_type == "newsbot_digest"
    assert digest.event_payload == {"delivery_ids": [1, 2, 3]}

    # A new process is handed the same burst plus one more card.
    again = await sender_for(fake).send_digest(Digest(f"slack:{DESK}", (*cards, card(4))))

    assert again.ok
    [_, single] = fake.messages
    assert single.event_payload["delivery_id"] == 4  # only what was missing was posted
    assert "Pyongyang fires missile 4" in single.visible_text


async def test_a_digest_of_80_cards_is_one_message_slack_accepts(fake: FakeSlack) -> None:
    cards = tuple(card(i, headline="word " * 400) for i in range(1, 81))

    result = await sender_for(fake).send_digest(Digest(f"slack:{DESK}", cards))

    assert result.ok, result.error
    [message] = fake.messages
    assert len(message.blocks) == 50 and validate_blocks(message.blocks) == []
    assert message.event_payload["delivery_ids"] == list(range(1, 81))


# --- edits, DMs, notices, pace -----------------------------------------------------------------


async def test_edit_updates_in_place_and_refusals_are_permanent(fake: FakeSlack) -> None:
    sender = sender_for(fake, pace=0)
    posted = await sender.send(card(1, channel=f"slack:dm:{RITA}"))
    assert posted.ok and posted.message_id.startswith("D")

    edited = await sender.edit(card(1, headline="Pyongyang fires two missiles"), posted.message_id)
    [message] = fake.dms_to(RITA)

    assert edited.ok and edited.message_id == posted.message_id
    assert "two missiles" in message.visible_text and message.edits == 1
    bad_id = await sender.edit(card(1), "not-a-message-id")
    gone = await sender.edit(card(1), f"{DESK}/1234.5678")
    assert bad_id.permanent and "not a Slack message id" in bad_id.error
    assert gone.permanent and "[message_not_found]" in gone.error


async def test_notice_is_escaped(fake: FakeSlack) -> None:
    result = await sender_for(fake).notify(
        f"slack:{DESK}", "Feed '<!channel> *x*' is failing: <@U1> & co"
    )

    [message] = fake.messages
    assert result.ok
    assert "&lt;!channel&gt;" in message.visible_text and "<!channel>" not in message.visible_text
    assert "<@U1>" not in (message.text or "") + message.visible_text
    assert message.metadata is None


async def test_posts_to_one_channel_are_paced_but_other_channels_are_not(fake: FakeSlack) -> None:
    sender = sender_for(fake)
    await sender.send(card(1))

    started = time.monotonic()
    await sender.send(card(2, channel=f"slack:{ASIA}"))
    other = time.monotonic() - started
    await asyncio.gather(sender.send(card(3)), sender.send(card(4)))
    same = time.monotonic() - started

    assert other < 0.5
    assert same >= 1.9  # two more posts to DESK: one second after each other and the first
    assert len(fake.messages) == 4

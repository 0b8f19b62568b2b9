"""The fake Slack speaks the wire protocol the real slack_bolt and slack_sdk expect.

Every test drives the real AsyncApp + AsyncSocketModeHandler (aiohttp) or the real
AsyncWebClient against FakeSlack on 127.0.0.1; nothing in slack_bolt/slack_sdk is mocked.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_server import FakeSlack, blocks_text, validate_blocks

pytestmark = pytest.mark.timeout(15)

ALICE = "U0ALICE"
NEWSDESK = "C0001"


def build_app(fake: FakeSlack) -> AsyncApp:
    """A tiny bolt app standing in for the bot (whose own code does not exist yet)."""
    # Pass a client rather than token=: bolt copies this client's base_url into the client it
    # builds per request, and warns when both token= and client= are given.
    app = AsyncApp(client=AsyncWebClient(base_url=fake.api_base, token=fake.bot_token))

    @app.command("/news")
    async def news(ack, respond, command):
        text = command["text"].strip()
        if text == "ping":
            await ack("pong")
        elif text == "secret":
            await ack()
            await respond("only you can see this", response_type="ephemeral")
        elif text == "silent":
            await ack()
        elif text == "slow":
            await ack("working on it")
            await asyncio.sleep(0.1)
            await respond(
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*3* stories"}}],
                text="3 stories",
                response_type="in_channel",
            )
        else:
            await ack(f"unknown: {text}")

    @app.event("app_home_opened")
    async def home(event, client):
        await client.views_publish(
            user_id=event["user"],
            view={
                "type": "home",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "Your watchlists"}}
                ],
            },
        )

    return app


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeSlack]:
    # slack_sdk routes every request (websocket included) through HTTP(S)_PROXY and ignores
    # NO_PROXY, so an ambient proxy would swallow 127.0.0.1.
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(var, raising=False)
    fake = FakeSlack()
    fake.add_user(ALICE, name="alice", is_admin=True)
    fake.add_channel(NEWSDESK, name="newsdesk")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def bolt(fake: FakeSlack) -> AsyncIterator[tuple[AsyncApp, AsyncSocketModeHandler]]:
    app = build_app(fake)
    handler = AsyncSocketModeHandler(
        app, fake.app_token, web_client=AsyncWebClient(base_url=fake.api_base, token=fake.app_token)
    )
    await handler.connect_async()
    await fake.wait_connected()
    yield app, handler
    # Close the handler before the fake goes away, or it keeps reconnecting to nothing.
    await handler.close_async()


@pytest.fixture
async def web(fake: FakeSlack) -> AsyncWebClient:
    # Default retry handlers: slack_sdk retries connection errors only, never a 429.
    return AsyncWebClient(base_url=fake.api_base, token=fake.bot_token)


async def test_socket_mode_connects_with_hello(fake: FakeSlack, bolt) -> None:
    assert fake.connections == 1
    assert fake.connected.is_set()
    (method, args), *_ = fake.calls
    assert method == "apps.connections.open"
    assert args == {}  # the app token travels in the Authorization header, not the args


async def test_slash_command_acked_with_text(fake: FakeSlack, bolt) -> None:
    reply = await fake.slash_command("ping", user_id=ALICE)

    assert reply.ack_payload == {"text": "pong"}
    assert reply.texts == ["pong"]
    assert reply.ephemeral == [True]
    assert reply.responses == []
    # bolt authorised the request with auth.test against the fake, once.
    assert [m for m, _ in fake.calls].count("auth.test") == 1


async def test_slash_command_response_url_ephemeral(fake: FakeSlack, bolt) -> None:
    reply = await fake.slash_command("secret", user_id=ALICE)

    assert reply.ack_payload is None
    assert reply.responses == [{"text": "only you can see this", "response_type": "ephemeral"}]
    assert reply.texts == ["only you can see this"]
    assert reply.ephemeral == [True]


async def test_slash_command_collects_late_response_after_visible_ack(
    fake: FakeSlack, bolt
) -> None:
    reply = await fake.slash_command("slow", user_id=ALICE)

    assert reply.texts == ["working on it", "*3* stories"]  # blocks win over the fallback text
    assert reply.ephemeral == [True, False]
    assert "3 stories" not in reply.text


async def test_slash_command_with_no_visible_answer_times_out(fake: FakeSlack, bolt) -> None:
    with pytest.raises(TimeoutError, match=r"acked with None and nothing was POSTed"):
        await fake.slash_command("silent", user_id=ALICE, timeout=0.5)

    reply = await fake.slash_command("silent", user_id=ALICE, timeout=0.5, allow_silent=True)
    assert reply.replies == []


async def test_slash_command_without_a_connection_fails_fast(fake: FakeSlack) -> None:
    with pytest.raises(RuntimeError, match="no live Socket Mode connection"):
        await fake.slash_command("ping", user_id=ALICE, timeout=0.2)


async def test_app_home_opened_publishes_view(fake: FakeSlack, bolt) -> None:
    view = await fake.app_home_opened(ALICE)

    assert view["type"] == "home"
    assert blocks_text(view["blocks"]) == "Your watchlists"
    assert fake.home_views[ALICE] is view


async def test_post_message_with_blocks_and_metadata_shows_in_history(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Quake* hits coast"}}]
    metadata = {"event_type": "newsbot_delivery", "event_payload": {"delivery_id": "d-1"}}
    first = await web.chat_postMessage(
        channel=NEWSDESK, text="Quake", blocks=blocks, metadata=metadata
    )
    second = await web.chat_postMessage(channel="#newsdesk", text="plain", unfurl_links=False)

    assert first["channel"] == second["channel"] == NEWSDESK
    assert float(first["ts"]) < float(second["ts"])
    assert first["message"]["metadata"] == metadata
    [posted, plain] = fake.messages_in(NEWSDESK)
    assert (posted.text, posted.blocks, posted.user) == ("Quake", blocks, fake.bot_user_id)
    assert posted.event_type == "newsbot_delivery"
    assert posted.event_payload == {"delivery_id": "d-1"}
    assert plain.unfurl_links is False

    history = await web.conversations_history(channel=NEWSDESK, limit=10, include_all_metadata=True)
    assert [m["ts"] for m in history["messages"]] == [second["ts"], first["ts"]]  # newest first
    assert history["messages"][1]["metadata"] == metadata
    assert history["messages"][1]["blocks"] == blocks

    bare = await web.conversations_history(channel=NEWSDESK, oldest=first["ts"])
    assert [m["ts"] for m in bare["messages"]] == [second["ts"]]  # oldest is exclusive
    assert all("metadata" not in m for m in bare["messages"])

    page = await web.conversations_history(channel=NEWSDESK, limit=1)
    assert page["has_more"] is True
    cursor = page["response_metadata"]["next_cursor"]
    rest = await web.conversations_history(channel=NEWSDESK, limit=1, cursor=cursor)
    assert [m["ts"] for m in rest["messages"]] == [first["ts"]]


async def test_thread_replies_are_apart_from_the_channel_and_a_gone_parent_is_refused(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    parent = await web.chat_postMessage(channel=NEWSDESK, text="card")
    metadata = {"event_type": "newsbot_update", "event_payload": {"delivery_id": 1}}
    await web.chat_postMessage(
        channel=NEWSDESK, text="update", thread_ts=parent["ts"], metadata=metadata
    )
    assert [m.text for m in fake.top_level_in(NEWSDESK)] == ["card"]
    assert [m.text for m in fake.replies_to(NEWSDESK, parent["ts"])] == ["update"]
    thread = await web.conversations_replies(
        channel=NEWSDESK, ts=parent["ts"], include_all_metadata=True
    )
    assert [m.get("metadata") for m in thread["messages"]] == [None, metadata]
    await web.chat_delete(channel=NEWSDESK, ts=parent["ts"])
    with pytest.raises(SlackApiError) as gone:
        await web.conversations_replies(channel=NEWSDESK, ts=parent["ts"])
    assert gone.value.response["error"] == "thread_not_found"


async def test_form_encoded_arguments_are_understood(fake: FakeSlack, web: AsyncWebClient) -> None:
    blocks = [{"type": "divider"}]
    metadata = {"event_type": "e", "event_payload": {"k": 1}}
    await web.api_call(
        "chat.postMessage",
        data={
            "channel": NEWSDESK,
            "text": "form",
            "blocks": json.dumps(blocks),
            "metadata": json.dumps(metadata),
        },
    )

    [message] = fake.messages
    assert (message.text, message.blocks, message.metadata) == ("form", blocks, metadata)


async def test_update_dm_users_and_ephemeral(fake: FakeSlack, web: AsyncWebClient) -> None:
    opened = await web.conversations_open(users=ALICE)
    again = await web.conversations_open(users=[ALICE])
    dm = opened["channel"]["id"]
    assert dm.startswith("D")
    assert again["channel"]["id"] == dm

    posted = await web.chat_postMessage(channel=dm, text="your story")
    await web.chat_update(channel=dm, ts=posted["ts"], text="your story (updated)")
    assert [m.text for m in fake.dms_to(ALICE)] == ["your story (updated)"]
    assert fake.updates[0].text == "your story (updated)"

    user = (await web.users_info(user=ALICE))["user"]
    assert (user["id"], user["name"], user["is_admin"], user["is_bot"]) == (
        ALICE,
        "alice",
        True,
        False,
    )
    await web.chat_postEphemeral(channel=NEWSDESK, user=ALICE, text="psst")
    assert fake.ephemerals[0].text == "psst"


async def test_rate_limit_is_retried_with_the_retry_handler(fake: FakeSlack) -> None:
    client = AsyncWebClient(
        base_url=fake.api_base,
        token=fake.bot_token,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.rate_limit_next(1, retry_after=1)
    started = time.monotonic()

    response = await client.chat_postMessage(channel=NEWSDESK, text="after the limit")

    assert response["ok"]
    assert time.monotonic() - started >= 1.0
    assert [c.status for c in fake.call_log] == [429, 200]
    assert len(fake.calls_to("chat.postMessage")) == 2
    assert len(fake.messages) == 1


async def test_rate_limit_without_retry_handler_raises(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    fake.rate_limit_next(1, retry_after=7)

    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel=NEWSDESK, text="limited")

    assert caught.value.response["error"] == "ratelimited"
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] == "7"
    assert fake.messages == []


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived"])
async def test_error_for_channel(fake: FakeSlack, web: AsyncWebClient, error: str) -> None:
    fake.add_channel("C0002", name="archive")
    fake.error_for_channel("C0002", error)

    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel="C0002", text="x")

    assert caught.value.response["error"] == error
    assert fake.calls[-1][0] == "chat.postMessage"


async def test_unknown_channel_bad_blocks_and_unknown_method(
    fake: FakeSlack, web: AsyncWebClient
) -> None:
    async def error_of(call) -> str:
        with pytest.raises(SlackApiError) as caught:
            await call
        return caught.value.response["error"]

    section = {"type": "section", "text": {"type": "mrkdwn", "text": "x"}}
    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    assert await error_of(web.chat_postMessage(channel="C404", text="x")) == "channel_not_found"
    with pytest.warns(UserWarning, match="`text` argument is missing"):
        assert await error_of(web.chat_postMessage(channel=NEWSDESK)) == "no_text"
    assert (
        await error_of(web.chat_postMessage(channel=NEWSDESK, text="x", blocks=[section] * 51))
        == "invalid_blocks"
    )
    assert (
        await error_of(web.chat_postMessage(channel=NEWSDESK, text="x", blocks=[long_section]))
        == "invalid_blocks"
    )
    assert await error_of(web.api_call("reactions.add", json={"name": "x"})) == "unknown_method"
    assert fake.calls[-1] == ("reactions.add", {"name": "x"})
    assert fake.messages == []
    assert validate_blocks([section] * 50) == []


async def test_tokens_are_checked(fake: FakeSlack) -> None:
    wrong = AsyncWebClient(base_url=fake.api_base, token="xoxb-wrong")
    app_level = AsyncWebClient(base_url=fake.api_base, token=fake.app_token)

    with pytest.raises(SlackApiError, match="invalid_auth"):
        await wrong.auth_test()
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await app_level.chat_postMessage(channel=NEWSDESK, text="x")
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await AsyncWebClient(base_url=fake.api_base).apps_connections_open(app_token=fake.bot_token)


async def test_fail_next_and_down(fake: FakeSlack, web: AsyncWebClient) -> None:
    fake.fail_next(1, status=500)
    with pytest.raises(SlackApiError) as caught:
        await web.chat_postMessage(channel=NEWSDESK, text="x")
    assert caught.value.response.status_code == 500

    fake.set_down(True)
    with pytest.raises(SlackApiError) as caught:
        await web.auth_test()
    assert caught.value.response.status_code == 503

    fake.set_down(False)
    assert (await web.auth_test())["user_id"] == fake.bot_user_id


async def test_hanging_request_times_out_but_still_lands(fake: FakeSlack) -> None:
    client = AsyncWebClient(
        base_url=fake.api_base, token=fake.bot_token, timeout=1, retry_handlers=[]
    )
    fake.set_down(True, hang=True)

    with pytest.raises(TimeoutError):
        await client.chat_postMessage(channel=NEWSDESK, text="slow network")
    assert fake.messages == []

    # Like the real Slack, a request the client gave up on can still take effect.
    fake.set_down(False)
    await fake.wait_for(lambda: len(fake.messages) == 1, timeout=2, what="the held post")


@pytest.mark.parametrize("graceful", [False, True])
async def test_drop_socket_reconnects_and_keeps_working(
    fake: FakeSlack, bolt, graceful: bool
) -> None:
    await fake.drop_socket(graceful=graceful)
    await fake.wait_connected(2)

    reply = await fake.slash_command("ping", user_id=ALICE)

    assert reply.texts == ["pong"]
    assert fake.connections == 2
    assert fake.calls_to("apps.connections.open") == [{}, {}]

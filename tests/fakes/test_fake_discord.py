"""The fake Discord works with the real discord.py: login, sync, messages, failures, interactions.

The client here is a plain discord.Client with an app_commands.CommandTree defined in this file; it
stands in for the bot so that the fake is proven before the bot's own code relies on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import pytest
from discord import app_commands

from tests.fakes.discord_server import EPHEMERAL, FakeDiscord, point_discord_at

ADMINISTRATOR = 1 << 3
MANAGE_GUILD = 1 << 5
HEADLINES = [
    "Flood warnings issued for the Severn",
    "Floodgates opened at Thames barrier",
    "Election results delayed in three counties",
]


class _Client(discord.Client):
    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        # discord.py sleeps 5 s before every IDENTIFY after the first (a courtesy to Discord's
        # identify limit); tests that force a fresh session would otherwise take 5 s.
        return None


class Harness:
    """A stand-in bot: a real discord.Client, a CommandTree, and what the handlers saw."""

    def __init__(self, guild_id: int) -> None:
        # guild_ready_timeout: discord.py waits this long after the last GUILD_CREATE before
        # on_ready (default 2 s); the fake sends its one guild straight after READY.
        self.client = _Client(intents=discord.Intents.default(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self.client)
        self.seen: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._register(guild_id)

    def _register(self, guild_id: int) -> None:
        tree, seen = self.tree, self.seen

        @tree.command(description="Is the bot alive?")
        async def ping(interaction: discord.Interaction) -> None:
            user = interaction.user
            seen.append(
                {
                    "command": "ping",
                    "user_id": user.id,
                    "guild_id": interaction.guild_id,
                    "is_member": isinstance(user, discord.Member),
                    "administrator": interaction.permissions.administrator,
                    "role_ids": [r.id for r in getattr(user, "roles", [])],
                    "channel": interaction.channel,
                }
            )
            await interaction.response.send_message("pong")

        watchlist = app_commands.Group(name="watchlist", description="Manage watchlists")

        @watchlist.command(name="add", description="Add a watchlist")
        async def watchlist_add(
            interaction: discord.Interaction,
            name: str,
            terms: str,
            limit: app_commands.Range[int, 1, 50] = 10,
            urgent: bool = False,
            channel: discord.TextChannel | None = None,
        ) -> None:
            seen.append(
                {
                    "command": "watchlist add",
                    "name": name,
                    "terms": terms,
                    "limit": limit,
                    "urgent": urgent,
                    "channel": channel,
                }
            )
            embed = discord.Embed(title=f"Watchlist {name}", description=terms)
            await interaction.response.send_message(embed=embed)

        @watchlist.command(name="remove", description="Remove a watchlist")
        async def watchlist_remove(interaction: discord.Interaction, name: str) -> None:
            await interaction.response.send_message(f"removed {name}")

        admin = app_commands.Group(
            name="admin",
            description="Administration",
            default_permissions=discord.Permissions(manage_guild=True),
        )
        feeds = app_commands.Group(name="feeds", description="Feeds", parent=admin)

        @feeds.command(name="pause", description="Pause a feed")
        async def feeds_pause(interaction: discord.Interaction, feed: str) -> None:
            seen.append({"command": "admin feeds pause", "feed": feed})
            await interaction.response.send_message(f"paused {feed}", ephemeral=True)

        tree.add_command(watchlist)
        tree.add_command(admin)

        @tree.command(description="Only you can see this")
        async def secret(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("for your eyes", ephemeral=True)

        @tree.command(description="Takes a while, then follows up")
        async def slow(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await asyncio.sleep(0.05)
            await interaction.followup.send("done", embed=discord.Embed(title="result"))

        @tree.command(description="Takes a while, then edits the original")
        async def slowedit(interaction: discord.Interaction) -> None:
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.edit_original_response(content="edited")

        @tree.command(description="Answers, then follows up twice")
        async def chatty(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("first")
            original = await interaction.original_response()
            seen.append({"command": "chatty", "original": original.content})
            await interaction.followup.send("second")
            await interaction.followup.send("just for you", ephemeral=True)

        @tree.command(description="Search recent stories")
        async def search(interaction: discord.Interaction, query: str) -> None:
            await interaction.response.send_message(f"searching {query}")

        @search.autocomplete("query")
        async def search_complete(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            hits = [h for h in HEADLINES if current.lower() in h.lower()]
            return [app_commands.Choice(name=h, value=h[:100]) for h in hits]

        @tree.command(description="Never answers")
        async def silent(interaction: discord.Interaction) -> None:
            seen.append({"command": "silent"})

        @tree.command(description="Answers after the interaction expired")
        async def late(interaction: discord.Interaction) -> None:
            await asyncio.sleep(0.3)
            try:
                await interaction.response.send_message("too late")
            except discord.NotFound as exc:
                seen.append({"command": "late", "code": exc.code})

        @tree.command(description="Who is this?")
        async def whois(interaction: discord.Interaction, who: discord.User) -> None:
            seen.append({"command": "whois", "who": who})
            await interaction.response.send_message(f"that is {who.name}")

        @tree.command(description="Guild-only audit", guild=discord.Object(guild_id))
        async def audit(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("audited")

    async def start(self, token: str) -> None:
        await self.client.login(token)
        self._task = asyncio.create_task(self.client.connect())
        await asyncio.wait_for(self.client.wait_until_ready(), 5)

    async def stop(self) -> None:
        await self.client.close()
        if self._task is not None:
            await asyncio.wait_for(self._task, 5)

    def text_channel(self, channel_id: int) -> discord.TextChannel:
        channel = self.client.get_channel(channel_id)
        assert isinstance(channel, discord.TextChannel)
        return channel


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    try:
        with point_discord_at(fake):
            yield fake
    finally:
        await fake.close()


@pytest.fixture
async def bot(fake: FakeDiscord) -> AsyncIterator[Harness]:
    harness = Harness(fake.guild_id)
    await harness.start(fake.token)
    try:
        await harness.tree.sync()
        await harness.tree.sync(guild=discord.Object(fake.guild_id))
        yield harness
    finally:
        await harness.stop()


@pytest.fixture
def channel_id(fake: FakeDiscord) -> int:
    return fake.text_channel_ids[0]


# ------------------------------------------------------------------------------- login / sync


async def test_login_reaches_ready_and_caches_the_guild(fake: FakeDiscord, bot: Harness) -> None:
    assert fake.ready.is_set()
    assert fake.identify_count == 1
    assert fake.resume_count == 0
    assert bot.client.user is not None
    assert bot.client.user.id == fake.bot_user_id
    assert bot.client.application_id == fake.application_id
    guild = bot.client.get_guild(fake.guild_id)
    assert guild is not None
    assert sorted(c.id for c in guild.text_channels) == sorted(fake.text_channel_ids)
    assert guild.me is not None
    assert fake.requests[:2] == [("GET", "/users/@me"), ("GET", "/oauth2/applications/@me")]
    query = fake.gateway_queries[0]
    assert query["encoding"] == "json"
    assert query["v"] == "10"
    # discord.py asks for transport compression; the fake serves zlib-stream frames for it.
    assert query["compress"] in ("zlib-stream", "zstd-stream")
    assert fake.identify_payloads[0]["intents"] == bot.client.intents.value
    assert fake.heartbeats >= 1  # discord.py beats once right after HELLO


async def test_wrong_token_is_refused(fake: FakeDiscord) -> None:
    client = discord.Client(intents=discord.Intents.none())
    async with client:
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")
    assert fake.statuses("GET", "/users/@me") == [401]


async def test_sync_uploads_global_and_guild_commands(fake: FakeDiscord, bot: Harness) -> None:
    synced = await bot.tree.sync()
    names = {c["name"] for c in fake.global_commands}
    assert {"ping", "watchlist", "admin", "search", "secret", "slow"} <= names
    assert "audit" not in names
    assert {c.name: c.id for c in synced} == {c["name"]: int(c["id"]) for c in fake.global_commands}

    guild_synced = await bot.tree.sync(guild=discord.Object(fake.guild_id))
    assert [c.name for c in guild_synced] == ["audit"]
    assert [c["name"] for c in fake.guild_commands[fake.guild_id]] == ["audit"]

    # Ids are stable across re-syncs, as on Discord.
    again = await bot.tree.sync()
    assert {c.id for c in again} == {c.id for c in synced}
    fetched = await bot.tree.fetch_commands()
    assert {c.name for c in fetched} == names
    admin = next(c for c in fake.global_commands if c["name"] == "admin")
    assert admin["default_member_permissions"] == str(MANAGE_GUILD)
    assert [o["type"] for o in admin["options"]] == [2]  # a SUB_COMMAND_GROUP
    assert ("PUT", f"/applications/{fake.application_id}/guilds/{fake.guild_id}/commands") in (
        fake.requests
    )


async def test_invalid_command_upload_is_rejected_like_discord(
    fake: FakeDiscord, bot: Harness
) -> None:
    route = discord.http.Route("PUT", "/applications/{app}/commands", app=fake.application_id)
    bad = [{"name": "Ping", "description": "", "type": 1}]
    with pytest.raises(discord.HTTPException) as info:
        await bot.client.http.request(route, json=bad)
    assert info.value.code == 50035
    assert "0.name" in str(info.value)
    assert "0.description" in str(info.value)


# ------------------------------------------------------------------------------- messages


async def test_message_with_embed_is_recorded_with_its_nonce(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    embed = discord.Embed(title="Flood warning", description="Severn", url="https://example.com/a")
    embed.add_field(name="Source", value="Wire")
    sent = await bot.text_channel(channel_id).send("alert", embed=embed, nonce="delivery-42")

    [recorded] = fake.messages_in(channel_id)
    assert recorded.id == sent.id
    assert recorded.content == "alert"
    assert recorded.nonce == "delivery-42"
    assert recorded.enforce_nonce is True
    assert recorded.embeds[0]["title"] == "Flood warning"
    assert recorded.embeds[0]["fields"] == [{"name": "Source", "value": "Wire", "inline": True}]
    assert recorded.author_id == fake.bot_user_id
    assert recorded.dm_recipient_id is None
    assert sent.embeds[0].title == "Flood warning"
    assert sent.nonce == "delivery-42"


async def test_enforce_nonce_returns_the_existing_message(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    channel = bot.text_channel(channel_id)
    first = await channel.send("alert", nonce="delivery-7")
    second = await channel.send("alert", nonce="delivery-7")
    other_channel = bot.text_channel(fake.text_channel_ids[1])
    third = await other_channel.send("alert", nonce="delivery-7")  # nonces are per channel

    assert second.id == first.id
    assert third.id != first.id
    assert len(fake.messages_in(channel_id)) == 1
    assert fake.messages_in(channel_id)[0].nonce_replays == 1
    assert [m.id for m in fake.deduplicated] == [first.id]


async def test_edit_and_delete_are_recorded(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    sent = await bot.text_channel(channel_id).send("draft")
    edited = await sent.edit(content="final", embed=discord.Embed(title="updated"))
    assert edited.content == "final"
    [edit] = fake.edits
    assert (edit.message_id, edit.channel_id) == (sent.id, channel_id)
    assert edit.payload["content"] == "final"
    recorded = fake.messages_in(channel_id)[0]
    assert recorded.content == "final"
    assert recorded.embeds[0]["title"] == "updated"
    assert recorded.edited_at is not None
    await sent.delete()
    assert recorded.deleted
    with pytest.raises(discord.NotFound) as info:
        await bot.text_channel(channel_id).fetch_message(sent.id)
    assert info.value.code == 10008


async def test_a_thread_is_started_once_on_a_message_and_takes_messages(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    card = await bot.text_channel(channel_id).send("alert")
    http = bot.client.http
    thread = await http.start_thread_with_message(
        channel_id, card.id, name="Updates: alert", auto_archive_duration=10080
    )
    assert (thread["id"], thread["parent_id"], thread["type"]) == (
        str(card.id),
        str(channel_id),
        11,
    )
    with pytest.raises(discord.HTTPException) as again:
        await http.start_thread_with_message(
            channel_id, card.id, name="Updates: alert", auto_archive_duration=10080
        )
    assert (again.value.status, again.value.code) == (400, 160004)
    inside = bot.client.get_partial_messageable(card.id, type=discord.ChannelType.public_thread)
    reply = await inside.send("update", nonce="u-1")
    assert (await inside.send("update", nonce="u-1")).id == reply.id  # nonces hold in threads
    assert [m.content for m in fake.replies_to(card.id)] == ["update"]
    assert fake.messages_in(channel_id) == [fake.messages_in(channel_id)[0]]  # not in the channel
    assert fake.thread_on(card.id).attempts == 2
    other = await bot.text_channel(channel_id).send("another")
    await other.delete()
    with pytest.raises(discord.NotFound) as gone:
        await http.start_thread_with_message(
            channel_id, other.id, name="x", auto_archive_duration=60
        )
    assert gone.value.code == 10008


async def test_threads_need_their_own_permissions(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    card = await bot.text_channel(channel_id).send("alert")
    fake.deny_permissions(channel_id, 1 << 35)  # Create Public Threads
    with pytest.raises(discord.Forbidden) as refused:
        await bot.client.http.start_thread_with_message(
            channel_id, card.id, name="x", auto_archive_duration=60
        )
    assert refused.value.code == 50013


async def test_dm_is_recorded_for_the_recipient(fake: FakeDiscord, bot: Harness) -> None:
    user = await bot.client.fetch_user(777)
    dm = await user.create_dm()
    await dm.send("your alert")
    again = await user.create_dm()

    assert again.id == dm.id == fake.dm_channel_id(777)
    [recorded] = fake.dms_to(777)
    assert recorded.content == "your alert"
    assert recorded.channel_id == dm.id
    assert fake.messages_in(dm.id) == [recorded]


async def test_file_upload_is_recorded(fake: FakeDiscord, bot: Harness, channel_id: int) -> None:
    import io

    file = discord.File(io.BytesIO(b"hello"), filename="story.txt")
    sent = await bot.text_channel(channel_id).send("with a file", file=file)
    [recorded] = fake.messages_in(channel_id)
    assert recorded.attachments[0].filename == "story.txt"
    assert recorded.attachments[0].data == b"hello"
    assert sent.attachments[0].filename == "story.txt"


# ------------------------------------------------------------------------------- validation


def _embed(**overrides: Any) -> discord.Embed:
    embed = discord.Embed(title="ok")
    for key, value in overrides.items():
        if key == "fields":
            for name, text in value:
                embed.add_field(name=name, value=text, inline=False)
        elif key == "footer":
            embed.set_footer(text=value)
        elif key == "author":
            embed.set_author(name=value)
        else:
            setattr(embed, key, value)
    return embed


@pytest.mark.parametrize(
    ("embed", "where"),
    [
        (_embed(title="t" * 257), "embeds.0.title"),
        (_embed(description="d" * 4097), "embeds.0.description"),
        (_embed(fields=[("n", "v" * 1025)]), "embeds.0.fields.0.value"),
        (_embed(fields=[("n" * 257, "v")]), "embeds.0.fields.0.name"),
        (_embed(fields=[("n", "")]), "embeds.0.fields.0.value"),
        (_embed(fields=[(f"n{i}", "v") for i in range(26)]), "embeds.0.fields"),
        (_embed(footer="f" * 2049), "embeds.0.footer.text"),
        (_embed(author="a" * 257), "embeds.0.author.name"),
        (_embed(url="javascript:alert(1)"), "embeds.0.url"),
        (
            _embed(title="t" * 256, description="d" * 4096, fields=[("n", "v" * 1000)] * 2),
            "Embed size exceeds maximum size of 6000",
        ),
    ],
)
async def test_discord_embed_limits_are_enforced(
    fake: FakeDiscord, bot: Harness, channel_id: int, embed: discord.Embed, where: str
) -> None:
    with pytest.raises(discord.HTTPException) as info:
        await bot.text_channel(channel_id).send(embed=embed)
    assert info.value.status == 400
    assert info.value.code == 50035
    assert where in str(info.value)
    assert fake.messages == []


async def test_overlong_and_empty_messages_are_rejected(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    channel = bot.text_channel(channel_id)
    with pytest.raises(discord.HTTPException) as info:
        await channel.send("x" * 2001)
    assert (info.value.code, "content" in str(info.value)) == (50035, True)
    with pytest.raises(discord.HTTPException) as info:
        await channel.send("   ")
    assert info.value.code == 50006
    assert fake.messages == []


# ------------------------------------------------------------------------------- failures


async def test_forbidden_channel_and_closed_dms_raise_forbidden(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    fake.forbid_channel(channel_id)
    with pytest.raises(discord.Forbidden) as info:
        await bot.text_channel(channel_id).send("alert")
    assert info.value.code == 50013

    fake.close_dms(555)
    user = await bot.client.fetch_user(555)
    dm = await user.create_dm()  # opening the DM channel still works on Discord
    with pytest.raises(discord.Forbidden) as info:
        await dm.send("alert")
    assert info.value.code == 50007
    assert fake.messages == []

    fake.forbid_channel(channel_id, forbidden=False)
    await bot.text_channel(channel_id).send("alert")
    assert len(fake.messages_in(channel_id)) == 1


async def test_removed_channel_raises_not_found(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    fake.remove_channel(channel_id)
    with pytest.raises(discord.NotFound) as info:
        await bot.text_channel(channel_id).send("alert")
    assert info.value.code == 10003
    with pytest.raises(discord.NotFound):
        await bot.client.fetch_channel(channel_id)


async def test_rate_limit_is_waited_out_by_discord_py(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    fake.rate_limit_next(1, retry_after=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = await bot.text_channel(channel_id).send("alert")
    elapsed = loop.time() - started

    assert elapsed >= 0.3
    assert [m.id for m in fake.messages_in(channel_id)] == [sent.id]
    assert fake.statuses("POST", f"/channels/{channel_id}/messages") == [429, 200]


async def test_429_from_cloudflare_is_not_retried(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    # Without a Via header discord.py takes a 429 for a Cloudflare ban and gives up at once.
    fake.rate_limit_next(1, retry_after=0.1, cloudflare=True)
    with pytest.raises(discord.HTTPException) as info:
        await bot.text_channel(channel_id).send("alert")
    assert info.value.status == 429
    assert fake.messages == []
    assert fake.statuses("POST", f"/channels/{channel_id}/messages") == [429]


async def test_500_is_retried_by_discord_py_and_then_succeeds(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    # discord.py retries 500/502/504/524 after 1 + 2*tries seconds (five tries: 25 s in all).
    fake.fail_next(1, status=500)
    sent = await bot.text_channel(channel_id).send("alert")
    assert [m.id for m in fake.messages_in(channel_id)] == [sent.id]
    assert fake.statuses("POST", f"/channels/{channel_id}/messages") == [500, 200]


async def test_503_raises_discord_server_error_without_retry(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    fake.fail_next(1, status=503)
    with pytest.raises(discord.DiscordServerError) as info:
        await bot.text_channel(channel_id).send("alert")
    assert info.value.status == 503
    assert fake.statuses("POST", f"/channels/{channel_id}/messages") == [503]
    assert fake.messages == []


async def test_outage_answers_503_or_hangs_until_back(
    fake: FakeDiscord, bot: Harness, channel_id: int
) -> None:
    channel = bot.text_channel(channel_id)
    fake.set_down(True)
    with pytest.raises(discord.DiscordServerError):
        await channel.send("during outage")

    fake.set_down(True, mode="hang")
    sending = asyncio.create_task(channel.send("parked"))
    await fake.wait_until(lambda: fake.hanging == 1, timeout=2, what="the POST to be parked")
    assert fake.messages == []
    fake.set_down(False)
    sent = await asyncio.wait_for(sending, 2)
    assert [m.id for m in fake.messages_in(channel_id)] == [sent.id]


async def test_unknown_route_is_recorded(fake: FakeDiscord, bot: Harness) -> None:
    with pytest.raises(discord.NotFound):
        await bot.client.http.request(discord.http.Route("GET", "/no/such/route"))
    assert fake.unknown_routes == [("GET", "/no/such/route")]


async def test_json_content_type_is_exactly_application_json(fake: FakeDiscord) -> None:
    async with aiohttp.ClientSession() as session:
        headers = {"Authorization": f"Bot {fake.token}"}
        async with session.get(fake.api_base + "/users/@me", headers=headers) as response:
            assert response.headers["Content-Type"] == "application/json"
            assert (await response.json())["id"] == str(fake.bot_user_id)


# ------------------------------------------------------------------------------- gateway


async def test_dropped_gateway_resumes_and_still_delivers_interactions(
    fake: FakeDiscord, bot: Harness
) -> None:
    resumed = asyncio.Event()
    bot.client.event(_set_on(resumed, "on_resumed"))

    await fake.drop_gateway()
    await fake.wait_ready(timeout=5)
    await asyncio.wait_for(resumed.wait(), 5)
    assert fake.resume_count == 1
    assert fake.identify_count == 1

    reply = await fake.invoke("ping", user_id=42, guild_id=fake.guild_id)
    assert reply.content == "pong"


async def test_interaction_sent_while_disconnected_is_replayed_on_resume(
    fake: FakeDiscord, bot: Harness
) -> None:
    await fake.drop_gateway()
    reply = await fake.invoke("ping", user_id=42, guild_id=fake.guild_id)
    assert reply.content == "pong"
    assert fake.resume_count == 1


async def test_invalid_session_makes_the_client_identify_again(
    fake: FakeDiscord, bot: Harness
) -> None:
    await fake.drop_gateway(resumable=False)
    await fake.wait_until(lambda: fake.identify_count == 2, timeout=5, what="a second IDENTIFY")
    await fake.wait_ready(timeout=5)
    assert fake.invalid_sessions == 1
    reply = await fake.invoke("ping", user_id=42, guild_id=fake.guild_id)
    assert reply.content == "pong"


async def test_close_frame_with_resumable_code_reconnects(fake: FakeDiscord, bot: Harness) -> None:
    await fake.drop_gateway(close_code=4000)
    await fake.wait_until(lambda: fake.resume_count == 1, timeout=5, what="a RESUME")
    await fake.wait_ready()


def _set_on(event: asyncio.Event, name: str) -> Any:
    async def handler() -> None:
        event.set()

    handler.__name__ = name
    return handler


# ------------------------------------------------------------------------------- interactions


async def test_invoke_simple_command_from_a_guild_member(fake: FakeDiscord, bot: Harness) -> None:
    reply = await fake.invoke(
        "ping", user_id=42, guild_id=fake.guild_id, permissions=ADMINISTRATOR, roles=[9001]
    )
    assert reply.type == 4
    assert reply.content == "pong"
    assert reply.ephemeral is False
    [seen] = bot.seen
    assert seen["user_id"] == 42
    assert seen["guild_id"] == fake.guild_id
    assert seen["is_member"] is True
    assert seen["administrator"] is True
    assert 9001 in seen["role_ids"]  # the fake announced the new role with GUILD_ROLE_CREATE
    assert seen["channel"].id == fake.text_channel_ids[0]
    sent = reply.payload
    assert sent["member"]["permissions"] == str(ADMINISTRATOR)
    assert sent["attachment_size_limit"] > 0


async def test_invoke_subcommand_in_a_group_with_options(fake: FakeDiscord, bot: Harness) -> None:
    other = fake.text_channel_ids[1]
    reply = await fake.invoke(
        "watchlist",
        {"name": "floods", "terms": "flood OR storm", "limit": 5, "urgent": True, "channel": other},
        subcommand="add",
        user_id=42,
        guild_id=fake.guild_id,
    )
    assert reply.embeds[0]["title"] == "Watchlist floods"
    [seen] = bot.seen
    assert (seen["name"], seen["terms"], seen["limit"], seen["urgent"]) == (
        "floods",
        "flood OR storm",
        5,
        True,
    )
    assert isinstance(seen["channel"], discord.TextChannel)
    assert seen["channel"].id == other
    [option] = reply.payload["data"]["options"]
    assert (option["name"], option["type"]) == ("add", 1)
    assert {o["name"]: o["value"] for o in option["options"]}["channel"] == str(other)
    assert reply.command == "watchlist add"


async def test_invoke_nested_group_accepts_the_path_in_the_name(
    fake: FakeDiscord, bot: Harness
) -> None:
    reply = await fake.invoke(
        "admin feeds pause", {"feed": "reuters"}, user_id=42, guild_id=fake.guild_id
    )
    assert reply.content == "paused reuters"
    [group] = reply.payload["data"]["options"]
    assert (group["name"], group["type"], group["options"][0]["type"]) == ("feeds", 2, 1)
    with pytest.raises(PermissionError):
        await fake.invoke(
            "admin",
            {"feed": "reuters"},
            subcommand="feeds pause",
            user_id=42,
            guild_id=fake.guild_id,
            respect_default_permissions=True,
        )


async def test_user_option_is_resolved(fake: FakeDiscord, bot: Harness) -> None:
    fake.add_user(31337, "reporter")
    reply = await fake.invoke("whois", {"who": 31337}, user_id=42, guild_id=fake.guild_id)
    assert reply.content == "that is reporter"


async def test_ephemeral_reply(fake: FakeDiscord, bot: Harness) -> None:
    reply = await fake.invoke("secret", user_id=42, guild_id=fake.guild_id)
    assert reply.type == 4
    assert reply.ephemeral is True
    assert reply.flags & EPHEMERAL
    assert reply.content == "for your eyes"


async def test_deferred_reply_with_followup(fake: FakeDiscord, bot: Harness) -> None:
    reply = await fake.invoke("slow", user_id=42, guild_id=fake.guild_id)
    assert reply.type == 5
    assert reply.deferred
    [followup] = reply.followups
    assert followup.content == "done"
    assert followup.embeds[0]["title"] == "result"
    assert followup.webhook_id == fake.application_id


async def test_deferred_reply_edited_in_place(fake: FakeDiscord, bot: Harness) -> None:
    reply = await fake.invoke("slowedit", user_id=42, guild_id=fake.guild_id)
    assert reply.type == 5
    assert reply.ephemeral is True
    assert reply.content == "edited"
    assert reply.edits[0]["content"] == "edited"


async def test_followups_keep_arriving_after_invoke_returns(
    fake: FakeDiscord, bot: Harness
) -> None:
    reply = await fake.invoke("chatty", user_id=42, guild_id=fake.guild_id)
    assert reply.content == "first"  # invoke returns on the first answer
    followups = await reply.wait_for_followups(2)
    assert [(m.content, m.ephemeral) for m in followups] == [
        ("second", False),
        ("just for you", True),
    ]
    assert bot.seen == [{"command": "chatty", "original": "first"}]
    assert fake.messages == []  # interaction answers live on the reply, not in fake.messages


async def test_autocomplete_returns_the_bots_choices(fake: FakeDiscord, bot: Harness) -> None:
    choices = await fake.autocomplete(
        "search", {"query": "flood"}, "query", user_id=42, guild_id=fake.guild_id
    )
    assert [c["name"] for c in choices] == HEADLINES[:2]


async def test_dm_interaction_has_a_user_not_a_member(fake: FakeDiscord, bot: Harness) -> None:
    reply = await fake.invoke("ping", user_id=42)
    assert reply.content == "pong"
    [seen] = bot.seen
    assert seen["is_member"] is False
    assert seen["guild_id"] is None
    assert isinstance(seen["channel"], discord.DMChannel)
    assert "user" in reply.payload
    assert "member" not in reply.payload
    with pytest.raises(ValueError, match="guild-only"):
        await fake.invoke("audit", user_id=42)


async def test_guild_command_is_invoked_in_its_guild(fake: FakeDiscord, bot: Harness) -> None:
    reply = await fake.invoke("audit", user_id=42, guild_id=fake.guild_id)
    assert reply.content == "audited"
    assert reply.payload["data"]["guild_id"] == str(fake.guild_id)


async def test_mistakes_in_the_test_fail_fast(fake: FakeDiscord, bot: Harness) -> None:
    with pytest.raises(LookupError, match="never synced"):
        await fake.invoke("nope", user_id=42, guild_id=fake.guild_id)
    with pytest.raises(ValueError, match="unknown option"):
        await fake.invoke("ping", {"x": 1}, user_id=42, guild_id=fake.guild_id)
    with pytest.raises(ValueError, match="needs a subcommand"):
        await fake.invoke("watchlist", user_id=42, guild_id=fake.guild_id)
    with pytest.raises(ValueError, match="required option"):
        await fake.invoke(
            "watchlist", {"name": "x"}, subcommand="add", user_id=42, guild_id=fake.guild_id
        )
    with pytest.raises(ValueError, match="outside"):
        await fake.invoke(
            "watchlist add",
            {"name": "x", "terms": "y", "limit": 99},
            user_id=42,
            guild_id=fake.guild_id,
        )


async def test_unanswered_interaction_times_out_with_a_useful_message(
    fake: FakeDiscord, bot: Harness
) -> None:
    with pytest.raises(TimeoutError, match="not acknowledged"):
        await fake.invoke("silent", user_id=42, guild_id=fake.guild_id, timeout=0.3)
    assert bot.seen == [{"command": "silent"}]


async def test_answer_after_the_deadline_is_unknown_interaction(
    fake: FakeDiscord, bot: Harness
) -> None:
    fake.interaction_deadline = 0.1  # Discord allows 3 s
    with pytest.raises(TimeoutError, match="10062"):
        await fake.invoke("late", user_id=42, guild_id=fake.guild_id, timeout=1.0)
    await fake.wait_until(lambda: bool(bot.seen), timeout=2, what="the late handler")
    assert bot.seen == [{"command": "late", "code": 10062}]


# ------------------------------------------------------------------------------- pointing


def _discord_globals() -> tuple[str, str]:
    return str(discord.http.Route.BASE), str(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


async def test_point_discord_at_sets_and_restores_both_globals() -> None:
    before = _discord_globals()
    async with FakeDiscord() as fake:
        with point_discord_at(fake):
            assert _discord_globals() == (fake.api_base, fake.gateway_url)
        assert _discord_globals() == before
        restore = point_discord_at(fake)
        assert _discord_globals() == (fake.api_base, fake.gateway_url)
        restore()
        restore()  # idempotent
    assert _discord_globals() == before


async def test_fake_closes_cleanly_while_a_request_hangs() -> None:
    async with FakeDiscord() as fake, aiohttp.ClientSession() as session:
        fake.set_down(True, mode="hang")
        url = f"{fake.api_base}/channels/{fake.text_channel_ids[0]}/messages"
        headers = {"Authorization": f"Bot {fake.token}"}
        pending = asyncio.create_task(session.post(url, json={"content": "x"}, headers=headers))
        await fake.wait_until(lambda: fake.hanging == 1, timeout=2, what="the parked POST")
        await fake.close()
        with contextlib.suppress(aiohttp.ClientError):
            response = await asyncio.wait_for(pending, 2)
            assert response.status == 503
            response.release()

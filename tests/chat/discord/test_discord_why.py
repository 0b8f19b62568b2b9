"""/why on Discord, end to end: the real bot, discord.py and SQLite against the fake Discord (the
desk and its helpers are those of test_discord_e2e). Each test asks about one story and checks
what the asker reads: what happened to it and why, and nothing of channels that are not theirs."""

from __future__ import annotations

import pytest

from tests.chat.discord.markdown import masked_link_targets
from tests.chat.discord.test_discord_e2e import (
    CH_DESK,
    CH_OPS,
    CH_WORLD,
    EDITOR,
    ESCAPED,
    FOREIGN_GUILD,
    HOSTILE,
    MANAGE_GUILD,
    READER,
    Desk,
    Item,
    rss,
)
from tests.fakes.discord_server import FakeDiscord

pytestmark = pytest.mark.timeout(20)
# The desk's fixtures (fake, desk_factory) are test_discord_e2e's, shared by conftest.py.

CH_FOREIGN = 1_400_000_000_000_000_099  # a channel of somebody else's server

FLOODS = {"name": "Floods", "query": "flood", "channels": [f"discord:{CH_DESK}"]}
KOREA = {
    "name": "Korea",
    "query": '"Kim Jong Un" AND NOT sport',
    "channels": [f"discord:{CH_WORLD}"],
}
SEVERN = "Flood warnings issued for the Severn"


async def why(desk: Desk, story: str, *, user_id: int = READER, **kw) -> str:
    reply = await desk.invoke("why", {"story": story}, user_id=user_id, **kw)
    assert reply.ephemeral
    content = reply.content or ""
    assert 0 < len(content) <= 2000
    return content


@pytest.fixture
async def desk(desk_factory) -> Desk:
    desk = desk_factory(watchlists=[FLOODS, KOREA])
    await desk.start()
    return desk


async def test_why_an_alerted_story_names_the_feed_the_card_and_the_terms(
    desk: Desk, fake: FakeDiscord
) -> None:
    await desk.invoke("subscribe", {"query": "Severn"})
    await desk.invoke("subscribe", {"query": "flood"}, user_id=EDITOR)  # someone else's
    await desk.publish(Item(SEVERN, "a1"))

    answer = await why(desk, "https://wire.example/a1?utm_source=share")

    lines = answer.splitlines()
    assert lines[0] == f'Why: "{SEVERN}"'
    assert lines[1].startswith("• First seen on Wire at ")
    assert f"• Watchlist Floods → discord:{CH_DESK}: card posted · matched Flood" in answer
    assert f"• Your subscriptions → discord:dm:{READER}: card posted · matched Severn" in answer
    # Another person's cards and subscriptions are theirs.
    assert str(EDITOR) not in answer
    assert "Subscriptions of" not in answer


async def test_why_names_a_private_channel_only_to_those_who_can_open_it(
    desk_factory, fake: FakeDiscord
) -> None:
    # The investigations desk's channel is private (its role sees it): an ordinary member
    # asking /why learns nothing of it, not its watchlist's name nor its card, though the
    # channel is on the same server.
    investigations = 3_000_000_000_000_000_001
    fake.hide_channel(CH_OPS, roles=(investigations,))
    secret = {"name": "Severn Trent inquiry", "query": "Severn", "channels": [f"discord:{CH_OPS}"]}
    desk = desk_factory(watchlists=[FLOODS, secret])
    await desk.start()
    await desk.publish(Item(SEVERN, "p1"))
    assert len(fake.messages_in(CH_OPS)) == 1  # the bot, invited to it, posted there

    reader = await why(desk, "Flood warnings Severn")
    insider = await why(desk, "Flood warnings Severn", roles=(investigations,))

    assert f"• Watchlist Floods → discord:{CH_DESK}: card posted" in reader
    assert "Severn Trent inquiry" not in reader and str(CH_OPS) not in reader
    assert f"• Watchlist Floods → discord:{CH_DESK}: card posted" in insider
    assert f"• Watchlist Severn Trent inquiry → discord:{CH_OPS}: card posted" in insider


async def test_why_a_missed_story_names_the_part_of_the_query_that_failed(desk: Desk) -> None:
    await desk.publish(
        Item("Kim Jong Un opens the football season", "k1", description="A sport story."),
        Item("North Korea's leader inspects a missile", "k2", description="Pyongyang said so."),
    )

    excluded = await why(desk, "Kim Jong Un football")
    missing = await why(desk, "leader inspects missile")

    assert excluded.splitlines()[0] == 'Why: "Kim Jong Un opens the football season"'
    assert (
        '• Watchlist Korea: did not match: "sport" is in the story, and the query excludes it'
        in excluded
    )
    assert missing.splitlines()[0] == 'Why: "North Korea\'s leader inspects a missile"'
    assert '• Watchlist Korea: did not match: "Kim Jong Un" not found in the story' in missing
    assert '• Watchlist Floods: did not match: "flood" not found in the story' in missing


async def test_why_a_duplicate_names_the_story_it_repeats_and_that_storys_card(
    desk_factory, fake: FakeDiscord, feed_server
) -> None:
    feed_server.set("agency.xml", rss([]))
    desk = desk_factory(
        watchlists=[FLOODS], more_feeds=[{"name": "Agency", "url": feed_server.url("agency.xml")}]
    )
    await desk.start()
    lead = "Rivers burst their banks across the Severn valley overnight, officials said."
    await desk.publish(Item(SEVERN, "a1", description=lead))
    desk.feeds.set(
        "agency.xml",
        rss([Item(SEVERN, "ag-77", description=lead, link="https://agency.example/ag-77")]),
    )
    assert desk.bot is not None
    await desk.bot.run_once()
    assert len(fake.messages_in(CH_DESK)) == 1  # one story, one card

    answer = await why(desk, "https://agency.example/ag-77")

    assert answer.splitlines()[0] == (
        "Why: that link (Agency, "
        + answer.split("Why: that link (Agency, ", 1)[1].split(")", 1)[0]
        + f') is a duplicate of a story first seen on Wire: "{SEVERN}". One story gets one '
        "card per channel, so the duplicate alerted nobody by itself; the story's cards are "
        "below."
    )
    assert "• First seen on Wire at " in answer
    assert "<https://wire.example/a1>" in answer
    assert "• Also seen on Agency at " in answer
    assert "a duplicate of this story (no second card where it had one)" in answer
    assert f"• Watchlist Floods → discord:{CH_DESK}: card posted · matched" in answer


async def test_why_a_baseline_story_says_the_first_poll_alerts_nobody(
    desk_factory, fake: FakeDiscord
) -> None:
    desk = desk_factory(watchlists=[FLOODS])
    first = Item(SEVERN, "b1")
    desk.items = [first]
    desk.feeds.set("wire.xml", rss([first]))
    await desk.start()  # the first poll of the feed is its baseline
    assert fake.messages_in(CH_DESK) == []

    answer = await why(desk, "Severn flood warnings")

    assert answer.splitlines()[0] == f'Why: "{SEVERN}"'
    baseline = (
        "it was first seen in the baseline poll of Wire (a new feed's first poll is recorded, "
        "not alerted)"
    )
    assert f"• Not alerted: {baseline}." in answer
    assert f"• Watchlist Floods: matches, but no card: {baseline}" in answer


async def test_why_a_failed_delivery_gives_the_reason(desk: Desk, fake: FakeDiscord) -> None:
    fake.forbid_channel(CH_DESK)
    await desk.publish(Item(SEVERN, "a1"))

    answer = await why(desk, SEVERN)

    assert f"• Watchlist Floods → discord:{CH_DESK}: the delivery failed: " in answer
    assert "50013 Missing Permissions" in answer


async def test_why_names_a_digest_and_an_update_past_the_cap(
    desk_factory, fake: FakeDiscord
) -> None:
    desk = desk_factory(watchlists=[FLOODS], alerts={"burst_limit": 1, "max_updates": 0})
    await desk.start()
    others = [Item("Flood barriers raised", "a2"), Item("Flood sirens tested", "a3")]
    await desk.publish(Item(SEVERN, "a1"), *others)
    desk.items.clear()
    await desk.publish(Item("Flood warnings extended to the Wye", "a1"), *others)
    assert fake.edits == []  # no edit allowed
    digested, *_ = [
        item for item in others if (await desk.deliveries(item.title))[0].digest_group
    ]  # a burst: the first card in full, the others in one digest

    capped = await why(desk, "https://wire.example/a1")
    folded = await why(desk, digested.title)

    assert capped.splitlines()[0] == 'Why: "Flood warnings extended to the Wye"'
    assert (
        "card posted; later updates were not posted (over the cap of 0 edits, "
        "alerts.max\\_updates)" in capped  # markdown escaped: shown as typed
    )
    assert (
        f"• Watchlist Floods → discord:{CH_DESK}: card posted (folded into a digest with other "
        "cards of a burst)" in folded
    )


async def test_why_an_unknown_link_says_so_and_shows_the_closest_by_its_words(
    desk: Desk,
) -> None:
    await desk.publish(Item(SEVERN, "a1"), Item("Markets calm before the open", "m1"))

    unknown = await why(desk, "https://elsewhere.example/news/severn-flood-warnings-2026")
    nothing = await why(desk, "https://elsewhere.example/zzz")
    no_words = await why(desk, "qwertyuiop asdfgh")

    assert unknown.splitlines()[0] == (
        "No stored story has that link. The closest stored stories by its words:"
    )
    assert unknown.splitlines()[1].startswith(f"• {SEVERN} · Wire · ")
    assert "Markets" not in unknown
    assert nothing == "No stored story has that link."
    assert no_words == "No stored story has any of those words in its headline."


async def test_why_shows_a_hostile_headline_as_inert_text(desk: Desk) -> None:
    title = f"Flood @everyone <@&456> {HOSTILE}"
    await desk.publish(Item(title, "h1"))

    answer = await why(desk, "Flood everyone")

    assert answer.splitlines()[0] == f'Why: "Flood @\u200beveryone <\u200b@&456> {ESCAPED}"'
    assert "@everyone" not in answer
    assert masked_link_targets(answer) == []


async def test_a_member_sees_nothing_of_another_servers_channel_and_an_admin_sees_it(
    desk_factory, fake: FakeDiscord
) -> None:
    fake.add_guild(FOREIGN_GUILD, name="Elsewhere", text_channel_ids=(CH_FOREIGN,))
    abroad = {"name": "Abroad", "query": "flood", "channels": [f"discord:{CH_FOREIGN}"]}
    desk = desk_factory(watchlists=[FLOODS, abroad])
    await desk.start()
    await desk.publish(Item(SEVERN, "a1"))
    assert len(fake.messages_in(CH_FOREIGN)) == 1

    member = await why(desk, SEVERN)
    admin = await why(desk, SEVERN, user_id=EDITOR, permissions=MANAGE_GUILD)
    in_dm = await why(desk, SEVERN, guild_id=None)

    assert f"• Watchlist Floods → discord:{CH_DESK}: card posted" in member
    assert "Abroad" not in member and str(CH_FOREIGN) not in member
    assert f"• Watchlist Abroad → discord:{CH_FOREIGN}: card posted" in admin
    assert "Floods" not in in_dm and "Abroad" not in in_dm
    assert "No watchlist posting to this server and none of your subscriptions" in in_dm

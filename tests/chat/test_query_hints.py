"""A query that is valid but probably not what was meant gets a hint in the reply, on the real
Discord commands: `putin or kremlin` is one phrase, since operators are written in capitals."""

from __future__ import annotations

from tests.chat.discord import test_discord_e2e as discord_e2e
from tests.chat.discord.test_discord_e2e import Desk, Item

fake = discord_e2e.fake
desk_factory = discord_e2e.desk_factory
desk = discord_e2e.desk


async def test_subscribe_and_watchlist_test_hint_at_a_lowercase_operator(desk: Desk) -> None:
    await desk.publish(Item("Putin or Kremlin: who decides", "p1"), Item("Kremlin denies", "p2"))
    reply = await desk.invoke("subscribe", {"query": "putin or kremlin"})
    text = reply.content or ""
    assert "Subscribed" in text
    assert "'putin or kremlin' is looked for as one phrase, 'or' included" in text
    assert "write it in capitals: putin OR kremlin" in text

    tested = await desk.as_editor("watchlist test", {"query": "putin or kremlin"})
    assert "would have matched 1 stories" in (tested.content or "")  # the phrase, as promised
    assert "write it in capitals: putin OR kremlin" in (tested.content or "")

    quoted = await desk.invoke("subscribe", {"query": '"Trinidad and Tobago"'})
    assert "Note:" not in (quoted.content or "")

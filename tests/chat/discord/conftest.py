"""The Discord desk's fixtures (a fake Discord, a desk factory), defined with the desk in
test_discord_e2e and shared with the other Discord test modules."""

from tests.chat.discord.test_discord_e2e import desk_factory, fake

__all__ = ["desk_factory", "fake"]

"""How Discord's destinations are written, in the config file, in chat and in the database:
"discord:<channel id>" and "discord:dm:<user id>". Ids are snowflakes (digits)."""

from __future__ import annotations

from bot.core.destinations import PrefixedForm

PLATFORM = "discord"

# A channel named in the config or in chat is a snowflake (17 to 20 digits today, room either
# side); a person is whoever Discord said subscribed, so any id it gives is taken.
DESTINATION_FORM = PrefixedForm(PLATFORM, channel=r"\d{5,25}", user=r"\d{1,25}")

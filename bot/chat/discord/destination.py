"""How Discord's destinations are written, in the config file, in chat and in the database:
"discord:<channel id>" and "discord:dm:<user id>". Ids are snowflakes (digits).

A card may ping a role ("role:<role id>") or a person ("user:<user id>"), both snowflakes
(bot.core.pings); Discord has no user groups."""

from __future__ import annotations

from bot.core.destinations import PrefixedForm
from bot.core.pings import PingForm, PingKind

PLATFORM = "discord"

SNOWFLAKE = r"\d{5,25}"  # 17 to 20 digits today, room either side

# A channel named in the config or in chat is a snowflake; a person is whoever Discord said
# subscribed, so any id it gives is taken.
DESTINATION_FORM = PrefixedForm(
    PLATFORM,
    channel=SNOWFLAKE,
    user=r"\d{1,25}",
    pings=(
        PingForm(PingKind.ROLE, SNOWFLAKE, "role:<role id, digits>"),
        PingForm(PingKind.USER, SNOWFLAKE, "user:<user id, digits>"),
    ),
)

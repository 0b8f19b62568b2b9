"""How Slack's destinations are written, in the config file, in chat and in the database:
"slack:<channel id>" and "slack:dm:<user id>". Slack's ids are upper-case letters and digits
(C0123ABCD for a channel, U0123ABCD for a person)."""

from __future__ import annotations

from bot.core.destinations import PrefixedForm

PLATFORM = "slack"

DESTINATION_FORM = PrefixedForm(PLATFORM, channel=r"[A-Z0-9]{5,30}", user=r"[A-Z0-9]{1,30}")

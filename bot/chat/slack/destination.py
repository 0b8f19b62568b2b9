"""How Slack's destinations are written, in the config file, in chat and in the database:
"slack:<channel id>" and "slack:dm:<user id>". Slack's ids are upper-case letters and digits
(C0123ABCD for a channel, U0123ABCD for a person).

A card may ping a user group ("usergroup:S0123ABCD") or a person ("user:U0123ABCD"; W for an
Enterprise Grid user) (bot.core.pings); Slack has no roles."""

from __future__ import annotations

from bot.core.destinations import PrefixedForm
from bot.core.pings import PingForm, PingKind

PLATFORM = "slack"

DESTINATION_FORM = PrefixedForm(
    PLATFORM,
    channel=r"[A-Z0-9]{5,30}",
    user=r"[A-Z0-9]{1,30}",
    pings=(
        PingForm(PingKind.USERGROUP, r"S[A-Z0-9]{2,30}", "usergroup:<S…>"),
        PingForm(PingKind.USER, r"[UW][A-Z0-9]{2,30}", "user:<U…>"),
    ),
)

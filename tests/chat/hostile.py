"""Remote text that tries to become a link on a chat platform."""

# A masked link in Discord's markdown (discord.utils.escape_markdown escaped only its first "[");
# in Slack's mrkdwn the same text is literal.
HOSTILE_LINK = "[1] [Read more](https://evil.example)"
# Slack's own link markup.
HOSTILE_SLACK_LINK = "<https://evil.example|Read more>"

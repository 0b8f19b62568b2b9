"""The [slack] section: a bad workspace id stops start-up with a message naming the key."""

from __future__ import annotations

import pytest

from config.settings import ConfigError, settings_from_dict


def test_team_ids_are_checked_at_start_up() -> None:
    assert settings_from_dict({"slack": {"team_ids": ["T0123ABCD"]}}, {}).slack.team_ids == [
        "T0123ABCD"
    ]
    with pytest.raises(ConfigError, match=r"slack\.team_ids: 'newsroom' is not a Slack team id"):
        settings_from_dict({"slack": {"team_ids": ["newsroom"]}}, {})


def test_without_team_ids_the_token_s_workspace_is_meant() -> None:
    assert settings_from_dict({}, {}).slack.team_ids == []

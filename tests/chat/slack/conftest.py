"""The Slack desk's fixtures (FakeSlack, a desk), defined with the desk in test_slack_e2e and
shared with the other Slack test modules."""

from tests.chat.slack.test_slack_e2e import desk, fake

__all__ = ["desk", "fake"]

"""The connection truth every platform keeps (bot/chat/link.py): the backoff between attempts,
and up/down with reasons, reconnects and time disconnected for /healthz and /metrics."""

from __future__ import annotations

from datetime import timedelta

from bot.chat.link import Backoff, Link


def test_backoff_doubles_with_jitter_and_stays_under_the_cap() -> None:
    draws: list[tuple[float, float]] = []

    def rng(low: float, high: float) -> float:
        draws.append((low, high))
        return high

    backoff = Backoff(timedelta(seconds=1), timedelta(seconds=60), rng=rng)
    waits = [backoff.delay() for _ in range(10)]

    assert waits == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    # Each wait is drawn from [half, full]: never zero, never in step with other bots.
    assert all(low == high / 2 for low, high in draws)
    backoff.reset()
    assert backoff.delay() == 1


def test_backoff_really_jitters_within_its_bounds() -> None:
    backoff = Backoff(timedelta(seconds=8), timedelta(seconds=8))
    waits = {backoff.delay() for _ in range(50)}
    assert all(4 <= w <= 8 for w in waits) and len(waits) > 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_link_counts_reconnects_and_the_time_spent_down() -> None:
    clock = Clock()
    link = Link("discord", clock=clock)
    ups: list[str] = []
    link.when_up(lambda: ups.append("up"))
    assert not link.is_up and link.reason == "not connected yet"

    clock.now += 5  # down at start-up: counts as disconnected, is not a reconnect
    link.up()
    assert link.reconnects == 0 and link.disconnected_seconds() == 5 and link.reason is None

    clock.now += 100
    link.down("the gateway dropped")
    link.down("cannot reach the gateway; retrying in 4s")  # the latest reason wins
    clock.now += 3
    assert link.disconnected_seconds() == 8  # the outage still running counts
    assert link.reason == "cannot reach the gateway; retrying in 4s"
    link.up()
    link.up()  # already up: nothing more

    assert link.reconnects == 1 and link.disconnected_seconds() == 8
    assert ups == ["up", "up"]


def test_a_failing_listener_does_not_make_the_link_look_down() -> None:
    link = Link("slack")

    def broken() -> None:
        raise RuntimeError("bug")

    link.when_up(broken)
    link.up()
    assert link.is_up


def test_a_stopped_link_stays_down_with_its_reason() -> None:
    link = Link("slack")
    link.stop("SLACK_BOT_TOKEN was refused (invalid_auth)")
    assert link.stopped and not link.is_up
    assert link.reason == "SLACK_BOT_TOKEN was refused (invalid_auth)"

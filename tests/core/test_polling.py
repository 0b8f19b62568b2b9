"""The interval policy (bot.core.polling): a feed's publishing rate in, its interval out, within
the floor and the ceiling, and hostile hints from the publisher or its server never make a feed
poll faster, nor silence it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.core.polling import (
    FeedHints,
    PollingPolicy,
    PollSchedule,
    PollSeen,
    next_allowed,
    schedule_after,
    skipped,
)
from bot.feeds.fetch import parse_retry_after
from bot.feeds.hints import document_hints, max_age
from tests.feedgen import Item, rss

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC
POLICY = PollingPolicy()  # 30s .. 1h
DEFAULT = timedelta(minutes=5)
SECOND = timedelta(seconds=1)


def first_poll(published, *, hints=None, policy=POLICY, max_age=None, fixed=False):
    return schedule_after(
        policy,
        interval=DEFAULT,
        fixed=fixed,
        baseline=True,
        prior=None,
        seen=PollSeen(
            new=len(published),
            parsed=True,
            published=tuple(published),
            hints=hints,
            max_age=max_age,
        ),
        now=NOW,
    )


def later_poll(prior, at, *, new=0, max_age=None, retry_after=None, policy=POLICY):
    return schedule_after(
        policy,
        interval=DEFAULT,
        fixed=False,
        baseline=False,
        prior=prior,
        seen=PollSeen(new=new, max_age=max_age, retry_after=retry_after),
        now=at,
    )


def every_minute(count=20, newest=NOW):
    return [newest - timedelta(minutes=i) for i in range(count)]


# --- rate -> interval ----------------------------------------------------------------------------


def test_a_feed_that_publishes_every_minute_is_polled_at_the_floor_from_its_first_poll():
    schedule = first_poll(every_minute())
    assert schedule.interval == timedelta(seconds=30)
    assert schedule.describe() == "every 30s (publishes every ~1m)"


def test_a_feed_that_publishes_every_hour_is_polled_every_half_hour():
    schedule = first_poll([NOW - timedelta(hours=i) for i in range(10)])
    assert schedule.interval == timedelta(minutes=30)
    assert schedule.reason == "publishes every ~60m"


def test_a_weekly_blog_is_polled_at_the_ceiling():
    schedule = first_poll([NOW - timedelta(days=7 * i + 1) for i in range(5)])
    assert schedule.interval == timedelta(hours=1)
    assert schedule.describe() == "every 1h (publishes every ~7d)"


def test_a_feed_whose_newest_story_is_a_month_old_is_silent():
    schedule = first_poll([NOW - timedelta(days=30, minutes=i) for i in range(10)])
    assert schedule.describe() == "every 1h (silent)"


def test_a_feed_with_no_dates_starts_at_the_default_and_learns_its_rate_from_new_stories():
    schedule = first_poll([])
    assert schedule.interval == DEFAULT and schedule.reason == "rate not known yet"
    # Five new stories five minutes later: one a minute.
    schedule = later_poll(schedule, NOW + DEFAULT, new=5)
    assert schedule.interval == timedelta(seconds=30)
    assert schedule.reason == "publishes every ~1m"


def test_a_minute_wire_stays_at_the_floor_between_its_stories():
    schedule = first_poll(every_minute())
    at = NOW
    for step in range(40):  # 20 minutes of polls every 30 s, a story on every other one
        at += schedule.interval
        schedule = later_poll(schedule, at, new=step % 2)
        assert schedule.interval == timedelta(seconds=30), step


def test_a_feed_that_falls_silent_reaches_the_ceiling_within_a_few_polls():
    schedule = first_poll(every_minute())
    at, polls = NOW, 0
    while schedule.interval < timedelta(hours=1):
        at += schedule.interval
        schedule = later_poll(schedule, at)
        polls += 1
        assert polls < 12, schedule
    assert schedule.describe() == "every 1h (silent)"
    # ... and comes back to the floor once it publishes again every minute.
    for _ in range(4):
        step = schedule.interval
        at += step
        schedule = later_poll(schedule, at, new=max(1, round(step / timedelta(minutes=1))))
    assert schedule.interval == timedelta(seconds=30)


def test_a_silent_feed_with_no_dates_reaches_the_ceiling_within_a_few_polls():
    schedule = first_poll([])
    at, intervals = NOW, []
    for _ in range(6):
        at += schedule.interval
        schedule = later_poll(schedule, at)
        intervals.append(schedule.interval)
    assert intervals[-1] == timedelta(hours=1)
    assert intervals == sorted(intervals)  # it never polls faster while silent


def test_items_all_stamped_with_one_date_say_nothing_of_the_rate():
    schedule = first_poll([NOW] * 30)
    assert schedule.reason == "rate not known yet" and schedule.interval == DEFAULT


def test_items_dated_in_the_future_do_not_make_a_feed_look_busy():
    future = [NOW + timedelta(days=365, minutes=i) for i in range(30)]
    schedule = first_poll([*future, NOW - timedelta(days=30)])
    assert schedule.interval == timedelta(hours=1)


def test_a_fixed_interval_stays_whatever_the_rate():
    schedule = first_poll(every_minute(), fixed=True)
    assert schedule.interval == DEFAULT and schedule.describe() == "every 5m (fixed)"


def test_the_floor_and_ceiling_come_from_the_policy():
    policy = PollingPolicy(min_interval=timedelta(minutes=2), max_interval=timedelta(hours=6))
    assert first_poll(every_minute(), policy=policy).interval == timedelta(minutes=2)
    weekly = [NOW - timedelta(days=7 * i + 1) for i in range(5)]
    assert first_poll(weekly, policy=policy).interval == timedelta(hours=6)


def test_adaptive_off_polls_at_the_configured_interval():
    policy = PollingPolicy(adaptive=False)
    assert first_poll(every_minute(), policy=policy).interval == DEFAULT


# --- hints only lengthen, and only up to the ceiling --------------------------------------------


def test_a_ttl_lengthens_the_interval_and_says_so():
    schedule = first_poll(every_minute(), hints=FeedHints(ttl=timedelta(minutes=5)))
    assert schedule.describe() == "every 5m (ttl)"


def test_a_ttl_shorter_than_the_rate_does_not_make_a_feed_poll_faster():
    weekly = [NOW - timedelta(days=7 * i + 1) for i in range(5)]
    schedule = first_poll(weekly, hints=FeedHints(ttl=timedelta(minutes=1)))
    assert schedule.interval == timedelta(hours=1)


def test_a_hostile_ttl_of_ten_years_is_capped_at_the_ceiling_and_the_status_says_so():
    schedule = first_poll(every_minute(), hints=FeedHints(ttl=timedelta(days=3650)))
    assert schedule.interval == timedelta(hours=1)
    assert schedule.describe() == "every 1h (ttl of 3650d capped at 1h)"


def test_a_ttl_survives_polls_that_carry_no_document():
    schedule = first_poll(every_minute(), hints=FeedHints(ttl=timedelta(minutes=10)))
    schedule = later_poll(schedule, NOW + timedelta(minutes=1))  # a 304
    assert schedule.describe() == "every 10m (ttl)"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("max-age=0", timedelta(seconds=30)),  # zero is no hint: the rate decides
        ("max-age=300", timedelta(minutes=5)),
        ("public, max-age=600, must-revalidate", timedelta(minutes=10)),
        ("max-age=1000000000000", timedelta(hours=1)),  # capped
        ("max-age=-5", timedelta(seconds=30)),
        ("max-age=ten", timedelta(seconds=30)),
        ("s-maxage=900", timedelta(seconds=30)),  # for shared caches, not us
        ("\x00\xff garbage;;;=", timedelta(seconds=30)),
        ("", timedelta(seconds=30)),
    ],
)
def test_cache_control_max_age_only_lengthens_and_garbage_is_ignored(header, expected):
    schedule = first_poll(every_minute(), max_age=max_age(header))
    assert schedule.interval == expected


def test_retry_after_on_a_success_lengthens_up_to_the_ceiling():
    schedule = first_poll(every_minute())
    assert later_poll(schedule, NOW + 30 * SECOND, retry_after=120).describe() == (
        "every 2m (Retry-After)"
    )
    far = later_poll(schedule, NOW + 30 * SECOND, retry_after=parse_retry_after("999999999"))
    assert far.interval == timedelta(hours=1) and "capped" in far.reason
    assert parse_retry_after("soon") is None and parse_retry_after("-5") is None


def test_http_hints_can_be_switched_off():
    policy = PollingPolicy(honour_http_hints=False)
    assert first_poll(every_minute(), max_age=600, policy=policy).interval == 30 * SECOND


def test_feed_hints_can_be_switched_off():
    policy = PollingPolicy(honour_feed_hints=False)
    hints = FeedHints(ttl=timedelta(minutes=30), skip_hours=frozenset({12}))
    schedule = first_poll(every_minute(), hints=hints, policy=policy)
    assert schedule.interval == 30 * SECOND
    assert not skipped(schedule, policy, NOW)


# --- skipHours and skipDays ---------------------------------------------------------------------


def test_skip_hours_skip_polls_in_those_hours_utc():
    schedule = first_poll(every_minute(), hints=FeedHints(skip_hours=frozenset({12, 13})))
    assert skipped(schedule, POLICY, NOW)
    assert not skipped(schedule, POLICY, NOW - timedelta(hours=1))
    week = PollingPolicy(max_interval=timedelta(days=7))
    assert next_allowed(schedule, week, NOW + timedelta(minutes=5)) == NOW + timedelta(hours=2)
    # Never past the ceiling: a skip only lengthens the wait up to max_interval.
    later = NOW + timedelta(minutes=5)
    assert next_allowed(schedule, POLICY, later) == later + POLICY.max_interval
    assert "skips 2h of the day (UTC)" in schedule.reason


def test_skip_days_skip_polls_on_those_days():
    schedule = first_poll(every_minute(), hints=FeedHints(skip_days=frozenset({0})))  # Monday
    assert skipped(schedule, POLICY, NOW)
    # The skip lengthens the wait up to the ceiling only: a day off is not a day unheard.
    assert next_allowed(schedule, POLICY, NOW) == NOW + POLICY.max_interval
    week = PollingPolicy(max_interval=timedelta(days=7))
    assert next_allowed(schedule, week, NOW) == datetime(2026, 3, 3, tzinfo=UTC)


def test_skip_hours_listing_every_hour_do_not_stop_the_feed_forever():
    hints = FeedHints(skip_hours=frozenset(range(24)), skip_days=frozenset(range(7)))
    schedule = first_poll(every_minute(), hints=hints)
    assert not skipped(schedule, POLICY, NOW)
    assert next_allowed(schedule, POLICY, NOW) == NOW
    assert "skipHours lists every hour: ignored" in schedule.reason
    assert "skipDays lists every day: ignored" in schedule.reason


def test_skip_hours_and_days_together_still_leave_a_time_to_poll():
    hints = FeedHints(skip_hours=frozenset(range(23)), skip_days=frozenset(range(6)))
    schedule = PollSchedule(
        30 * SECOND, "x", skip_hours=hints.skip_hours, skip_days=hints.skip_days
    )
    allowed = next_allowed(schedule, PollingPolicy(max_interval=timedelta(days=7)), NOW)
    assert allowed.weekday() == 6 and allowed.hour == 23


def test_skip_lists_never_silence_a_feed_past_the_ceiling():
    # Found in review: a wire listing Monday to Saturday in <skipDays> was polled on Sundays
    # only, with max_interval at 1 h. Whatever the lists say, a feed is polled once its last
    # poll is max_interval old.
    hints = FeedHints(skip_days=frozenset(range(6)))
    schedule = first_poll(every_minute(), hints=hints)
    assert skipped(schedule, POLICY, NOW, last_poll_at=NOW - timedelta(minutes=10))
    assert not skipped(schedule, POLICY, NOW, last_poll_at=NOW - POLICY.max_interval)
    assert next_allowed(schedule, POLICY, NOW) - NOW == POLICY.max_interval


# --- the document's hints, read from raw XML ----------------------------------------------------


def _channel(extra: str) -> bytes:
    return rss([Item("a", "x", "https://w.example/1", "1")]).replace(
        b"<description>test feed</description>",
        b"<description>test feed</description>" + extra.encode(),
    )


def test_ttl_skip_hours_and_skip_days_are_read_from_the_channel():
    hints = document_hints(
        _channel(
            "<ttl> 15 </ttl><skipHours><hour>0</hour><hour>1</hour><hour>24</hour>"
            "<hour>99</hour></skipHours><skipDays><day>Saturday</day><day>Caturday</day>"
            "<day>sunday</day></skipDays>"
        )
    )
    assert hints == FeedHints(
        ttl=timedelta(minutes=15), skip_hours=frozenset({0, 1}), skip_days=frozenset({5, 6})
    )


@pytest.mark.parametrize("ttl", ["-5", "0", "soon", "1e9", "", "99999999999999999999"])
def test_a_ttl_that_is_no_positive_number_is_no_hint(ttl):
    assert document_hints(_channel(f"<ttl>{ttl}</ttl>")).ttl is None


def test_a_huge_ttl_is_kept_as_a_bounded_value():
    ttl = document_hints(_channel("<ttl>999999999999</ttl>")).ttl
    assert ttl is not None and ttl <= timedelta(days=3650)


def test_an_item_s_ttl_is_not_the_channel_s():
    body = rss([Item("<ttl>5</ttl>", "x", "https://w.example/1", "1")]).replace(
        b"&lt;ttl&gt;5&lt;/ttl&gt;", b"<ttl>5</ttl>"
    )
    assert document_hints(body).ttl is None


def test_a_hostile_ttl_on_a_feed_already_at_the_ceiling_is_still_reported_as_capped():
    month_old = [NOW - timedelta(days=30, minutes=i) for i in range(10)]
    schedule = first_poll(month_old, hints=FeedHints(ttl=timedelta(days=3650)))
    assert schedule.describe() == "every 1h (silent; ttl of 3650d capped at 1h)"


def test_a_feed_its_websub_hub_pushes_is_polled_at_the_ceiling_unless_fixed_or_not_adaptive():
    """Pushed stories arrive at once; polls are only the safety net (issue 17, WebSub push)."""
    busy = first_poll(every_minute())
    assert busy.interval == timedelta(seconds=30)

    def pushed_poll(*, fixed=False, policy=POLICY):
        return schedule_after(
            policy,
            interval=DEFAULT,
            fixed=fixed,
            baseline=False,
            prior=busy,
            seen=PollSeen(new=3, parsed=True, pushed=True),
            now=NOW + timedelta(minutes=1),
        )

    pushed = pushed_poll()
    assert pushed.interval == POLICY.max_interval
    assert pushed.describe() == "every 1h (pushed by its WebSub hub)"
    assert pushed.gap is not None  # the rate is still learnt, for when the push stops
    assert pushed_poll(fixed=True).interval == DEFAULT
    assert pushed_poll(policy=PollingPolicy(adaptive=False)).interval == DEFAULT
    # The hub stops (its lease ran out): the next poll is back at the feed's own rate.
    assert later_poll(pushed, NOW + timedelta(minutes=2), new=2).interval < pushed.interval

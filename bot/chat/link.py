"""What every chat connection shares: how long to wait before trying again, and the truth about
whether it is up, which /healthz, /metrics and the delivery worker read.

A platform owns one Link and says `up()` when its connection works and `down(reason)` when it
does not; `stop(reason)` when it gave up for good (a refused token). Nothing here knows a
platform."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta

log = logging.getLogger(__name__)

RECONNECT_MIN = timedelta(seconds=1)
RECONNECT_MAX = timedelta(seconds=60)


class Backoff:
    """Exponential backoff with jitter, capped: the n-th wait in a row is drawn from
    [d/2, d] with d = min(cap, first * 2**n). The floor keeps a crowd of bots that lost the
    same service from hammering it in step; the cap means an outage never silences the bot for
    much longer than the outage itself."""

    def __init__(
        self,
        first: timedelta = RECONNECT_MIN,
        cap: timedelta = RECONNECT_MAX,
        *,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.first = max(first.total_seconds(), 0.001)
        self.cap = max(cap.total_seconds(), self.first)
        self._rng = rng
        self.failures = 0

    def delay(self) -> float:
        """Seconds to wait before the next attempt; each call counts one more failure."""
        ceiling = min(self.cap, self.first * 2 ** min(self.failures, 32))
        self.failures += 1
        return self._rng(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0


class Link:
    """One platform's connection as the rest of the bot sees it.

    Starts down ("not connected yet"): time before the first connection counts as disconnected,
    as a desk without alerts is what it means. A reconnect is coming back after having been up;
    the first connection is not one. Callbacks given to `when_up` run at every connection,
    first included: cards owed to the platform are due the moment it is back."""

    def __init__(self, name: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self.is_up = False
        self.stopped = False
        # Down by design: another worker on the same database holds this connection.
        self.standing_by = False
        self.reason: str | None = "not connected yet"
        self.reconnects = 0
        self._ever_up = False
        self._down_since: float | None = clock()
        self._down_total = 0.0
        self._listeners: list[Callable[[], None]] = []

    def when_up(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def up(self) -> None:
        if self.is_up:
            return
        if self._down_since is not None:
            self._down_total += self._clock() - self._down_since
            self._down_since = None
        if self._ever_up:
            self.reconnects += 1
        self._ever_up = True
        self.is_up = True
        self.stopped = False
        self.standing_by = False
        self.reason = None
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                # A listener's bug must not make a working connection look broken.
                log.exception("a %s reconnect listener failed", self.name)

    def down(self, reason: str) -> None:
        """Not connected, and why (the latest reason replaces an older one)."""
        if self.standing_by:
            return  # waiting for its turn, which is no outage (see `taking_over`)
        self.reason = reason
        if self.is_up:
            self.is_up = False
            self._down_since = self._clock()

    def standby(self, reason: str) -> None:
        """Not connected because another worker holds the connection: not an outage, so the
        time does not count as disconnected and /healthz does not call it a problem."""
        if self._down_since is not None:
            self._down_total += self._clock() - self._down_since
            self._down_since = None
        self.is_up = False
        self.standing_by = True
        self.reason = reason

    def taking_over(self, reason: str) -> None:
        """This worker's turn has come: from now on, not being connected is an outage."""
        if self.standing_by:
            self.standing_by = False
            self._down_since = self._clock()
        self.down(reason)

    def stop(self, reason: str) -> None:
        """Down for good: nothing will be retried until the bot is restarted."""
        self.taking_over(reason)  # standing by or not, it is an outage now
        self.stopped = True

    def disconnected_seconds(self) -> float:
        """Total time spent disconnected so far, the current outage included."""
        current = self._clock() - self._down_since if self._down_since is not None else 0.0
        return self._down_total + current

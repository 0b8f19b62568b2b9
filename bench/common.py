"""Small pieces shared by the pipeline and simulated-month benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import math
import os
import platform
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def peak_rss_mb() -> float:
    """The process's peak resident set: VmHWM from /proc (ru_maxrss as a fallback), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def workers_peak_rss_mb() -> list[float]:
    """The peak resident set (VmHWM, MB) of each parse worker of this process: the children of
    its multiprocessing fork server (Linux /proc; empty elsewhere)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so read after its ")".
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    me = os.getpid()
    servers = {pid for pid, parent in parents.items() if parent == me}
    peaks = []
    for pid, parent in parents.items():
        if parent not in servers:
            continue
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return sorted(peaks)


def files_mb(pattern: str | Path) -> float:
    """Size of a database with its -wal and -shm files, in MB."""
    path = Path(pattern)
    return sum(f.stat().st_size for f in path.parent.glob(path.name + "*")) / 1e6


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{platform.machine()}, {cpus} CPUs (nproc), {cpu}, Python {sys.version.split()[0]} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


class LineClock(io.TextIOBase):
    """A text stream for the console sender: every complete line is kept with the
    time.monotonic() at which it was written; with `keep=False` only counted (a measurement of
    the bot's memory must not count 50,000 cards held by the benchmark: about 70 MB)."""

    def __init__(self, *, keep: bool = True) -> None:
        super().__init__()
        self.lines: list[tuple[float, str]] = []
        self.count = 0
        self._keep = keep
        self._partial = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:  # type: ignore[override]
        now = time.monotonic()
        parts = (self._partial + text).split("\n")
        self._partial = parts.pop()
        if self._keep:
            self.lines.extend((now, p) for p in parts if p)
        else:
            self.count += sum(1 for p in parts if p)
        return len(text)

    def cards(self, start: int = 0) -> list[tuple[float, dict[str, Any]]]:
        return [(t, json.loads(line)) for t, line in self.lines[start:]]


class LagMonitor:
    """A task that sleeps 10 ms in a loop and records how late it wakes: what a Discord
    heartbeat (or any timer on the loop) would suffer."""

    def __init__(self, interval: float = 0.010) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (when the sleep began, lateness)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="lag-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.samples.append((start, time.perf_counter() - start - self.interval))

    def take(self, since: float = 0.0) -> list[float]:
        """The lateness of the sleeps that began at `since` (time.perf_counter()) or later:
        a sleep already under way when a measurement starts carries an earlier stall."""
        samples, self.samples = self.samples, []
        return [late for began, late in samples if began >= since]


def feed_name(index: int, publisher: int) -> str:
    return f"Publisher {publisher:02d} / section {index:04d}"


def console_channel(index: int, channels: int) -> str:
    return f"console:desk-{index % channels:03d}"

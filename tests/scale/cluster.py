"""Several real `newsbot run` processes on one PostgreSQL database, for the scale-out tests.

Each worker is the real CLI in a child process with a config file of its own (same feeds and
watchlists for all; its own /metrics port), its log in a file beside the config. The database is
a throwaway one made for the test (never the storage suite's session database, which may exist
at the same time under the pytest process's pid)."""

from __future__ import annotations

import asyncio
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from tests.faults.process import BotProcess, free_port

# The child's environment: no proxy between the workers and the local fakes.
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")


class Worker(BotProcess):
    """One `newsbot run` of the cluster: its own config file (and so its own log) and port."""

    def __init__(self, index: int, config: Path, env: dict[str, str], http_port: int) -> None:
        super().__init__(config, env)
        self.index = index
        self.http_port = http_port
        self.starts = 0

    async def start(self, *args: str) -> None:
        self.starts += 1
        with open(self.config.with_suffix(".log"), "a") as log:  # noqa: ASYNC230 - a marker line
            log.write(f"---- test: start #{self.starts} of worker {self.index}\n")
        await super().start(*args)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.running and self.proc is not None else None

    def metrics(self) -> str:
        """The worker's /metrics, or "" while it does not answer (blocking: a local call)."""
        url = f"http://127.0.0.1:{self.http_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            return ""

    def tail(self, chars: int = 4000) -> str:
        path = self.config.with_suffix(".log")
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""


class Cluster:
    """N workers on one config text; `stop_all` in a finally leaves nothing running."""

    def __init__(
        self,
        tmp_path: Path,
        count: int,
        config_text: str,
        env: dict[str, str],
    ) -> None:
        self.workers: list[Worker] = []
        clean = {k: v for k, v in os.environ.items() if k not in PROXY_VARIABLES}
        for index in range(count):
            port = free_port()
            config = tmp_path / f"worker{index}.toml"
            config.write_text(config_text + f"\n[http]\nenabled = true\nport = {port}\n", "utf-8")
            worker = Worker(index, config, env, port)
            worker.env = {**clean, **env}
            self.workers.append(worker)

    async def start_all(self) -> None:
        await asyncio.gather(*(w.start() for w in self.workers))

    def running(self) -> list[Worker]:
        return [w for w in self.workers if w.running]

    def by_pid(self, pid: int | None) -> Worker | None:
        return next((w for w in self.workers if pid is not None and w.pid == pid), None)

    async def stop_all(self) -> None:
        """SIGKILL whatever still runs: called from a finally, it must never leave a process."""
        for worker in self.workers:
            if worker.running:
                await worker.kill()

    def logs(self, workers: Sequence[Worker] | None = None, chars: int = 3000) -> str:
        return "\n".join(
            f"==== worker {w.index} (pid {w.pid}) log ends:\n{w.tail(chars)}"
            for w in (workers or self.workers)
        )


def pid_of_peer(port: int, pids: Sequence[int]) -> int | None:
    """Which of `pids` owns the local TCP socket on 127.0.0.1:`port` (the other end of a
    connection the fake accepted): /proc/net/tcp gives the socket's inode, /proc/PID/fd the
    process holding it. Linux only, which is where these tests run."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inode = fields[9]
                break
        if inode is not None:
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None

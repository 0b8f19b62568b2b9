"""Worker processes for feedparser, each document under a deadline.

feedparser holds the GIL for about half a millisecond per item: in threads, a cycle of changed
feeds made the event loop late by 150-370 ms (bench/pipeline.py), enough to worry a Discord
heartbeat, so it runs in processes. A process can also be stopped, which a thread cannot: a
document still parsing at its deadline has its worker killed, and the next document gets a fresh
one. The bounds pass (bot.feeds.bounds) keeps the known slow shapes fast; the deadline is for
everything else, so that no document holds a worker for longer than the limit.

Each worker is owned by one slot thread, which hands it a document, waits for the answer (or the
deadline) and replaces it when it dies or is killed. No asyncio object is shared, so one pool
serves every event loop of the process (the tests run many). Slot threads are daemons and workers
daemonic processes: neither holds up the interpreter's exit."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import multiprocessing
import pickle
import queue
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from typing import Any

from bot.core.ports import ParsedFeed
from bot.feeds.items import Itemized

log = logging.getLogger(__name__)

Parsed = ParsedFeed | Itemized

_START_TIMEOUT = 60.0  # seconds for a new worker to import feedparser and say it is ready


class ParseTimeout(Exception):
    """The document was still being parsed at the deadline; its worker was killed."""


class WorkerDied(Exception):
    """The worker exited while parsing (out of memory, killed, a crash in a C extension)."""


@dataclass(frozen=True, slots=True)
class ParseJob:
    body: bytes
    feed_name: str
    url: str
    headers: Mapping[str, str]
    # Item by item (bot.feeds.items), with the memo of the feed's last document.
    itemize: bool = False
    memo: bytes | None = None


class ParsePool:
    def __init__(self, workers: int, *, context: Any = None) -> None:
        if workers < 1:
            raise ValueError("a parse pool needs at least one worker")
        # forkserver, not fork: the bot has threads (SQLite's, the resolver's) that a fork would
        # copy mid-flight.
        self._context = context or multiprocessing.get_context("forkserver")
        self._size = workers
        self._jobs: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._slots: list[threading.Thread] = []
        self._workers: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.replaced = 0  # workers killed at a deadline or found dead: for tests and logs

    async def parse(self, job: ParseJob, time_limit: float) -> Parsed:
        """Parse in a worker; ParseTimeout past `time_limit` seconds of parsing (time spent
        waiting for a free worker does not count), WorkerDied if the worker dies."""
        future: concurrent.futures.Future[Parsed] = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the parse pool is closed")
            if len(self._slots) < self._size:
                self._add_slot(warm=False)
            self._jobs.put(_Queued(future, job, time_limit))
        # Cancelling the wait cancels a job still queued; one already running finishes (or hits
        # its deadline) in its slot, and its result is dropped.
        return await asyncio.wrap_future(future)

    def warm(self) -> None:
        """Start every worker now, in the background, rather than with the first documents: a
        worker takes about half a second to start and import feedparser, and the first poll of
        a big config would otherwise wait for it with its bodies fetched (issue 13)."""
        with self._lock:
            if self._closed:
                return
            while len(self._slots) < self._size:
                self._add_slot(warm=True)

    def _add_slot(self, *, warm: bool) -> None:
        slot = threading.Thread(
            target=self._slot, args=(warm,), name=f"parse-slot-{len(self._slots)}", daemon=True
        )
        self._slots.append(slot)
        slot.start()

    def pids(self) -> list[int]:
        """The process ids of the workers running, busy or not."""
        with self._lock:
            return [w.process.pid for w in self._workers]

    def busy_pids(self) -> list[int]:
        """The process ids of the workers parsing a document right now."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.busy]

    def close(self) -> None:
        """Stop every worker, busy or not; jobs still queued are cancelled."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
            for _ in self._slots:
                self._jobs.put(None)
        for worker in workers:
            worker.kill()

    # --- slot threads -----------------------------------------------------------------------

    def _slot(self, warm: bool) -> None:
        worker: _Worker | None = None
        if warm:
            try:
                worker = self._start()
            except Exception:  # started again with the first document, which reports why
                log.debug("a parse worker did not start ahead of its first document", exc_info=True)
        while True:
            queued = self._jobs.get()
            if queued is None:  # close() sends one per slot
                break
            if self._closed:
                queued.future.cancel()
                continue
            if not queued.future.set_running_or_notify_cancel():
                continue  # its caller stopped waiting before it started
            try:
                if worker is None or not worker.alive():
                    if worker is not None:
                        self._retire(worker)
                    worker = self._start()
                outcome = worker.run(queued.job, queued.time_limit)
            except (ParseTimeout, WorkerDied) as exc:
                if worker is not None:
                    self._retire(worker)
                worker = None
                with self._lock:
                    self.replaced += 1
                queued.future.set_exception(exc)
            except BaseException as exc:  # a broken pipe, a failed start: report, do not die
                if worker is not None:
                    self._retire(worker)
                worker = None
                queued.future.set_exception(exc)
            else:
                if isinstance(outcome, BaseException):
                    queued.future.set_exception(outcome)
                else:
                    queued.future.set_result(outcome)
        if worker is not None:
            self._retire(worker)

    def _start(self) -> _Worker:
        worker = _Worker.start(self._context)
        with self._lock:
            self._workers.add(worker)
            closed = self._closed
        if closed:
            self._retire(worker)
            raise RuntimeError("the parse pool is closed")
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)


@dataclass(frozen=True, slots=True)
class _Queued:
    future: concurrent.futures.Future[Parsed]
    job: ParseJob
    time_limit: float


class _Worker:
    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.busy = False

    @classmethod
    def start(cls, context: Any) -> _Worker:
        parent, child = context.Pipe(duplex=True)
        process = context.Process(target=_serve, args=(child,), name="newsbot-parse", daemon=True)
        process.start()
        child.close()
        worker = cls(process, parent)
        # Wait for it to be ready, so that its start-up (importing feedparser) is not counted
        # against the first document's time limit.
        if not parent.poll(_START_TIMEOUT) or parent.recv() != "ready":
            worker.kill()
            raise WorkerDied("the parser process did not start")
        return worker

    def alive(self) -> bool:
        return self.process.is_alive()

    def run(self, job: ParseJob, time_limit: float) -> Parsed | BaseException:
        self.busy = True
        try:
            self.conn.send(job)
            if not self.conn.poll(time_limit):
                raise ParseTimeout(f"still parsing after {time_limit:g} s")
            return self.conn.recv()
        except (EOFError, OSError):
            raise WorkerDied("the parser crashed on this document") from None
        finally:
            self.busy = False

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.process.kill()
        with contextlib.suppress(Exception):
            self.process.join(5)
        with contextlib.suppress(Exception):
            self.conn.close()


# A worker's caches of words and prints, bounded between documents: at the writing process's
# sizes each worker held about 120 MB of them after a first poll of 1,000 news feeds.
_WORKER_CACHES = {"words_kept": 4096, "prints_weight": 350_000 // 4}


def _serve(conn: Connection) -> None:
    """A worker's main loop: parse each document sent, send back what it made of it or the error."""
    from bot.collector import tune_garbage_collector
    from bot.core.identity import bound_caches, identify, prepare_minhash
    from bot.feeds.items import parse_items
    from bot.feeds.parse import parse_document

    tune_garbage_collector()
    prepare_minhash()

    # Ctrl-C in the bot's terminal reaches the whole process group; the bot stops its workers
    # itself, so they need not print a KeyboardInterrupt each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn.send("ready")
    while True:
        try:
            job: ParseJob = conn.recv()
        except (EOFError, OSError):
            return  # the bot has gone
        try:
            outcome: Any
            if job.itemize:
                # Only the items the memo does not hold; the whole document when it does
                # not cut cleanly (with its identity, as below).
                outcome = parse_items(
                    job.body,
                    feed_name=job.feed_name,
                    url=job.url,
                    headers=job.headers,
                    memo=job.memo,
                )
            else:
                parsed = parse_document(
                    job.body, feed_name=job.feed_name, url=job.url, headers=job.headers
                )
                # The stories' keys and fingerprints too: CPU work that would otherwise fall
                # to the bot's one writing process.
                outcome = replace(parsed, identity=identify(parsed.stories))
        except Exception as exc:
            outcome = exc
        try:
            conn.send(outcome)
        except (pickle.PicklingError, TypeError, AttributeError):
            conn.send(RuntimeError(f"{type(outcome).__name__}: {outcome}"))
        except (EOFError, OSError):
            return
        bound_caches(**_WORKER_CACHES)

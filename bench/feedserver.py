"""A local feed server for the pipeline benchmark: 1,000 realistic 50-item RSS feeds.

It runs in a child process (`FeedServerProcess`), so that its own CPU time never counts against
the bot's and its work never delays the bot's event loop; on a 2-core machine the bot and the
server each get a core, as they would on the network.

The feeds are spread over several "publishers": one listening port each on 127.0.0.1, so that the
bot's per-host connection limit applies as it would to a real feed list (a few dozen hosts with
many feeds each) instead of funnelling every feed through four connections to one host.

Bodies are built from the real captures in tests/corpus (see bench.corpus): varied styles and
sizes (headline + short lead; lead + categories + author + thumbnail; lead + full text in
content:encoded), a third of the feeds answering with an ETag, a third with Last-Modified, a third
with neither (the bot then sees the same bytes again and skips by body hash). Bodies are served
gzip-compressed when the client accepts it, like any publisher's CDN.

The server records, for every response, when the last byte was handed to the socket
(time.monotonic(), which is CLOCK_MONOTONIC and so comparable across processes): that is when a
body "arrived" for the delivery-latency measurement.

Control (JSON over HTTP on the first port): GET /_control/info, POST /_control/change?fraction=,
GET /_control/log?clear=1.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import random
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from bench import corpus

SEED = 8_2024
ITEMS = 50
STYLES = ("short", "medium", "long")
STYLE_WEIGHTS = (0.4, 0.4, 0.2)
CONDITIONALS = ("etag", "last-modified", "none")
SYNDICATED = 0.03  # share of items that are agency copy also carried by other feeds
NEW_PER_CHANGE = 5  # items a changed feed gains at its top (the oldest fall off the end)


@dataclass
class FeedItem:
    guid: str
    permalink: bool
    link: str
    title: str
    description: str
    content: list[str]
    author: str
    categories: tuple[str, ...]
    published: datetime
    thumbnail: str | None


@dataclass
class Feed:
    index: int
    publisher: int
    style: str
    conditional: str
    items: list[FeedItem]
    version: int = 1
    body: bytes = b""
    gzipped: bytes = b""
    etag: str = ""
    modified: str = ""
    serial: int = 0  # items made so far, for unique ids
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"feed/{self.index:04d}.xml"


class FeedSet:
    """The documents, and how they change. Deterministic for a given seed and size."""

    def __init__(
        self,
        count: int,
        publishers: int,
        now: datetime,
        seed: int = SEED,
        *,
        formulaic: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.formulaic = formulaic
        self.corpus = corpus.load()
        self.now = now
        # A pool of agency stories that several feeds carry word for word.
        self.agency = [self._text() for _ in range(max(20, count // 4))]
        self.feeds: list[Feed] = []
        conditionals = [CONDITIONALS[i % 3] for i in range(count)]
        self.rng.shuffle(conditionals)
        for index in range(count):
            style = "short" if formulaic else self.rng.choices(STYLES, STYLE_WEIGHTS)[0]
            feed = Feed(index, index % publishers, style, conditionals[index], [])
            # The baseline items are 25 to 72 hours old: older than the bot's max_age, so a
            # bot meeting them for the first time records them and alerts nobody.
            for n in range(ITEMS):
                age = timedelta(hours=25) + timedelta(minutes=n * 55 + self.rng.randint(0, 50))
                feed.items.append(self._item(feed, now - age))
            self._render(feed)
            self.feeds.append(feed)

    def _text(self) -> tuple[str, str]:
        if self.formulaic:
            return formulaic_text(self.rng)
        sentences = self.rng.choice((1, 2, 2, 3))
        return corpus.splice_title(self.corpus, self.rng), corpus.description(
            self.corpus, self.rng, sentences
        )

    def _item(self, feed: Feed, published: datetime) -> FeedItem:
        feed.serial += 1
        rng = self.rng
        if rng.random() < SYNDICATED:
            title, lead = rng.choice(self.agency)
        else:
            title, lead = self._text()
        if feed.style == "short":
            lead = lead.split(". ")[0][:240]
        host = f"www.publisher{feed.publisher:02d}.example"
        slug = "-".join(title.lower().split()[:6])[:60]
        link = f"https://{host}/news/{feed.index}/{slug}-{feed.serial}?utm_source=rss"
        permalink = feed.index % 2 == 0
        guid = link.split("?")[0] if permalink else f"p{feed.index:04d}x{feed.serial:06d}"
        content = (
            corpus.full_text(self.corpus, rng, rng.randint(3, 8)) if feed.style == "long" else []
        )
        categories: tuple[str, ...] = ()
        author = ""
        thumbnail = None
        if feed.style != "short":
            categories = tuple(rng.sample(self.corpus.categories, rng.randint(1, 4)))
            author = rng.choice(self.corpus.authors)
            thumbnail = f"https://{host}/img/{feed.serial}.jpg"
        return FeedItem(
            guid, permalink, link, title, lead, content, author, categories, published, thumbnail
        )

    def _render(self, feed: Feed) -> None:
        host = f"www.publisher{feed.publisher:02d}.example"
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
            'xmlns:media="http://search.yahoo.com/mrss/" '
            'xmlns:atom="http://www.w3.org/2005/Atom">\n<channel>\n'
            f"<title>Publisher {feed.publisher} - section {feed.index}</title>\n"
            f"<link>https://{host}/news/{feed.index}/</link>\n"
            f"<description>Latest stories, section {feed.index}</description>\n"
            "<language>en</language>\n"
            f"<lastBuildDate>{format_datetime(self.now, usegmt=True)}</lastBuildDate>\n"
            f"<ttl>5</ttl>\n"
        ]
        for item in feed.items:
            out.append("<item>\n")
            out.append(f"<title><![CDATA[{item.title}]]></title>\n")
            out.append(f"<link>{escape(item.link)}</link>\n")
            permalink = "true" if item.permalink else "false"
            out.append(f'<guid isPermaLink="{permalink}">{escape(item.guid)}</guid>\n')
            out.append(f"<pubDate>{format_datetime(item.published, usegmt=True)}</pubDate>\n")
            out.append(f"<description>{escape('<p>' + escape(item.description) + '</p>')}")
            out.append("</description>\n")
            if item.author:
                out.append(f"<dc:creator><![CDATA[{item.author}]]></dc:creator>\n")
            for category in item.categories:
                out.append(f"<category>{escape(category)}</category>\n")
            if item.thumbnail:
                out.append(
                    f'<media:thumbnail url={quoteattr(item.thumbnail)} width="240" height="135"/>\n'
                )
            if item.content:
                html = "".join(f"<p>{escape(p)}</p>" for p in item.content)
                out.append(f"<content:encoded><![CDATA[{html}]]></content:encoded>\n")
            out.append("</item>\n")
        out.append("</channel>\n</rss>\n")
        feed.body = "".join(out).encode("utf-8")
        feed.gzipped = gzip.compress(feed.body, compresslevel=6, mtime=0)
        digest = hashlib.sha1(feed.body).hexdigest()[:12]
        feed.etag = f'"{feed.version}-{digest}"'
        modified = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(minutes=feed.version)
        feed.modified = format_datetime(modified, usegmt=True)

    def change(self, fraction: float, now: datetime) -> dict[int, list[str]]:
        """Give `fraction` of the feeds new stories at the top (dated now) and one rewritten
        headline; the oldest items fall off the end, as in a real feed. Returns the new
        headlines per changed feed."""
        count = round(len(self.feeds) * fraction)
        chosen = sorted(self.rng.sample(range(len(self.feeds)), count))
        titles: dict[int, list[str]] = {}
        for index in chosen:
            feed = self.feeds[index]
            fresh = [
                self._item(feed, now - timedelta(seconds=30 * n)) for n in range(NEW_PER_CHANGE)
            ]
            kept = feed.items[: ITEMS - NEW_PER_CHANGE]
            # A headline rewritten under the same GUID: an update, not a new story.
            kept[0].title = corpus.splice_title(self.corpus, self.rng)
            feed.items = fresh + kept
            feed.version += 1
            self._render(feed)
            titles[index] = [item.title for item in fresh] + [kept[0].title]
        return titles

    def info(self) -> dict[str, object]:
        sizes = sorted(len(f.body) for f in self.feeds)
        return {
            "feeds": len(self.feeds),
            "paths": [f.path for f in self.feeds],
            "publishers": [f.publisher for f in self.feeds],
            "styles": {s: sum(f.style == s for f in self.feeds) for s in STYLES},
            "conditionals": {c: sum(f.conditional == c for f in self.feeds) for c in CONDITIONALS},
            "bytes_total": sum(sizes),
            "gzip_bytes_total": sum(len(f.gzipped) for f in self.feeds),
            "bytes_min": sizes[0],
            "bytes_median": sizes[len(sizes) // 2],
            "bytes_max": sizes[-1],
            "sizes": [len(f.body) for f in self.feeds],
        }


_PLACES = ("Ridgecrest", "Anchorage", "Hilo", "Tokyo", "Lima", "Manila", "Napa", "Reno")
_DIRECTIONS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")
_INDEXES = ("Dow", "Nasdaq", "FTSE", "Nikkei", "DAX")
_TEAMS = ("United", "City", "Rovers", "Athletic", "Wanderers", "Albion", "Rangers", "Town")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def formulaic_text(rng: random.Random) -> tuple[str, str]:
    """A bulletin from a small vocabulary (a few dozen words, and numbers): earthquake reports,
    market closes, match results. Most word pairs of one bulletin occur in many others."""
    kind = rng.randrange(3)
    day = rng.choice(_DAYS)
    if kind == 0:
        mag, km = f"{rng.uniform(2.5, 6.5):.1f}", rng.randint(2, 90)
        where = f"{km} km {rng.choice(_DIRECTIONS)} of {rng.choice(_PLACES)}"
        depth = rng.randint(1, 60)
        return (
            f"M {mag} earthquake - {where}",
            f"A magnitude {mag} earthquake struck {where} at a depth of {depth} km on {day}.",
        )
    if kind == 1:
        index, up = rng.choice(_INDEXES), rng.random() < 0.5
        pct, level = f"{rng.uniform(0.1, 3.0):.1f}", rng.randint(5000, 40000)
        session = rng.choice(("morning", "afternoon"))
        return (
            f"{index} {'rises' if up else 'falls'} {pct} percent to {level} in {session} trading",
            f"The {index} {'rose' if up else 'fell'} {pct} percent to {level} points in "
            f"{session} trading on {day}.",
        )
    home, away = rng.sample(_TEAMS, 2)
    goals = f"{rng.randint(0, 5)}-{rng.randint(0, 5)}"
    return (
        f"{home} beat {away} {goals}",
        f"{home} beat {away} {goals} in the league on {day} at home.",
    )


class Server:
    def __init__(self, feeds: FeedSet) -> None:
        self.feeds = feeds
        self.by_path = {f.path: f for f in feeds.feeds}
        # (feed index, status, monotonic time the response was fully written, bytes)
        self.log: list[tuple[int, int, float, int]] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        feed = self.by_path.get(request.match_info["path"])
        if feed is None:
            return web.Response(status=404, text="not found")
        headers = {"Content-Type": "application/rss+xml; charset=utf-8"}
        if feed.conditional == "etag":
            headers["ETag"] = feed.etag
            if request.headers.get("If-None-Match") == feed.etag:
                return self._done(feed, web.Response(status=304, headers=headers), 0)
        elif feed.conditional == "last-modified":
            headers["Last-Modified"] = feed.modified
            if request.headers.get("If-Modified-Since") == feed.modified:
                return self._done(feed, web.Response(status=304, headers=headers), 0)
        body = feed.body
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = feed.gzipped
            headers["Content-Encoding"] = "gzip"
            headers["Vary"] = "Accept-Encoding"
        response = web.StreamResponse(headers=headers)
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body)
        await response.write_eof()
        self.log.append((feed.index, 200, time.monotonic(), len(body)))
        return response

    def _done(self, feed: Feed, response: web.Response, size: int) -> web.Response:
        # A 304 has no body to wait for: its arrival time is not used.
        self.log.append((feed.index, response.status, time.monotonic(), size))
        return response

    async def control_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.feeds.info())

    async def control_change(self, request: web.Request) -> web.Response:
        fraction = float(request.query.get("fraction", "0.1"))
        titles = self.feeds.change(fraction, datetime.now(UTC))
        return web.json_response({"changed": sorted(titles), "titles": titles})

    async def control_log(self, request: web.Request) -> web.Response:
        log = list(self.log)
        if request.query.get("clear"):
            self.log.clear()
        return web.json_response(log)


async def _serve(count: int, publishers: int, formulaic: bool = False) -> None:
    feeds = FeedSet(count, publishers, datetime.now(UTC), formulaic=formulaic)
    server = Server(feeds)
    app = web.Application()
    app.router.add_get("/_control/info", server.control_info)
    app.router.add_post("/_control/change", server.control_change)
    app.router.add_get("/_control/log", server.control_log)
    app.router.add_get("/{path:feed/.*}", server.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    ports = []
    for _ in range(publishers):
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        ports.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The parent closes our stdin to stop us (or dies, which closes it too).
    loop.add_reader(sys.stdin.fileno(), stop.set)
    await stop.wait()
    await runner.cleanup()


class FeedServerClient:
    """Blocking control calls to a running server (made between cycles, never during one)."""

    def __init__(self, ports: list[int] | None = None) -> None:
        self.ports: list[int] = list(ports or [])

    def _call(self, method: str, path: str) -> object:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.ports[0]}/_control/{path}", method=method
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.loads(response.read())

    def info(self) -> dict[str, object]:
        return self._call("GET", "info")  # type: ignore[return-value]

    def urls(self) -> list[str]:
        info = self.info()
        paths, publishers = info["paths"], info["publishers"]
        return [
            f"http://127.0.0.1:{self.ports[p]}/{path}"
            for path, p in zip(paths, publishers, strict=True)  # type: ignore[call-overload]
        ]

    def change(self, fraction: float) -> dict[int, list[str]]:
        """Change `fraction` of the feeds; the new and rewritten headlines per changed feed."""
        answer = self._call("POST", f"change?fraction={fraction}")
        return {int(k): v for k, v in answer["titles"].items()}  # type: ignore[index]

    def log(self, *, clear: bool = False) -> list[tuple[int, int, float, int]]:
        rows = self._call("GET", "log?clear=1" if clear else "log")
        return [tuple(r) for r in rows]  # type: ignore[misc, union-attr]


class FeedServerProcess(FeedServerClient):
    """Runs `python -m bench.feedserver` as a child process; blocking control calls, made
    between cycles."""

    def __init__(self, count: int = 1000, publishers: int = 40, *, formulaic: bool = False) -> None:
        super().__init__()
        self.formulaic = formulaic
        self.count = count
        self.publishers = min(publishers, count)
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> FeedServerProcess:
        root = Path(__file__).resolve().parents[1]
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.feedserver",
                str(self.count),
                str(self.publishers),
                *(["formulaic"] if self.formulaic else []),
            ],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            self.stop()
            raise RuntimeError("the feed server did not start (see its error above)")
        self.ports = json.loads(line)
        return self

    def stop(self) -> None:
        if self._process is not None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def __enter__(self) -> FeedServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1]), int(sys.argv[2]), "formulaic" in sys.argv[3:]))

"""The `newsbot` command: run, check, preview, why, demo.

Exit codes: 0 success; 1 the work failed (a feed that cannot be read by preview, every feed
failing in `run --once`, any failed line of `check`); 2 bad configuration or bad arguments (a
query that does not parse), or what the configuration names cannot be used (another newsbot
runs on the SQLite file, which one bot owns; several share a PostgreSQL database; the database
is locked by another process, damaged, unreachable or not a newsbot database). Each refusal is
one line on stderr, and the process exits holding nothing, so the next start works once the
cause is gone."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import storage
from bot.core.matcher import Matcher
from bot.core.models import FeedState, Origin
from bot.core.ports import FeedError, FetchStatus
from bot.core.query import QueryError, parse_query
from config.settings import (
    PACKAGED_CONFIG,
    ConfigError,
    Settings,
    load_settings,
    resolve_config_path,
)

log = logging.getLogger("newsbot")

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


class RedactSecrets(logging.Filter):
    """Tokens never reach a log line, whatever library tries to print them."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            redacted = message
            for secret in self.secrets:
                redacted = redacted.replace(secret, "[redacted]")
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


def setup_logging(verbose: bool = False, secrets: Sequence[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # Chatty libraries: their INFO is our DEBUG.
    # discord.client warns at every start that voice support (PyNaCl) is missing: we never speak.
    logging.getLogger("discord.client").setLevel(logging.ERROR)
    for name in ("apscheduler", "discord", "slack_bolt", "slack_sdk", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)


def _secrets_of(settings: Settings) -> list[str]:
    values = [
        settings.secrets.discord_token,
        settings.secrets.slack_bot_token,
        settings.secrets.slack_app_token,
    ]
    # The database server's password too: storage shows URLs redacted, and this is the second
    # guard for a driver or library message that quotes one whole.
    return [v.get_secret_value() for v in values if v is not None] + storage.secrets(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsbot", description="Newsroom alert bot: feeds in, watchlist alerts out."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    # -v is accepted before and after the sub-command (`newsbot run -v`): both set the same flag.
    # SUPPRESS keeps a sub-command's default from resetting a -v given before it.
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run", parents=[verbose], help="poll feeds and post alerts until stopped"
    )
    run.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $NEWSBOT_CONFIG or config/newsbot.toml)",
    )
    run.add_argument("--once", action="store_true", help="poll every feed once, deliver, and exit")

    check = commands.add_parser(
        "check",
        parents=[verbose],
        help="check the config, every feed, the chat tokens and every channel, then exit",
        description=(
            "Check what can be checked before news breaks: the config, each feed (fetched "
            "once), each chat token, and every channel the config posts to. Exit 0 when all "
            "pass, 1 when anything fails (each failure says what to do), 2 when the config "
            "cannot be read."
        ),
    )
    check.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $NEWSBOT_CONFIG or config/newsbot.toml)",
    )
    check.add_argument(
        "--send", action="store_true", help="also post one test card to each channel that passes"
    )

    preview = commands.add_parser(
        "preview",
        parents=[verbose],
        help="show which stories of a feed a query matches (nothing is stored or sent)",
    )
    preview.add_argument("source", metavar="SOURCE", help="feed URL or file path")
    preview.add_argument("--query", required=True, help="e.g. '\"North Korea\" OR Pyongyang'")
    preview.add_argument("--json", action="store_true", help="one JSON object per match")
    preview.add_argument("--config", metavar="PATH", help="config file for fetch settings")

    why = commands.add_parser(
        "why",
        parents=[verbose],
        help="what happened to a stored story and why (every watchlist and card)",
        description=(
            "Find a stored story by its link or by words of its headline and say what happened "
            "to it: which feed saw it first and when, each watchlist that matched (with the "
            "terms) or the part of its query that did not, and each card (sent, folded into a "
            "digest, failed with the reason). Reads the database only; the bot may be running."
        ),
    )
    why.add_argument("story", nargs="+", metavar="LINK_OR_WORDS", help="a link, or headline words")
    why.add_argument(
        "--config",
        metavar="PATH",
        help="config file (default: $NEWSBOT_CONFIG or config/newsbot.toml)",
    )

    commands.add_parser(
        "demo", parents=[verbose], help="an offline tour over bundled wire snapshots"
    )
    return parser


def _version() -> str:
    try:
        return metadata.version("newsbot")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "check":
            return _check(args)
        if args.command == "preview":
            return _preview(args)
        if args.command == "why":
            return _why(args)
        if args.command == "demo":
            from bot.demo import run_demo

            setup_logging(args.verbose)
            if not args.verbose:
                logging.getLogger().setLevel(logging.WARNING)  # the demo narrates on stdout
            return asyncio.run(run_demo())
    except KeyboardInterrupt:
        return 130
    return EXIT_CONFIG


def _load(args: argparse.Namespace) -> Settings:
    path = resolve_config_path(getattr(args, "config", None), os.environ)
    return load_settings(path)


def _settings(args: argparse.Namespace) -> Settings | None:
    """The settings, with logging that redacts their tokens; None (said on stderr) when the
    config cannot be used."""
    setup_logging(args.verbose)
    try:
        settings = _load(args)
    except ConfigError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return None
    setup_logging(args.verbose, _secrets_of(settings))
    return settings


def _run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    # Which file, and where the data goes: outside the repository the packaged defaults are used,
    # which is worth knowing before ./data/ appears.
    log.info(
        "newsbot %s: config %s, database %s",
        _version(),
        Path(settings.source).resolve() if settings.source != "<config>" else settings.source,
        _database(settings),
    )
    if Path(settings.source) == PACKAGED_CONFIG:
        log.warning(
            "no --config, no $NEWSBOT_CONFIG and no config/newsbot.toml in %s: using the built-in "
            "default config; give yours with --config PATH",
            Path.cwd(),
        )
    from bot.app import StartupError, run_bot

    try:
        return asyncio.run(run_bot(settings, once=args.once))
    except (StartupError, ConfigError) as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _database(settings: Settings) -> str:
    """Where the data goes, as the log line names it: a SQLite file's full path, a server's
    URL without its password, or the in-memory store."""
    if storage.keeps_files(settings):
        return str(Path(settings.storage.path).resolve())
    return storage.describe(settings)


def _check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    if not args.verbose:
        # The table says it all; library chatter would only clutter it.
        logging.getLogger().setLevel(logging.WARNING)
    from bot.check import run_check

    return asyncio.run(run_check(settings, sys.stdout, send=args.send))


def _why(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if settings is None:
        return EXIT_CONFIG
    if not args.verbose:
        logging.getLogger().setLevel(logging.WARNING)
    if storage.keeps_files(settings) and not Path(settings.storage.path).exists():
        # Opening would create an empty database: say what is wrong instead.
        print(
            f"newsbot: no database at {_database(settings)}: the bot has not run with this "
            "config yet (or [storage] path names another file)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        text = asyncio.run(_why_async(settings, " ".join(args.story)))
    except Exception as exc:
        # Locked, damaged, unreachable, not a newsbot database: one line, as `run` says it.
        reason = storage.describe_failure(settings, exc)
        if reason is None:
            raise
        print(f"newsbot: {reason}", file=sys.stderr)
        return EXIT_CONFIG
    print(text)
    return EXIT_OK


async def _why_async(settings: Settings, asked: str) -> str:
    """/why as an admin sees it (whoever can read the config and the database sees it all),
    as plain lines."""
    from datetime import UTC, datetime

    from bot.core.explain import Viewer, WhySettings, explain

    store = await storage.open_storage(settings)
    try:
        alerts = settings.alerts
        reply = await explain(
            store,
            asked,
            Viewer("cli:operator", admin=True),
            WhySettings(max_age=alerts.max_age, max_updates=alerts.max_updates),
            datetime.now(UTC),
        )
    finally:
        await store.close()
    lines = [reply.text]
    for item in reply.items:
        line = f"- {item.text}"
        if item.detail:
            line += f" · {item.detail}"
        if item.url:
            line += f" <{item.url}>"
        lines.append(line)
    # Feed text reaches a terminal: no control characters (escape sequences) from it.
    return "\n".join(
        "".join(c if c.isprintable() or c == " " else " " for c in line) for line in lines
    )


def _preview(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    try:
        query = parse_query(args.query)
    except QueryError as exc:
        print(f"newsbot: the query does not parse:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    for hint in query.hints:
        print(f"newsbot: note: {hint}", file=sys.stderr)
    try:
        settings = _load(args) if args.config else Settings()
    except ConfigError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return asyncio.run(_preview_async(args.source, query, settings, as_json=args.json))


def _source_url(source: str) -> str | None:
    if source.startswith(("http://", "https://", "file://")):
        return source
    path = Path(source)
    return path.resolve().as_uri() if path.is_file() else None


async def _preview_async(source: str, query, settings: Settings, *, as_json: bool) -> int:
    from bot.feeds import FeedReader
    from bot.feeds.fetch import FetchLimits, HttpFetcher

    url = _source_url(source)
    if url is None:
        print(f"newsbot: {source!r} is neither a URL nor a readable file", file=sys.stderr)
        return EXIT_FAILED
    name = Path(source).stem if not source.startswith(("http://", "https://")) else source
    # The operator's own command line: file:// and private addresses are allowed, as for feeds
    # in the config file.
    feed = FeedState(
        id=0, name=name, url=url, interval=settings.fetch.default_interval, origin=Origin.CONFIG
    )
    limits = FetchLimits(
        timeout=settings.fetch.timeout,
        max_bytes=settings.fetch.max_bytes,
        max_redirects=settings.fetch.max_redirects,
    )
    reader = FeedReader(HttpFetcher(limits))
    try:
        result = await reader.fetch(feed)
        if result.status != FetchStatus.OK:
            print(f"newsbot: cannot read {source}: {result.error}", file=sys.stderr)
            return EXIT_FAILED
        try:
            parsed = await reader.parse(result, name)
        except FeedError as exc:
            print(f"newsbot: cannot read {source}: {exc}", file=sys.stderr)
            return EXIT_FAILED
    finally:
        await reader.close()
    matcher = Matcher([(0, query)])
    matches = 0
    for story in parsed.stories:
        found = matcher.match(story)
        if 0 not in found:
            continue
        matches += 1
        published = story.published.isoformat().replace("+00:00", "Z") if story.published else None
        if as_json:
            print(
                json.dumps(
                    {
                        "title": story.title,
                        "url": story.link,
                        "published": published,
                        "matched": list(found[0]),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            print(
                f"{story.title}\n  {published or 'undated'} · matched: "
                f"{', '.join(found[0]) or '-'}\n  {story.link or ''}"
            )
    if not as_json:
        print(f"{matches} of {len(parsed.stories)} stories match", file=sys.stderr)
    if parsed.warning:
        log.info("%s", parsed.warning)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

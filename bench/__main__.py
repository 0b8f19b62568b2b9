"""Every benchmark, printed as tables:

    .venv/bin/python -m bench                 # everything (about 10 minutes on 2 cores)
    .venv/bin/python -m bench pipeline        # poll cycles, loop lag, delivery delay, a month
    .venv/bin/python -m bench matcher         # the matcher against one regex per query
    .venv/bin/python -m bench hostile         # the costliest NEAR allowed, against pair by pair
    .venv/bin/python -m bench formulaic       # first poll of 1,000 formulaic feeds vs feedparser
    .venv/bin/python -m bench ingest          # the writing process alone on 1,000 parsed documents
    .venv/bin/python -m bench scale           # 1, 2 and 3 workers on one PostgreSQL database
    .venv/bin/python -m bench --quick         # smaller sizes: a smoke run in under a minute

Speed is measured here, never asserted in tests (see BENCHMARKS.md for the latest numbers)."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import time

from bench.common import machine

PARTS = ("pipeline", "matcher", "hostile", "formulaic", "ingest", "scale")


def _matcher(quick: bool) -> str:
    if importlib.util.find_spec("bench.matcher") is None:
        return "(bench/matcher.py is not there: matcher benchmark skipped)"
    from bench import matcher

    note = ""
    if quick:
        # The matcher benchmark has no quick mode of its own: fewer stories and rounds keep its
        # shape (its module constants, whichever of them it still has).
        smaller = {"STORY_COUNT": 40, "BASELINE_STORIES_AT_10K": 3, "ROUNDS": 3}
        applied = {k: v for k, v in smaller.items() if hasattr(matcher, k)}
        for name, value in applied.items():
            setattr(matcher, name, value)
        note = " (--quick: " + ", ".join(f"{k}={v}" for k, v in applied.items()) + ")"
    return f"## Matcher benchmark{note}\n\n{matcher.run()}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("parts", nargs="*", choices=[*PARTS, []], help="default: all")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, a smoke run")
    args = parser.parse_args(argv)
    # The bot logs a line per feed with new stories: too much for a benchmark's output.
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    parts = args.parts or list(PARTS)
    started = time.perf_counter()
    print(f"Machine: {machine()}\n", flush=True)
    for part in parts:
        if part == "pipeline":
            from bench import pipeline

            print(pipeline.run(quick=args.quick), flush=True)
        elif part == "formulaic":
            from bench import formulaic

            print(f"## Formulaic feeds\n\n{formulaic.run(quick=args.quick)}", flush=True)
        elif part == "ingest":
            from bench import ingest

            print(f"## Ingest alone\n\n{ingest.run(quick=args.quick)}", flush=True)
        elif part == "scale":
            from bench import scale

            print(f"## Scale-out\n\n{scale.run(quick=args.quick)}", flush=True)
        elif part == "hostile":
            from bench import hostile

            print(f"## Hostile queries\n\n{hostile.run(quick=args.quick)}", flush=True)
        else:
            print(_matcher(args.quick), flush=True)
        print(flush=True)
    print(f"All benchmarks: {time.perf_counter() - started:,.0f} s.")


if __name__ == "__main__":
    main()

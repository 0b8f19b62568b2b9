"""One line of `newsbot check`: what was checked, whether it passed, and what to do if not.

Each platform checks its own token and channels and answers with these; bot/check.py prints
them. Nothing here knows a platform."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    kind: str  # "config", "feed", "discord", "slack"
    name: str  # the feed's name, the channel, "token"
    ok: bool
    detail: str  # what was found
    fix: str = ""  # what to do, when it failed

    @classmethod
    def passed(cls, kind: str, name: str, detail: str) -> Check:
        return cls(kind, name, True, detail)

    @classmethod
    def failed(cls, kind: str, name: str, detail: str, fix: str) -> Check:
        return cls(kind, name, False, detail, fix)

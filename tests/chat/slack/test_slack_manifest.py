"""slack/manifest.yml grants what the code uses: a drift guard read as text (no YAML library is
a dependency), one expectation per line of the manifest that matters."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

MANIFEST = Path(__file__).resolve().parents[3] / "slack" / "manifest.yml"
SCOPES = [
    "chat:write",
    "im:write",
    "channels:history",
    "groups:history",
    "im:history",
    "users:read",
    "commands",
]


@pytest.fixture(scope="module")
def manifest() -> str:
    return MANIFEST.read_text("utf-8")


@pytest.mark.parametrize(
    "line",
    [
        "socket_mode_enabled: true",
        "home_tab_enabled: true",
        "- command: /news",
        "should_escape: true",
        "- app_home_opened",
        "display_name: newsbot",
        *(f"- {scope}" for scope in SCOPES),
    ],
)
def test_manifest_declares(manifest: str, line: str) -> None:
    lines = [re.sub(r"\s+#.*$", "", raw).strip() for raw in manifest.splitlines()]
    assert line in lines


def test_manifest_asks_for_no_scope_the_bot_does_not_use(manifest: str) -> None:
    block = manifest.split("bot:\n", 1)[1].split("\n\n", 1)[0]
    assert re.findall(r"^\s+- ([a-z.:]+)", block, re.MULTILINE) == SCOPES

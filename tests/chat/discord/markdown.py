"""What Discord's markdown would make of a text, for tests that assert on what the fake received."""

from __future__ import annotations

import re

# simple-markdown's link rule, which Discord's parser derives from: the text may hold one level
# of nested brackets, and a "]" followed later by another "]"; a backslash does not stop a "]"
# from closing the text - only an escaped "[" cannot open a link.
_LINK_AT = re.compile(
    r"\[(?:\[[^\]]*\]|[^\[\]]|\](?=[^\[]*\]))*\]"
    r"\(\s*<?((?:\([^)]*\)|[^\s\\]|\\.)*?)>?(?:\s+['\"]([\s\S]*?)['\"])?\s*\)"
)


def masked_link_targets(text: str) -> list[str]:
    """Where each masked link Discord would render in `text` points. Read left to right as the
    parser does: a backslash escapes the character after it; every "[" that is not escaped is
    tried as the start of a link. (Conservative: a "[" inside a bare URL counts too.)"""
    targets: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "[" and (link := _LINK_AT.match(text, i)):
            targets.append(link.group(1))
            i = link.end()
            continue
        i += 1
    return targets

"""Values in log lines, bounded.

A remote ``ros2 param set`` can send a 2 MB vocabulary, a camera a
megabyte-long ``frame_id``: logged whole, one line fills a terminal or a
log file. Every value the node and the runtime log goes through
:func:`summary` (a string cut, a list shown by its length and first
items), :func:`shorten` (free text) or, for a vocabulary,
:func:`vocabulary_summary`.
"""

from __future__ import annotations

from typing import Any, Sequence

MAX_VALUE_CHARS = 120
"""Characters of one value in a log line."""
MAX_ITEMS = 5
"""Items of a list shown in a log line (its length is always shown)."""


def shorten(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` within ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summary(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr(value)`` within ``limit`` characters; a list as its first items and its length."""
    if isinstance(value, (list, tuple)) and not isinstance(value, str):
        shown = ", ".join(summary(item, 40) for item in list(value)[:MAX_ITEMS])
        if len(value) <= MAX_ITEMS and len(shown) + 2 <= limit:
            return f"[{shown}]"
        return f"{len(value)} items [{shorten(shown, limit)}{', ...' if len(value) > MAX_ITEMS else ''}]"
    return shorten(repr(value), limit)


def vocabulary_summary(names: Sequence[str], shown: int = 8) -> str:
    """``N classes (a, b, ...)``: the count and the first names, each cut to 40 characters."""
    first = ", ".join(shorten(name, 40) for name in names[:shown])
    return f"{len(names)} classes ({first}{', ...' if len(names) > shown else ''})"

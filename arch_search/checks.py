"""The check every constructor runs on a counted setting (steps, rows, threads, ...), with one
message form for all of them: ``<key> must be an integer >= <lowest>, got <value>``, where
``key`` is the config key the user sets (``proxy.steps``, ``latency.rounds``), so that the CLI
can print the constructor's ``ValueError`` as the one ``error:`` line."""

from __future__ import annotations

from typing import Any


def at_least(key: str, value: Any, lowest: int) -> int:
    """``value`` when it is an int (not a bool) >= ``lowest``; else ``ValueError`` naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ValueError(f"{key} must be an integer >= {lowest}, got {value!r}")
    return value

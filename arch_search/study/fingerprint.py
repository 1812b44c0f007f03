"""Which settings make a study's scores comparable, and the refusal to mix them: a study
stores its fingerprint when created; a run that resumes it with another is stopped
(``StudyMismatch``, one ``error:`` line from the CLI) naming every setting that differs.
Used by the search's study and by its confirmation's companion study."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arch_search.design.space import SearchSpace


class StudyMismatch(ValueError):
    """A study resumed with settings that make its scores incomparable (the CLI prints ``error: ...``)."""


def space_fingerprint(space: SearchSpace) -> dict[str, Any]:
    """What a space offers (not its file name): base design, choices, per-layer or not."""
    return {"base": space.base.hash, "per_layer": space.per_layer, "groups": {p: list(c) for p, c in space.groups.items()},
            "shuffle": list(space.shuffle), "dims": {d: list(c) for d, c in space.dims.items()}}


def fingerprint_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``key: stored -> current`` for every dotted key whose value differs."""

    def flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {f"{prefix}{k}": v})
        return out

    a, b = flat(stored), flat(current)
    return [f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}" for k in sorted(a.keys() | b.keys())
            if a.get(k, "(unset)") != b.get(k, "(unset)")]

"""Which settings make a study's scores comparable, and the refusal to mix them: a study
stores its fingerprint when created; a run that resumes it with another is stopped
(``StudyMismatch``, one ``error:`` line from the CLI) naming every setting that differs.
Used by the search's study and by its confirmation's companion study."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from arch_search.design.space import SearchSpace

if TYPE_CHECKING:
    from arch_search.measure.latency import LatencyProtocol


class StudyMismatch(ValueError):
    """A study resumed with settings that make its scores incomparable (the CLI prints ``error: ...``)."""


def space_fingerprint(space: SearchSpace) -> dict[str, Any]:
    """What a space offers (not its file name): base design, choices, per-layer or not."""
    return {"base": space.base.hash, "per_layer": space.per_layer, "groups": {p: list(c) for p, c in space.groups.items()},
            "shuffle": list(space.shuffle), "dims": {d: list(c) for d, c in space.dims.items()}}


# what may change where and how fast a proxy runs, or what it shows, but not its score (the search's
# supernet, held by a confirmation that starts from it, is in the search's own fingerprint)
RUN_SETTINGS = frozenset({"setup", "threads", "progress", "eval_dev", "eval_every", "cache_dir", "data_dir", "device",
                          "bf16", "supernet"})


def scored_settings(node: DictConfig, **first: Any) -> dict[str, Any]:
    """A proxy's or setup's settings that change a score, as its class declares them (its
    ``SCORED``; a checkpoint by its folder name: the same model in another folder is the same),
    after ``first``. A class that declares none (a user's own proxy) is taken at its word that
    every setting counts but ``RUN_SETTINGS``. The proxies' device and bf16 autocast are
    recorded per trial instead (measured: experiments/gpu)."""
    values = OmegaConf.to_container(node, resolve=True)
    scored = getattr(get_class(node._target_), "SCORED", None)
    if scored is None:
        scored = set(values) - RUN_SETTINGS - {"_target_"}
    if values.get("checkpoint"):
        values["checkpoint"] = Path(values["checkpoint"]).name
    return {**first, **{k: v for k, v in values.items() if k in scored}}


def study_fingerprint(cfg: DictConfig, protocol: LatencyProtocol) -> dict[str, Any]:
    """What makes a study's scores comparable (``Search`` adds the space and the latency mode):
    the task, the proxy and its budget, its setup (init, scale, data split, seed) and the
    latency protocol's comparable settings (``LatencyProtocol.fingerprint``)."""
    return {
        "task": cfg.task.name,
        "proxy": scored_settings(cfg.proxy, kind=cfg.proxy._target_),
        "proxy_setup": scored_settings(cfg.proxy_setup),
        "latency": protocol.fingerprint(),
    }


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

"""Search spaces: YAML data in ``spaces/``, loaded, validated, and sampled into ArchSpecs.

A space names a base preset (the target dims), the group-count choices of each projection
(one decision per projection type, or one per layer with ``per_layer: true``), the channel
shuffle choices, and optional dim choices (``hidden``, ``heads``, ``intermediate``,
``layers``). Every file is checked on load, before any trial: unknown keys, empty choices,
group counts that cannot divide the target or proxy dims, and heads that do not divide
hidden raise one ``SpaceError`` naming the file, the key and the value.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from arch_search.resources import spaces_dir
from arch_search.design.spec import PROJECTIONS, ArchSpec, Reference, channels

_KEYS = {"description", "base", "per_layer", "groups", "shuffle", "dims"}
_DIM_KEYS = ("hidden", "heads", "intermediate", "layers")
REFERENCES = tuple(Reference)  # the designs every study evaluates first


def leveled(rng: random.Random, choices: Mapping[str, Sequence[int]]) -> Iterator[tuple[str, int]]:
    """A design drawn by complexity level, as (projection, group count) in ``choices``' order:
    k ~ uniform{1..n} of the n projections that can be grouped are, which ones uniform, each
    one's count uniform over its choices above 1; the others at 1. Uniform draws per choice
    almost never leave exactly one projection grouped (1 in ~650 of the squeezebert space's
    draws); these give every level, mild to fully grouped, the same weight. Lazy: a caller may
    draw between the counts (the supernet's shuffle coin), and its sequence is kept."""
    names = [p for p, c in choices.items() if any(g > 1 for g in c)]
    grouped = set(rng.sample(names, rng.randint(1, len(names)))) if names else set()
    for p, c in choices.items():
        yield p, rng.choice([g for g in c if g > 1]) if p in grouped else 1


class SpaceError(ValueError):
    """A search-space file is invalid; the message names file, key and value."""


@dataclass(frozen=True)
class SearchSpace:
    name: str
    path: Path
    base: ArchSpec
    per_layer: bool
    groups: dict[str, tuple[int, ...]]  # choices per projection
    shuffle: tuple[bool, ...]
    dims: dict[str, tuple[int, ...]]  # choices per dim; empty: the base's dims
    description: str = ""

    # ---- loading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, name_or_path: str | Path, proxy_scale: Mapping[str, int] | None = None) -> SearchSpace:
        """``spaces/<name>.yaml`` or a YAML path; validated against the target dims (the base
        preset and ``dims``) and, if given, the proxy scale (e.g. the MiniLM dims)."""
        path = Path(name_or_path)
        if path.suffix not in (".yaml", ".yml"):
            path = spaces_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in spaces_dir().glob("*.yaml"))
            raise SpaceError(f"{path}: no such search space (known: {known}, or a path to a YAML file)")
        try:
            raw = yaml.safe_load(path.read_text())
        except yaml.YAMLError as e:
            raise SpaceError(f"{path}: not valid YAML: {e}") from None
        return cls.from_dict(raw, path, proxy_scale)

    @classmethod
    def from_dict(cls, raw: Any, path: Path, proxy_scale: Mapping[str, int] | None = None) -> SearchSpace:
        def fail(key: str, value: Any, why: str) -> SpaceError:
            return SpaceError(f"{path}: {key}: {value!r}: {why}")

        if not isinstance(raw, Mapping):
            raise fail("(top level)", raw, "expected a mapping of keys")
        unknown = set(raw) - _KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise fail(key, raw[key], f"unknown key; expected some of {sorted(_KEYS)}")
        try:
            base = ArchSpec.preset(raw.get("base", "bert_base"))
        except ValueError as e:
            raise fail("base", raw.get("base"), str(e)) from None

        groups_raw = raw.get("groups", {})
        if not isinstance(groups_raw, Mapping):
            raise fail("groups", groups_raw, "expected a mapping projection -> list of group counts")
        for p in groups_raw:
            if p not in PROJECTIONS:
                raise fail(f"groups.{p}", groups_raw[p], f"unknown projection; expected {list(PROJECTIONS)}")
        groups = {p: cls._choices(groups_raw.get(p, [1]), f"groups.{p}", int, fail) for p in PROJECTIONS}
        shuffle = cls._choices(raw.get("shuffle", [False]), "shuffle", bool, fail)
        dims_raw = raw.get("dims", {}) or {}
        if not isinstance(dims_raw, Mapping):
            raise fail("dims", dims_raw, "expected a mapping dim -> list of values")
        for d in dims_raw:
            if d not in _DIM_KEYS:
                raise fail(f"dims.{d}", dims_raw[d], f"unknown dim; expected some of {list(_DIM_KEYS)}")
        dims = {d: cls._choices(dims_raw[d], f"dims.{d}", int, fail) for d in dims_raw}
        per_layer = raw.get("per_layer", False)
        if not isinstance(per_layer, bool):
            raise fail("per_layer", per_layer, "expected true or false")
        space = cls(
            name=path.stem, path=path, base=base, per_layer=per_layer, groups=groups, shuffle=shuffle,
            dims=dims, description=str(raw.get("description", "")),
        )
        space._validate(fail, proxy_scale)
        return space

    @staticmethod
    def _choices(value: Any, key: str, kind: type, fail) -> tuple:
        if not isinstance(value, list):
            value = [value]
        if not value:
            raise fail(key, value, "empty choices")
        for v in value:
            if kind is int and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise fail(key, v, "expected a positive int")
            if kind is bool and not isinstance(v, bool):
                raise fail(key, v, "expected true or false")
        if len(set(value)) != len(value):
            raise fail(key, value, "repeated choices")
        return tuple(value)

    def _validate(self, fail, proxy_scale: Mapping[str, int] | None) -> None:
        """Every choice works at every target dims combination and at the proxy scale."""
        scales = [("target", s) for s in self._dim_combinations()]
        if proxy_scale:
            scales.append(("proxy", {**self._dim_combinations()[0], **proxy_scale}))
        for which, d in scales:
            if d["hidden"] % d["heads"]:
                raise fail("dims.heads", d["heads"], f"does not divide hidden={d['hidden']} ({which} scale)")
            for p, choices in self.groups.items():
                cin, cout = channels(p, d["hidden"], d["intermediate"])
                for g in choices:
                    if cin % g or cout % g:
                        raise fail(
                            f"groups.{p}", g, f"does not divide in_channels={cin} and out_channels={cout} ({which} scale)"
                        )

    def _dim_combinations(self) -> list[dict[str, int]]:
        base = {d: getattr(self.base, d) for d in _DIM_KEYS}
        keys = list(self.dims)
        return [{**base, **dict(zip(keys, combo))} for combo in itertools.product(*(self.dims[k] for k in keys))]

    # ---- queries --------------------------------------------------------------------------------

    @property
    def changes_dims(self) -> bool:
        """True if the space chooses dims (a supernet over groups cannot cover it)."""
        return any(len(v) > 1 or v[0] != getattr(self.base, d) for d, v in self.dims.items())

    @property
    def size(self) -> int:
        """Number of distinct designs (per-layer spaces: per layer of every depth choice). The
        shuffle choices multiply the count, except for the all-dense design (every projection
        at groups 1), which has nothing to shuffle and counts once."""
        shuffles = len(self.shuffle)
        all_dense = all(1 in c for c in self.groups.values())
        total = 0
        for d in self._dim_combinations():
            layers = d["layers"] if self.per_layer else 1
            total += math.prod(len(c) ** layers for c in self.groups.values()) * shuffles - (shuffles - 1) * all_dense
        return total

    def sample(self, trial) -> ArchSpec:
        """The design an Optuna trial picks (parameters ``dims.<d>``, ``<projection>`` or
        ``<projection>.<layer>``, ``shuffle``)."""
        dims = {d: trial.suggest_categorical(f"dims.{d}", list(c)) for d, c in self.dims.items()}
        layers = dims.get("layers", self.base.layers)
        if self.per_layer:
            groups = {p: [trial.suggest_categorical(f"{p}.{i}", list(c)) for i in range(layers)] for p, c in self.groups.items()}
        else:
            groups = {p: trial.suggest_categorical(p, list(c)) for p, c in self.groups.items()}
        shuffle = trial.suggest_categorical("shuffle", list(self.shuffle))
        return self.base.replace(**dims, groups=groups, shuffle=shuffle)

    def params_of(self, spec: ArchSpec) -> dict[str, Any]:
        """The trial parameters that make ``sample`` return ``spec`` (to enqueue references)."""
        params: dict[str, Any] = {f"dims.{d}": getattr(spec, d) for d in self.dims}
        for p in PROJECTIONS:
            if self.per_layer:
                params.update({f"{p}.{i}": g for i, g in enumerate(spec.groups[p])})
            else:
                if len(set(spec.groups[p])) != 1:
                    raise ValueError(f"{spec.summary()}: per-layer groups in a space with per_layer: false")
                params[p] = spec.groups[p][0]
        params["shuffle"] = spec.uses_shuffle
        return params

    def contains(self, spec: ArchSpec) -> bool:
        try:
            params = self.params_of(spec)
        except ValueError:
            return False
        allowed = {f"dims.{d}": c for d, c in self.dims.items()} | {"shuffle": self.shuffle}
        for key, value in params.items():
            proj = key.split(".")[0]
            choices = allowed.get(key, self.groups.get(proj))
            if value not in choices:
                return False
        return True

    def random_specs(self, n: int, seed: int = 0) -> list[ArchSpec]:
        """``n`` designs drawn uniformly (seeded), e.g. held out to validate a latency table."""
        import optuna

        rng = random.Random(seed)
        out = []
        for _ in range(n):
            params = {f"dims.{d}": rng.choice(c) for d, c in self.dims.items()}
            layers = params.get("dims.layers", self.base.layers)
            for p, c in self.groups.items():
                if self.per_layer:
                    params.update({f"{p}.{i}": rng.choice(c) for i in range(layers)})
                else:
                    params[p] = rng.choice(c)
            params["shuffle"] = rng.choice(self.shuffle)
            out.append(self.sample(optuna.trial.FixedTrial(params)))
        return out

    def leveled_params(self, rng: random.Random) -> dict[str, Any]:
        """The trial parameters of a design drawn by complexity level (``leveled``; per layer
        in a per-layer space), its dims and shuffle uniform: how the search starts
        (``LeveledStart``), the way the supernet is trained."""
        params: dict[str, Any] = {f"dims.{d}": rng.choice(c) for d, c in self.dims.items()}
        layers = params.get("dims.layers", self.base.layers)
        for i in range(layers if self.per_layer else 1):
            suffix = f".{i}" if self.per_layer else ""
            params.update({p + suffix: g for p, g in leveled(rng, self.groups)})
        params["shuffle"] = rng.choice(self.shuffle)
        return params

    def covering_specs(self) -> list[ArchSpec]:
        """Few designs that together use every (dims, projection, groups, shuffle) choice:
        what a latency table must hold to price any design of the space."""
        out = []
        width = max(len(c) for c in self.groups.values())
        for d in self._dim_combinations():
            for shuffle in self.shuffle:
                for j in range(width):
                    groups = {p: c[min(j, len(c) - 1)] for p, c in self.groups.items()}
                    out.append(self.base.replace(**d, groups=groups, shuffle=shuffle))
        return out

    def references(self) -> dict[str, ArchSpec]:
        """The reference designs (dense BERT, SqueezeBERT's pattern) at the base dims."""
        return {ref: self.base.replace(groups=ArchSpec.preset(ref).uniform_groups(), shuffle=False) for ref in REFERENCES}

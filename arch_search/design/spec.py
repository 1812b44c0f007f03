"""ArchSpec: one typed description of a BERT-family encoder with grouped position-wise layers.

SqueezeBERT (Iandola et al., 2020, Sec. 3-4) replaces the six position-wise fully-connected
layers of each BERT block (q, k, v, post-attention, FFN in, FFN out) by grouped 1x1
convolutions. An ArchSpec says, for every layer, the group count of each of those six
projections, plus an optional ShuffleNet-style channel shuffle after grouped projections
(Zhang et al., 2018, Sec. 3.1). BERT-base, SqueezeBERT and MiniLM-L6 are presets: data in
``conf/arch/*.yaml``, not classes.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from arch_search.resources import conf_dir

PROJECTIONS: tuple[str, ...] = ("q", "k", "v", "post_attention", "ffn_in", "ffn_out")
SHORT_NAMES: dict[str, str] = {"q": "q", "k": "k", "v": "v", "post_attention": "post", "ffn_in": "in", "ffn_out": "out"}
DIMS: tuple[str, ...] = ("hidden", "layers", "heads", "intermediate", "vocab", "max_positions", "type_vocab")


class Reference(str, enum.Enum):
    """The reference designs every study evaluates first, named by the preset whose groups they
    take; a trial records the value (its ``reference`` attribute), so a study written with the
    plain strings reads the same. Compare with these members, never with the strings."""

    DENSE = "bert_base"  # every projection dense: the latency anchor and the accuracy baseline
    SQUEEZEBERT = "squeezebert"  # SqueezeBERT's pattern (Iandola et al., 2020)

    __str__ = str.__str__  # "bert_base" in text and f-strings, on Python 3.10 too
    __format__ = str.__format__


def channels(projection: str, hidden: int, intermediate: int) -> tuple[int, int]:
    """(in_channels, out_channels) of ``projection`` at these dims: the FFN's two projections
    widen to and narrow from ``intermediate``, every other one maps hidden to hidden."""
    return {"ffn_in": (hidden, intermediate), "ffn_out": (intermediate, hidden)}.get(projection, (hidden, hidden))


def shuffles(groups: int, shuffle: bool) -> bool:
    """Whether a channel shuffle asked for after a projection of ``groups`` groups acts: only
    after a grouped one (G > 1); after a dense projection it is a no-op. The one statement of
    that rule: the model, inheritance, the hash, the LUT key and the report read it here."""
    return bool(shuffle) and groups > 1
ACTIVATIONS: tuple[str, ...] = ("gelu", "gelu_new", "relu")


@dataclass(frozen=True)
class ArchSpec:
    """Dimensions of the encoder and, per layer, the groups of each position-wise projection.

    ``groups`` and ``shuffle`` accept, per projection, one value for all layers or a list with
    one value per layer; a missing projection means dense (groups 1) / no shuffle. After
    construction both are normalised to ``{projection: tuple per layer}``.
    ``shuffle[p][i]`` puts a channel shuffle (ShuffleNet) after projection ``p`` of layer ``i``;
    it only has an effect where that projection is grouped (groups > 1).
    """

    hidden: int = 768
    layers: int = 12
    heads: int = 12
    intermediate: int = 3072
    vocab: int = 30522
    max_positions: int = 512
    type_vocab: int = 2
    groups: Mapping[str, Any] = field(default_factory=dict)
    shuffle: Any = False
    act: str = "gelu"
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        for name in DIMS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ArchSpec.{name} must be a positive int, got {value!r}")
        if self.act not in ACTIVATIONS:
            raise ValueError(f"ArchSpec.act must be one of {ACTIVATIONS}, got {self.act!r}")
        if self.hidden % self.heads:
            raise ValueError(f"heads={self.heads} do not divide hidden={self.hidden}")
        object.__setattr__(self, "groups", self._per_layer("groups", self.groups, 1, int))
        object.__setattr__(self, "shuffle", self._per_layer("shuffle", self.shuffle, False, bool))
        for i in range(self.layers):
            for p in PROJECTIONS:
                g = self.groups[p][i]
                cin, cout = self.channels(p)
                if g < 1 or cin % g or cout % g:
                    raise ValueError(
                        f"layer {i}: projection {p!r} groups={g} does not divide "
                        f"in_channels={cin} and out_channels={cout}"
                    )

    def _per_layer(self, what: str, value: Any, default: Any, kind: type) -> dict[str, tuple]:
        if not isinstance(value, Mapping):  # one value for every projection
            value = {p: value for p in PROJECTIONS}
        unknown = set(value) - set(PROJECTIONS)
        if unknown:
            raise ValueError(f"ArchSpec.{what}: unknown projection(s) {sorted(unknown)}; expected {PROJECTIONS}")
        out = {}
        for p in PROJECTIONS:
            v = value.get(p, default)
            per_layer = list(v) if isinstance(v, Sequence) and not isinstance(v, str) else [v] * self.layers
            if len(per_layer) != self.layers:
                raise ValueError(f"ArchSpec.{what}.{p}: {len(per_layer)} values for {self.layers} layers")
            for i, x in enumerate(per_layer):
                if kind is int and (isinstance(x, bool) or not isinstance(x, int)):
                    raise ValueError(f"layer {i}: ArchSpec.{what}.{p} must be an int, got {x!r}")
                if kind is bool and not isinstance(x, bool):
                    raise ValueError(f"layer {i}: ArchSpec.{what}.{p} must be a bool, got {x!r}")
            out[p] = tuple(per_layer)
        return out

    def __hash__(self) -> int:
        return hash(self.hash)

    # ---- queries -------------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def channels(self, projection: str) -> tuple[int, int]:
        """(in_channels, out_channels) of a projection."""
        return channels(projection, self.hidden, self.intermediate)

    def layer(self, i: int) -> dict[str, tuple[int, bool]]:
        """{projection: (groups, shuffle)} of layer ``i``; shuffle as it acts (``shuffles``)."""
        return {p: (self.groups[p][i], shuffles(self.groups[p][i], self.shuffle[p][i])) for p in PROJECTIONS}

    @property
    def is_dense(self) -> bool:
        return all(g == 1 for p in PROJECTIONS for g in self.groups[p])

    @property
    def uses_shuffle(self) -> bool:
        """True if a shuffle follows some grouped projection (where it changes the function)."""
        return any(shuffles(g, s) for p in PROJECTIONS for g, s in zip(self.groups[p], self.shuffle[p]))

    def uniform_groups(self) -> dict[str, int] | None:
        """{projection: groups} if every layer has the same groups, else None."""
        if any(len(set(self.groups[p])) != 1 for p in PROJECTIONS):
            return None
        return {p: self.groups[p][0] for p in PROJECTIONS}

    # ---- (de)serialisation -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain, compact dict: uniform per-layer values collapse to one value."""

        def compact(per_layer: dict[str, tuple]) -> dict[str, Any]:
            return {p: (v[0] if len(set(v)) == 1 else list(v)) for p, v in per_layer.items()}

        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["groups"] = compact(self.groups)
        shuffle = compact(self.shuffle)
        d["shuffle"] = shuffle["q"] if all(v == shuffle["q"] and isinstance(v, bool) for v in shuffle.values()) else shuffle
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArchSpec:
        d = {k: v for k, v in d.items() if not k.startswith("_")}  # drop Hydra's _target_ etc.
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"ArchSpec: unknown field(s) {sorted(unknown)}; expected {sorted(known)}")
        return cls(**d)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> ArchSpec:
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or (text.endswith((".yaml", ".yml")) and "\n" not in text):
            text = Path(text_or_path).read_text()
        return cls.from_dict(yaml.safe_load(text))

    @property
    def hash(self) -> str:
        """Stable 12-hex-digit digest of the normalised spec (same design -> same hash). A
        shuffle after a dense projection (groups 1) is a no-op, so it is hashed as no shuffle."""
        canonical = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        canonical["shuffle"] = {
            p: tuple(shuffles(g, s) for g, s in zip(self.groups[p], self.shuffle[p])) for p in PROJECTIONS
        }
        blob = json.dumps(canonical, sort_keys=True, default=list, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def pattern(self) -> str:
        """The groups per projection (``SHORT_NAMES``), e.g. ``q4 k4 v4 post1 in4 out4``; per-layer
        groups joined by ``/`` (``in1/4``), and ``s`` where a shuffle follows a grouped layer."""
        parts = []
        for p in PROJECTIONS:
            gs = self.groups[p]
            g = str(gs[0]) if len(set(gs)) == 1 else "/".join(map(str, gs))
            sh = "s" if any(shuffles(g_, s) for g_, s in zip(gs, self.shuffle[p])) else ""
            parts.append(f"{SHORT_NAMES[p]}{g}{sh}")
        return " ".join(parts)

    def summary(self) -> str:
        """One line, e.g. ``768x12 h12 ffn3072 g[q4 k4 v4 post1 in4 out4]`` (``pattern()`` in g[])."""
        return f"{self.hidden}x{self.layers} h{self.heads} ffn{self.intermediate} g[{self.pattern()}]"

    # ---- presets and scaling ----------------------------------------------------------------

    @classmethod
    def preset(cls, name: str) -> ArchSpec:
        """A preset from ``conf/arch/<name>.yaml`` (bert_base, squeezebert, minilm_l6, ...)."""
        path = conf_dir() / "arch" / f"{name}.yaml"
        if not path.is_file():
            known = sorted(p.stem for p in (conf_dir() / "arch").glob("*.yaml"))
            raise ValueError(f"unknown preset {name!r}; known: {known}")
        return cls.from_yaml(path)

    def replace(self, **changes: Any) -> ArchSpec:
        return dataclasses.replace(self, **changes)

    def with_scale(self, **dims: int) -> ArchSpec:
        """The same grouping pattern at other dims (hidden, layers, heads, intermediate, ...).

        Per-layer patterns are resampled when the depth changes: new layer ``i`` takes the
        pattern of old layer ``i * old_layers // new_layers``. A group count that does not
        divide the new dims raises ``ValueError``.
        """
        layers = dims.get("layers", self.layers)
        pick = [i * self.layers // layers for i in range(layers)]
        groups = {p: [self.groups[p][j] for j in pick] for p in PROJECTIONS}
        shuffle = {p: [self.shuffle[p][j] for j in pick] for p in PROJECTIONS}
        return dataclasses.replace(self, groups=groups, shuffle=shuffle, **dims)

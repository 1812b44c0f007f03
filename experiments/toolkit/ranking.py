"""How a proxy ranks designs, from rows of one score per (design, seed): each design's mean and
seed sd per column (``table_of``), the signal-to-noise over designs (``snr``), Kendall tau
between two rankings with its bootstrap interval (``tau``) and the dense - SqueezeBERT pattern
gap on dev (``gap``), over the named designs (``NAMED``): what proxy_compressed and
proxy_supernet report of a proxy."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence

from arch_search.stats import kendall_tau, kendall_tau_interval, signal_to_noise

# The named designs a proxy is judged on (proxy_compressed's twelve, the first of proxy_supernet's):
# groups of (q, k, v, post-attention, FFN in, FFN out), every layer alike.
NAMED = {
    "dense": (1, 1, 1, 1, 1, 1), "squeezebert": (4, 4, 4, 1, 4, 4), "all-2": (2,) * 6, "all-4": (4,) * 6,
    "all-8": (8,) * 6, "all-16": (16,) * 6, "ffn-only-4": (1, 1, 1, 1, 4, 4), "attention-only-4": (4, 4, 4, 4, 1, 1),
    "post-only-4": (1, 1, 1, 4, 1, 1), "qkv16-ffn2": (16, 16, 16, 1, 2, 2), "mixed-a": (2, 8, 4, 2, 16, 1),
    "mixed-b": (8, 8, 8, 4, 1, 4),
}

def table_of(rows: Sequence[Mapping], names: Iterable[str], keys: Iterable[str], negate: Iterable[str] = (),
             **where: str) -> dict[str, dict]:
    """{design: {key: (mean, sd over seeds), "n": seeds}} of the rows whose columns match
    ``where`` (e.g. ``task="sst2", variant="default"``), in ``names``' order. A key's empty cells
    are left out (a key with none is absent); ``negate``'s keys change sign (higher is better,
    like every score: the KL to the teacher)."""
    out = {}
    for name in names:
        rs = [r for r in rows if r["design"] == name and all(r[k] == v for k, v in where.items())]
        if rs:
            t: dict = {"n": len(rs)}
            for key in keys:
                vals = [(-1 if key in negate else 1) * float(r[key]) for r in rs if r[key] != ""]
                if vals:
                    t[key] = (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
            out[name] = t
    return out


def means(table: Mapping[str, Mapping], key: str) -> dict[str, float]:
    """{design: mean of ``key``} of a ``table_of`` (the designs that have it)."""
    return {n: t[key][0] for n, t in table.items() if key in t}


def snr(table: Mapping[str, Mapping], key: str) -> float | None:
    """``signal_to_noise`` of ``key`` over a ``table_of``'s designs: None for fewer than two
    designs, a design with one seed, or no seed noise at all (undefined, not infinite)."""
    ts = [t for t in table.values() if key in t]
    if len(ts) < 2 or min(t["n"] for t in ts) < 2:
        return None
    value = signal_to_noise([t[key][0] for t in ts], [t[key][1] for t in ts])
    return None if math.isnan(value) else value


def tau(a: Mapping[str, float], b: Mapping[str, float], interval: bool = True) -> dict:
    """Kendall tau-b over the designs both score (``tau``, 3 digits), with ``interval`` its
    bootstrap 90% interval over designs (``ci90``), and how many designs (``designs``). None
    where undefined (fewer than 3 designs in common, a constant side): summary.json stays JSON."""
    common = [n for n in a if n in b]
    x, y = [a[n] for n in common], [b[n] for n in common]
    r3 = lambda v: None if math.isnan(v) else round(v, 3)  # noqa: E731
    out: dict = {"tau": r3(kendall_tau(x, y) if len(common) > 2 else math.nan)}
    if interval:
        out["ci90"] = [r3(v) for v in (kendall_tau_interval(x, y, level=0.9) if len(common) > 2 else (math.nan, math.nan))]
    return out | {"designs": len(common)}


def gap(table: Mapping[str, Mapping], dense: Mapping[str, Mapping] | None = None) -> tuple[float, float] | None:
    """Dense minus the SqueezeBERT pattern (designs ``dense`` and ``squeezebert``) on the dev
    metric, in points, and the SqueezeBERT pattern's seed sd in points; dense read from ``dense``
    (another variant's table) when given. None without both designs."""
    dense = dense if dense is not None else table
    if "dense" not in dense or "squeezebert" not in table:
        return None
    return 100 * (dense["dense"]["dev_metric"][0] - table["squeezebert"]["dev_metric"][0]), 100 * table["squeezebert"]["dev_metric"][1]

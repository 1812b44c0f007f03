"""The statistics of scores, no torch: rank correlations and their bootstrap interval, a proxy's
signal-to-noise, the seed noise of a run (pooled within designs, or paired: the residual of
design + seed) and a paired difference with its minimum detectable effect and verdict.

Rank correlations: ``scipy.stats`` (NaN where undefined: fewer than two points, or a constant
list). Bootstrap: Efron & Tibshirani, 1993, ch. 13 (the percentile interval).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

# ---- rank correlations --------------------------------------------------------------------------


def _undefined(what: str, x: Sequence[float], y: Sequence[float]) -> bool:
    """A rank correlation of ``x`` and ``y`` is undefined: fewer than two points, or a constant list."""
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} values against {len(y)}")
    return len(x) < 2 or np.ptp(np.asarray(x, float)) == 0 or np.ptp(np.asarray(y, float)) == 0


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (ties in either list handled): 1 = same order, -1 = reversed; NaN when
    undefined (fewer than two pairs, or either list constant)."""
    return math.nan if _undefined("kendall_tau", x, y) else float(stats.kendalltau(x, y).statistic)


def kendall_tau_interval(x: Sequence[float], y: Sequence[float], level: float = 0.9, resamples: int = 2000,
                         seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``kendall_tau`` over the pairs (designs drawn with
    replacement, seeded): how far a tau over few designs can be trusted. Resamples where tau
    is undefined are dropped; (NaN, NaN) when every one is."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    taus = []
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        t = kendall_tau(x[i], y[i])
        if not math.isnan(t):
            taus.append(t)
    if not taus:
        return math.nan, math.nan
    lo, hi = np.quantile(taus, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when undefined."""
    return math.nan if _undefined("spearman", x, y) else float(stats.spearmanr(x, y).statistic)


def signal_to_noise(means: Sequence[float], sds: Sequence[float]) -> float:
    """A proxy's power over designs scored with several seeds: the standard deviation of the
    design means over the mean within-design (seed) standard deviation. NaN for fewer than two
    designs or no seed noise."""
    if len(means) != len(sds):
        raise ValueError(f"signal_to_noise: {len(means)} means against {len(sds)} sds")
    within = float(np.mean(sds)) if len(sds) else 0.0
    return math.nan if len(means) < 2 or within <= 0 else float(np.std(means, ddof=1)) / within


# ---- the seed noise ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Noise:
    """A proxy's seed noise in one run: the pooled within-design standard deviation of the score
    over the ``designs`` scored with several seeds, with ``dof`` degrees of freedom (the sum of
    seeds - 1 over the designs; with two seeds, sqrt(mean((a - b)^2 / 2)) and one per design),
    and where it comes from (``source``)."""

    sd: float
    designs: int
    dof: int | None = None
    source: str = "the references scored with a second proxy seed"


def pooled_noise(scores: Sequence[Sequence[float]], source: str) -> Noise | None:
    """``Noise`` of designs each scored with several seeds (``scores``: one list per design;
    designs with fewer than two scores are left out); None when none has two."""
    groups = [np.asarray(s, dtype=float) for s in scores if len(s) >= 2]
    if not groups:
        return None
    dof = sum(len(g) - 1 for g in groups)
    sd = float(np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / dof))
    return Noise(sd=sd, designs=len(groups), dof=dof, source=source)


def paired_noise(table: Mapping[str, Sequence[float]], source: str) -> Noise | None:
    """The seed noise that a paired comparison sees, for designs all scored with the same seeds
    (``table``: design -> one value per seed, in seed order). With common random numbers a seed
    gives every design the same batches and rows, so a seed that is lucky for all of them
    cancels in a difference: the noise is the residual of the additive model design + seed,
    with (designs - 1) x (seeds - 1) degrees of freedom. None with fewer than 2 designs or 2
    seeds, or when a value is NaN (a diverged run)."""
    x = np.array([list(v) for v in table.values()], dtype=float)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2 or np.isnan(x).any():
        return None
    resid = x - x.mean(axis=1, keepdims=True) - x.mean(axis=0, keepdims=True) + x.mean()
    dof = (x.shape[0] - 1) * (x.shape[1] - 1)
    return Noise(sd=float(np.sqrt((resid ** 2).sum() / dof)), designs=x.shape[0], dof=dof, source=source)


# ---- a paired difference ------------------------------------------------------------------------------


MDE_STANDARD_ERRORS = 2.0  # a lesson's minimum detectable effect: 2 standard errors of the paired difference


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` over the seeds both were scored with: its mean, each seed's difference, the
    standard error (the paired noise: sd x sqrt(2 / seeds)) and the minimum detectable effect
    (``MDE_STANDARD_ERRORS`` standard errors). Units are the caller's (points)."""

    mean: float
    by_seed: tuple[float, ...]
    se: float

    @property
    def mde(self) -> float:
        return MDE_STANDARD_ERRORS * self.se

    def verdict(self, expected: int) -> str:
        """A claim that ``a - b`` has the sign of ``expected`` (+1 or -1): *reproduced* when the
        difference has that sign and exceeds the MDE, *contradicted* when it has the other sign
        and exceeds it, else *not reproduced* (below what these seeds can detect)."""
        if expected not in (1, -1):
            raise ValueError(f"expected must be +1 or -1, got {expected!r}")
        if math.isnan(self.mean) or abs(self.mean) <= self.mde:
            return "not reproduced"
        return "reproduced" if (self.mean > 0) == (expected > 0) else "contradicted"

    def text(self) -> str:
        """``+1.23 (MDE 0.80)``."""
        return f"{self.mean:+.2f} (MDE {self.mde:.2f})"


def paired_se(noise: Noise, seeds: int) -> float:
    """The standard error of a difference between two designs paired over ``seeds`` seeds."""
    return noise.sd * math.sqrt(2 / seeds)


def paired_difference(a: Sequence[float], b: Sequence[float], noise: Noise) -> PairedDifference:
    """``a - b`` paired by position (seed), with ``noise``'s sd for its standard error."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_difference: {len(a)} values against {len(b)}")
    d = tuple(float(x) - float(y) for x, y in zip(a, b))
    return PairedDifference(mean=float(np.mean(d)), by_seed=d, se=paired_se(noise, len(d)))

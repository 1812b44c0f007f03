"""The Pareto front of a search (score up, latency down) and its hypervolume.

Every point and reference point here is ``(score, latency ms)``, in that order. Hypervolume:
Zitzler & Thiele, 1998 (2-D: the area of a staircase, kept incrementally).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np

from arch_search.study.record import TrialRecord


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(score, latency ms) ``a`` dominates ``b``: no worse in both, better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def pareto_mask(score: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """True where (``score``, latency ``ms``) is not ``dominates``-dominated by another
    point; equal points do not dominate each other. O(n log n)."""
    score, ms = np.asarray(score, float), np.asarray(ms, float)
    n = len(score)
    keep = np.zeros(n, dtype=bool)
    order = np.lexsort((-score, ms))  # latency ascending, then score descending
    best = -math.inf  # best score among strictly faster points
    i = 0
    while i < n:
        j = i
        while j < n and ms[order[j]] == ms[order[i]]:
            j += 1
        top = score[order[i]]  # the best score at this latency
        if top > best:
            for k in order[i:j]:
                keep[k] = score[k] == top
            best = top
        i = j
    return keep


def front(recs: Sequence[TrialRecord]) -> list[TrialRecord]:
    """The Pareto front of the finished, feasible trials that evaluated their design (a design
    sampled again appears once, as the trial that evaluated it), fastest first."""
    pool = [r for r in recs if r.finished and r.evaluated and r.feasible]
    if not pool:
        return []
    mask = pareto_mask(np.array([r.score for r in pool]), np.array([r.latency_ms for r in pool]))
    return sorted((r for r, keep in zip(pool, mask) if keep), key=lambda r: (r.latency_ms, -r.score, r.number))


def _staircase(by_ms: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """The area under ``by_ms`` [(latency ms, score), latency ascending] down to ``ref`` =
    (score, latency ms): sum of (ms_{i+1} - ms_i) x (score_i - ref score)."""
    ref_score, ref_ms = ref
    area = 0.0
    for i, (ms, score) in enumerate(by_ms):
        right = by_ms[i + 1][0] if i + 1 < len(by_ms) else ref_ms
        area += (right - ms) * (score - ref_score)
    return area


def hypervolume_2d(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``points`` [(score, latency ms), non-dominated, inside the reference
    box, in any order] up to ``ref`` = (score, latency ms), for maximising the score and
    minimising latency."""
    return _staircase(sorted((ms, score) for score, ms in points), ref)


def hypervolume_history(points: Sequence[tuple[float, float]], ref: tuple[float, float]) -> list[float]:
    """Hypervolume after each of ``points`` [(score, latency ms)], in order, for maximising
    the score and minimising latency up to ``ref`` = (score, latency ms). The front is kept
    sorted by latency and updated per point: O(n * front)."""
    ref_score, ref_ms = ref
    current: list[tuple[float, float]] = []  # (ms, score): ms ascending, score ascending
    history, hv = [], 0.0
    for score, ms in points:
        if score > ref_score and ms < ref_ms:
            i = bisect.bisect_right(current, (ms, math.inf))  # points at latency <= ms are current[:i]
            if not (i and current[i - 1][1] >= score):  # not weakly dominated by a faster-or-equal point
                j = i
                while j < len(current) and current[j][1] <= score:  # slower and no better: dominated now
                    j += 1
                current[i:j] = [(ms, score)]
                k = i - 1
                while k >= 0 and current[k][0] == ms:  # same latency, lower score
                    del current[k]
                    k -= 1
                hv = _staircase(current, ref)
        history.append(hv)
    return history

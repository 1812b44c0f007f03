"""What a search's trials hold and what is computed from them, in one place: the typed trial
record (``TrialRecord``, to and from Optuna's user attrs), the Pareto front, the proxy's seed
noise, hypervolume, the rows of trials.csv / pareto.csv and the tables they are shown in
(CSV, Markdown, console), and rank correlations.

No torch and no model code: ``report``, ``export``, ``tracking`` and the experiments read
results through this module without importing the search.

Hypervolume: Zitzler & Thiele, 1998 (2-D, computed incrementally). Rank correlations:
``scipy.stats`` (NaN where undefined: fewer than two points, or a constant list).
"""

from __future__ import annotations

import bisect
import json
import csv
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any
from pathlib import Path

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from arch_search.design.spec import ArchSpec, Reference
from arch_search.study.run_dir import RunDir

if TYPE_CHECKING:  # they bring torch; results reads their fields only
    from arch_search.measure.cost import Cost
    from arch_search.measure.latency import Comparison

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


def signal_to_noise(means: Sequence[float], sds: Sequence[float]) -> float:
    """A proxy's power over designs scored with several seeds: the standard deviation of the
    design means over the mean within-design (seed) standard deviation. NaN for fewer than two
    designs or no seed noise."""
    if len(means) != len(sds):
        raise ValueError(f"signal_to_noise: {len(means)} means against {len(sds)} sds")
    within = float(np.mean(sds)) if len(sds) else 0.0
    return math.nan if len(means) < 2 or within <= 0 else float(np.std(means, ddof=1)) / within


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when undefined."""
    return math.nan if _undefined("spearman", x, y) else float(stats.spearmanr(x, y).statistic)


# ---- tables ---------------------------------------------------------------------------------------


def csv_text(rows: Sequence[Mapping]) -> str:
    """``rows`` as CSV, header from the first row's keys ("" for no rows)."""
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def write_csv(path: Path, rows: Sequence[Mapping]) -> None:
    Path(path).write_text(csv_text(rows))


def md_table(rows: Sequence[Mapping], columns: Mapping[str, str]) -> list[str]:
    """Markdown table of ``rows``: ``columns`` maps a row key to its header."""
    lines = ["| " + " | ".join(columns.values()) + " |", "|" + " --- |" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(str(r[k]) for k in columns) + " |")
    return lines


# ---- the trial record -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a search as the search wrote it: Optuna's trial number, state and values
    (score up, latency down), and the user attrs, one field each (``ATTRS``: the names
    ``set_attrs`` accepts). Fields the trial does not have are None."""

    number: int
    state: str  # Optuna's TrialState name: COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    score: float | None = None  # objective 0: the proxy's score on the held-out slice (a task metric or a
    # log-likelihood: ``proxy_metric`` says which; studies before the rename called it proxy_accuracy)
    latency_ms: float | None = None  # objective 1: median ms at target scale (drift-corrected if measured)
    # the design
    reference: str | None = None  # a Reference's value for the enqueued references
    spec: str | None = None  # ArchSpec YAML, target scale
    spec_hash: str | None = None
    summary: str = ""
    duplicate_of: int | None = None  # the trial that evaluated (or is evaluating) this design
    pruned_because: str | None = None
    # costs at target scale
    params: int | None = None
    macs: int | None = None
    flops: int | None = None
    # latency
    latency_source: str | None = None  # "measured" | "lut"
    latency_raw_ms: float | None = None  # the design's median as measured (before drift correction)
    reference_ms: float | None = None  # the dense reference's median in the same measurement
    reference_cv: float | None = None  # ... its samples' std / mean
    reference_samples: int | None = None  # ... how many (ceil(rounds / reference_every))
    latency_drift: float | None = None  # reference_ms / the study's anchor
    latency_cv: float | None = None
    latency_p90_ms: float | None = None
    constraints: tuple[float, ...] = ()  # Optuna's convention: <= 0 is feasible
    # the proxy
    proxy_metric: str | None = None  # the task metric the score is, or "log_likelihood"
    proxy_dev: dict | None = None  # the task's dev metrics (reported, not searched on)
    proxy_details: dict | None = None
    proxy_score: float | None = None  # a reference's score with the run's seed ...
    proxy_score_again: float | None = None  # ... and with the next seed (the run's noise)
    # which process ran it
    worker: str | None = None  # host:pid
    worker_started: str | None = None  # the process's start time (pids are reused)

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        a = trial.user_attrs
        values = trial.values or (None, None)
        attrs = {k: v for k, v in a.items() if k in ATTRS}
        if "constraints" in attrs:
            attrs["constraints"] = tuple(attrs["constraints"])
        return cls(number=trial.number, state=trial.state.name, score=values[0], latency_ms=values[1], **attrs)

    @property
    def finished(self) -> bool:
        """COMPLETE, with both objectives."""
        return self.state == "COMPLETE" and self.score is not None and self.latency_ms is not None

    @property
    def evaluated(self) -> bool:
        """This trial evaluated its design (it did not copy or skip another trial's)."""
        return self.duplicate_of is None

    @property
    def feasible(self) -> bool:
        return all(c <= 0 for c in self.constraints)


ATTRS = frozenset(f.name for f in fields(TrialRecord)) - {"number", "state", "score", "latency_ms"}


def set_attrs(trial, **values) -> None:
    """Write ``values`` as user attrs of an Optuna trial; only ``TrialRecord``'s names are
    accepted, so what the search writes is what every reader reads."""
    unknown = sorted(set(values) - ATTRS)
    if unknown:
        raise KeyError(f"not TrialRecord fields: {', '.join(unknown)}")
    for key, value in values.items():
        trial.set_user_attr(key, value)


def records(trials: Iterable[FrozenTrial]) -> list[TrialRecord]:
    return [TrialRecord.of(t) for t in trials]


def dense_reference(recs: Sequence[TrialRecord]) -> TrialRecord | None:
    """The finished trial of the dense reference design (BERT-base pattern), if any."""
    return next((r for r in recs if r.reference == Reference.DENSE and r.finished), None)


# ---- the Pareto front (accuracy up, latency down) ---------------------------------------------------


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(accuracy, latency ms) ``a`` dominates ``b``: no worse in both, better in one."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def pareto_mask(acc: np.ndarray, ms: np.ndarray) -> np.ndarray:
    """True where (accuracy, latency) is not ``dominates``-dominated by another point; equal
    points do not dominate each other. O(n log n)."""
    acc, ms = np.asarray(acc, float), np.asarray(ms, float)
    n = len(acc)
    keep = np.zeros(n, dtype=bool)
    order = np.lexsort((-acc, ms))  # latency ascending, then accuracy descending
    best = -math.inf  # best accuracy among strictly faster points
    i = 0
    while i < n:
        j = i
        while j < n and ms[order[j]] == ms[order[i]]:
            j += 1
        top = acc[order[i]]  # the best accuracy at this latency
        if top > best:
            for k in order[i:j]:
                keep[k] = acc[k] == top
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


def hypervolume_2d(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by ``points`` [(latency, accuracy), sorted by latency, non-dominated, inside
    the reference box] up to ``ref`` = (latency, accuracy): sum of (l_{i+1} - l_i) * (a_i - ref_a)."""
    ref_ms, ref_acc = ref
    area = 0.0
    for i, (ms, acc) in enumerate(points):
        right = points[i + 1][0] if i + 1 < len(points) else ref_ms
        area += (right - ms) * (acc - ref_acc)
    return area


def hypervolume_history(points: list[tuple[float, float]], ref: tuple[float, float]) -> list[float]:
    """Hypervolume after each of ``points`` [(accuracy, latency ms)], in order, for maximising
    accuracy and minimising latency up to ``ref`` = (accuracy, latency ms). The front is kept
    sorted by latency and updated per point: O(n * front)."""
    ref_acc, ref_ms = ref
    current: list[tuple[float, float]] = []  # (ms, acc): ms ascending, acc ascending
    history, hv = [], 0.0
    for acc, ms in points:
        if acc > ref_acc and ms < ref_ms:
            i = bisect.bisect_right(current, (ms, math.inf))  # points at latency <= ms are current[:i]
            if not (i and current[i - 1][1] >= acc):  # not weakly dominated by a faster-or-equal point
                j = i
                while j < len(current) and current[j][1] <= acc:  # slower and no better: dominated now
                    j += 1
                current[i:j] = [(ms, acc)]
                k = i - 1
                while k >= 0 and current[k][0] == ms:  # same latency, lower accuracy
                    del current[k]
                    k -= 1
                hv = hypervolume_2d(current, (ref_ms, ref_acc))
        history.append(hv)
    return history


# ---- the run's own noise ----------------------------------------------------------------------------


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


def proxy_noise(recs: Sequence[TrialRecord]) -> Noise | None:
    """The search proxy's noise: the references scored with the run's seed and the next."""
    return pooled_noise([(r.proxy_score, r.proxy_score_again) for r in recs
                         if r.proxy_score_again is not None and r.proxy_score is not None and r.evaluated],
                        "the references scored with a second proxy seed")


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


# ---- the confirmation (arch_search.study.confirm) ---------------------------------------------------------


@dataclass(frozen=True)
class Confirmed:
    """One design's confirmation: the search trial that evaluated it, and the confirmation
    proxy's score (and dev metrics) by seed."""

    trial: int
    metric: str
    scores: Mapping[int, float]  # seed -> score on the held-out rows
    dev: Mapping[int, Mapping[str, float]]  # seed -> the task's dev metrics

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.scores.values())))

    def dev_mean(self, metric: str) -> float | None:
        values = [d[metric] for d in self.dev.values() if metric in d]
        return float(np.mean(values)) if values else None


def confirmed_rows(confirmed: Sequence[Confirmed], recs: Sequence[TrialRecord], noise: Noise | None,
                   latency: Mapping[int, float] | None = None, dev_metric: str | None = None) -> list[dict]:
    """confirmed.csv: one row per confirmed design, fastest first: the search's score beside the
    confirmation's mean (and each seed's), its difference to the dense reference in points with
    that difference's minimum detectable effect (80% power, two-sided 5%, paired seeds:
    2.8 x sd x sqrt(2 / seeds)) and a verdict, the dev metric, whether it was on the search's
    front, and ``confirmed_front``: Pareto-optimal on (confirmed score, latency). ``latency``:
    trial -> re-measured ms (else the search's)."""
    by_number = {r.number: r for r in recs}
    on_front = {r.number for r in front(recs)}
    dense = next((c for c in confirmed if by_number.get(c.trial) and by_number[c.trial].reference == Reference.DENSE), None)
    rows = []
    for c in confirmed:
        r = by_number.get(c.trial)
        if r is None or not r.finished:
            continue
        ms = (latency or {}).get(c.trial) or r.latency_ms
        row = {"trial": c.trial, "reference": r.reference or "", "design": r.summary, "latency_ms": round(ms, 2),
               "search_score": round(r.score, 4), "on_search_front": c.trial in on_front,
               "confirmed_score": round(c.mean, 4), "seeds": len(c.scores),
               "confirmed_by_seed": " ".join(f"{v:.4f}" for v in c.scores.values())}
        if dense is not None:
            shared = [s for s in c.scores if s in dense.scores]  # paired: the same seeds
            diff = float(np.mean([c.scores[s] - dense.scores[s] for s in shared])) if shared else math.nan
            row["confirmed_vs_dense_points"] = round(100 * diff, 2)
            if noise is not None and shared:
                se = noise.sd * math.sqrt(2 / len(shared))
                row["mde_points"] = round(100 * 2.8 * se, 2)
                row["verdict"] = ("dense" if c is dense else "within noise" if abs(diff) < 1.96 * se
                                  else "worse than dense" if diff < 0 else "better than dense")
        if dev_metric:
            value, base = c.dev_mean(dev_metric), dense.dev_mean(dev_metric) if dense else None
            row[f"dev_{dev_metric}"] = round(value, 4) if value is not None else ""
            row["dev_vs_dense_points"] = round(100 * (value - base), 2) if value is not None and base is not None else ""
        rows.append(row)
    rows.sort(key=lambda row: (row["latency_ms"], row["trial"]))
    if rows:
        mask = pareto_mask(np.array([row["confirmed_score"] for row in rows]), np.array([row["latency_ms"] for row in rows]))
        for row, keep in zip(rows, mask):
            row["confirmed_front"] = bool(keep)
    return rows


def with_confirmed(front_rows: Sequence[Mapping], confirmed: Sequence[Mapping]) -> list[dict]:
    """The front's rows (``trial_rows``) with the confirmation's score beside the search's:
    ``confirmed_score``, ``confirmed_vs_dense_points`` and ``verdict`` ("" where not confirmed)."""
    by_trial = {row["trial"]: row for row in confirmed}
    keys = ("confirmed_score", "confirmed_vs_dense_points", "verdict")
    return [{**row, **{k: by_trial.get(row["trial"], {}).get(k, "") for k in keys}} for row in front_rows]


def format_confirmed(rows: Sequence[Mapping], noise: Noise | None, teacher: Mapping | None = None) -> str:
    """confirmed.csv for the console: each confirmed design, fastest first, both scores, its
    difference to dense with the minimum detectable effect, the run's noise, and the task teacher
    itself beside the healed dense reference (``teacher``: score, metric, dev)."""
    dev = next((k for k in (rows[0] if rows else {}) if k.startswith("dev_") and k != "dev_vs_dense_points"), None)
    head = (f"{'trial':>5}  {'design':<44} {'ms':>8} {'search':>8} {'confirmed':>9} {'vs dense':>8} {'MDE':>6} "
            f"{'verdict':<18} {'dev':>6} {'front':>5}")
    lines = ["Confirmed designs (the confirmation proxy, paired seeds; * on the confirmed front):", head, "-" * len(head)]
    for r in rows:
        delta, mde = r.get("confirmed_vs_dense_points", ""), r.get("mde_points", "")
        value = r.get(dev, "") if dev else ""
        lines.append(
            f"{r['trial']:>5}  {(r['reference'] or r['design'])[:44]:<44} {r['latency_ms']:>8.1f} {r['search_score']:>8.4f} "
            f"{r['confirmed_score']:>9.4f} {delta if delta == '' else f'{delta:+.2f}':>8} {mde!s:>6} "
            f"{r.get('verdict', ''):<18} {value if value == '' else f'{value:.4f}':>6} {'*' if r.get('confirmed_front') else '':>5}")
    if noise is not None:
        lines.append(f"noise: sd {noise.sd:.4f} of the confirmed score, {noise.dof} dof ({noise.source}); "
                     "MDE: the smallest difference to dense these seeds detect (80% power, 5% two-sided)")
    dense = next((r for r in rows if r.get("reference") == Reference.DENSE), None)
    if teacher and dense is not None:
        shown = f" {dev[4:]} {100 * teacher['dev'][dev[4:]]:.2f}" if dev and dev[4:] in teacher.get("dev", {}) else ""
        lines.append(f"the task teacher itself (dense before the proxy heals it): score {teacher['score']:.4f}{shown}; "
                     f"the healed dense reference minus it: {100 * (dense['confirmed_score'] - teacher['score']):+.2f} points "
                     "(every 'vs dense' above is against the healed dense)")
    return "\n".join(lines)


# ---- rows: trials.csv, pareto.csv, the report's table ------------------------------------------------


# trials.csv / pareto.csv columns written before the score was called a score
RENAMED_COLUMNS = {"proxy_accuracy": "score", "accuracy_vs_dense_points": "score_vs_dense_points"}


def with_current_names(row: Mapping[str, Any]) -> dict[str, Any]:
    """A trials.csv or pareto.csv row with the columns of older runs under today's names."""
    return {RENAMED_COLUMNS.get(k, k): v for k, v in row.items()}


def trial_rows(
    recs: Sequence[TrialRecord],
    dense: TrialRecord | None,
    remeasured: Mapping[int, float] | None = None,
    noise: Noise | None = None,
) -> list[dict]:
    """One dict per finished trial; ``remeasured`` (trial -> ms, from ``Search.remeasure``) adds
    the re-measured latency and speedup. With the run's ``noise``, ``within_noise`` marks a
    trial whose score is within one noise sd of the next faster trial's in ``recs`` (for the
    front, fastest first: its extra accuracy is not told apart from noise)."""
    rows = []
    for r in recs:
        if not r.finished:
            continue
        acc, ms, dev = r.score, r.latency_ms, r.proxy_dev
        rows.append({
            "trial": r.number,
            "reference": r.reference or "",
            "design": r.summary,
            "score": round(acc, 4),
            "latency_ms": round(ms, 2),
            "speedup_vs_dense": round(dense.latency_ms / ms, 2) if dense else "",
            "score_vs_dense_points": round(100 * (acc - dense.score), 2) if dense else "",
            "dev_score": round(dev[r.proxy_metric], 4) if dev and r.proxy_metric in dev else "",  # reported only
            "gflops": round((r.flops or 0) / 1e9, 3),
            "params_m": round((r.params or 0) / 1e6, 2),
            "latency_cv": round(r.latency_cv or 0, 3),
            "spec_hash": r.spec_hash or "",
        })
        if noise is not None:
            faster = [row for row in rows[:-1] if row["latency_ms"] < rows[-1]["latency_ms"]]
            rows[-1]["within_noise"] = bool(faster) and abs(acc - faster[-1]["score"]) < noise.sd
        if remeasured is not None:
            ms_again = remeasured.get(r.number)
            base = remeasured.get(dense.number) if dense else None
            rows[-1]["remeasured_ms"] = round(ms_again, 2) if ms_again else ""
            rows[-1]["remeasured_speedup"] = round(base / ms_again, 2) if ms_again and base else ""
    return rows


SEARCH_VS_DENSE = ("vs dense: the search proxy's score minus dense's, points; it ranks designs but is no design's loss "
                   "(the supernet's dense is the task teacher itself, every other design shares weights trained a fraction "
                   "of the steps): report the confirmed 'vs dense'")


def format_pareto(rows: Sequence[Mapping]) -> str:
    """The Pareto table for the console: one design a line, references marked; latency and
    speedup are the re-measured ones when the rows have them. ``accuracy`` is the search's score
    (held-out slice of train), ``vs dense`` its difference to the dense reference in points,
    ``dev`` the same metric on the task's dev split (reported, not searched on); ``~`` marks an
    accuracy within the proxy's seed noise of the next faster design's."""
    head = (f"{'trial':>5}  {'reference':<11} {'design':<44} {'score':>8} {'vs dense':>8} {'dev':>6} "
            f"{'ms':>8} {'speedup':>7} {'GFLOPs':>7} {'params':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ms = r.get("remeasured_ms") or r["latency_ms"]
        speedup = r.get("remeasured_speedup") or r["speedup_vs_dense"]
        delta, dev = r.get("score_vs_dense_points", ""), r.get("dev_score", "")
        acc = ("~" if r.get("within_noise") else "") + f"{r['score']:.4f}"
        lines.append(
            f"{r['trial']:>5}  {r['reference'] or '-':<11} {r['design']:<44} {acc:>8} "
            f"{delta if delta == '' else f'{delta:+.2f}':>8} {dev if dev == '' else f'{dev:.4f}':>6} "
            f"{ms:>8.1f} {speedup!s:>6}x {r['gflops']:>7.2f} {r['params_m']:>6.1f}M"
        )
    return "\n".join(lines)


def write_run(files: RunDir, recs: Sequence[TrialRecord], header: Mapping[str, Any], remeasured: Mapping[int, float] | None,
              confirmed: Sequence[Confirmed] | None, confirm_noise: Noise | None,
              dev_metric: str | None) -> tuple[list[dict], Noise | None, list[dict]]:
    """A finished run's files: trials.csv, pareto.csv (re-measured latency where given; the
    confirmed scores beside the search's), confirmed.csv (with a confirmation) and study.json
    (``header``, then the front, states, noise and confirmed rows). The run's noise is the
    confirmation's (paired seeds on every confirmed design) when there is one, else the search
    proxy's (the references scored twice). Returns (front rows, search proxy noise, confirmed rows)."""
    files.path.mkdir(parents=True, exist_ok=True)
    dense, noise = dense_reference(recs), proxy_noise(recs)
    rows = trial_rows(front(recs), dense, remeasured, noise)
    confirmed_ = []
    if confirmed is not None:
        confirmed_ = confirmed_rows(confirmed, recs, confirm_noise, remeasured, dev_metric)
        rows = with_confirmed(rows, confirmed_)
        write_csv(files.confirmed_csv, confirmed_)
    done = [r for r in recs if r.finished]
    write_csv(files.trials_csv, trial_rows(done, dense))  # within_noise: a front's column
    write_csv(files.pareto_csv, rows)
    summary = {
        **header,
        "states": {s.name: sum(r.state == s.name for r in recs) for s in TrialState},
        "pareto": rows,
        "proxy_noise": vars(noise) if noise else None,  # the search proxy's (references scored twice)
        "noise": vars(confirm_noise or noise) if confirm_noise or noise else None,  # the run's
        "confirmed": confirmed_,
        "references": {r.reference: r.number for r in recs if r.reference},
    }
    files.study_json.write_text(json.dumps(summary, indent=2))
    return rows, noise, confirmed_


def format_evaluation(designs: Mapping[str, ArchSpec], costs: Mapping[str, Cost], comparison: Comparison) -> str:
    """The ``evaluate`` command's table: each design's costs and measured latency, and its speedup."""
    env = next(iter(comparison.latencies.values())).env
    head = f"{'design':<16} {'spec':<44} {'params':>8} {'GMACs':>7} {'GFLOPs':>7} {'median ms':>10} {'p10-p90 ms':>15} {'CV':>6} {'speedup':>8}"
    rows = [head, "-" * len(head)]
    for name, spec in designs.items():
        c, lat = costs[name], comparison.latencies[name]
        rows.append(
            f"{name:<16} {spec.summary():<44} {c.params / 1e6:>7.1f}M {c.gmacs:>7.2f} {c.gflops:>7.2f} "
            f"{lat.median_ms:>10.1f} {f'{lat.p10_ms:.1f}-{lat.p90_ms:.1f}':>15} {lat.cv:>6.3f} "
            f"{comparison.speedup[name]:>7.2f}x"
        )
    n = len(next(iter(comparison.latencies.values())).samples_ms)
    c0 = next(iter(costs.values()))
    rows += [
        "",
        f"batch {c0.batch}, seq {c0.seq_len}; GMACs/GFLOPs: encoder matmuls (FLOPs = 2 x MACs); "
        f"speedup vs the dense reference, {n} interleaved rounds",
        f"env: {env}",
    ]
    return "\n".join(rows)

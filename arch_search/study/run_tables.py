"""The tables of a finished run: the rows of trials.csv, pareto.csv and confirmed.csv, and
study.json (``write_run`` writes them all), and the same rows as console tables
(``format_pareto``, ``format_confirmed``). No torch: ``report`` reads the rows through this module.

Minimum detectable effect of a paired difference: 80% power, two-sided 5%, i.e.
(z_0.975 + z_0.8) = 1.96 + 0.84 = 2.8 standard errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.trial import TrialState

from arch_search.design.spec import Reference
from arch_search.stats import Noise, paired_se
from arch_search.study.front import front, pareto_mask
from arch_search.study.record import Confirmed, TrialRecord, dense_reference, proxy_noise
from arch_search.study.run_dir import RunDir
from arch_search.tables import write_csv

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
    front, fastest first: its extra score is not told apart from noise)."""
    rows = []
    for r in recs:
        if not r.finished:
            continue
        score, ms, dev = r.score, r.latency_ms, r.proxy_dev
        rows.append({
            "trial": r.number,
            "reference": r.reference or "",
            "design": r.summary,
            "score": round(score, 4),
            "latency_ms": round(ms, 2),
            "speedup_vs_dense": round(dense.latency_ms / ms, 2) if dense else "",
            "score_vs_dense_points": round(100 * (score - dense.score), 2) if dense else "",
            "dev_score": round(dev[r.proxy_metric], 4) if dev and r.proxy_metric in dev else "",  # reported only
            "gflops": round((r.flops or 0) / 1e9, 3),
            "params_m": round((r.params or 0) / 1e6, 2),
            "latency_cv": round(r.latency_cv or 0, 3),
            "spec_hash": r.spec_hash or "",
        })
        if noise is not None:
            faster = [row for row in rows[:-1] if row["latency_ms"] < rows[-1]["latency_ms"]]
            rows[-1]["within_noise"] = bool(faster) and abs(score - faster[-1]["score"]) < noise.sd
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
    speedup are the re-measured ones when the rows have them. ``score`` is the search's score
    (held-out slice of train), ``vs dense`` its difference to the dense reference in points,
    ``dev`` the same metric on the task's dev split (reported, not searched on); ``~`` marks a
    score within the proxy's seed noise of the next faster design's."""
    head = (f"{'trial':>5}  {'reference':<11} {'design':<44} {'score':>8} {'vs dense':>8} {'dev':>6} "
            f"{'ms':>8} {'speedup':>7} {'GFLOPs':>7} {'params':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ms = r.get("remeasured_ms") or r["latency_ms"]
        speedup = r.get("remeasured_speedup") or r["speedup_vs_dense"]
        delta, dev = r.get("score_vs_dense_points", ""), r.get("dev_score", "")
        score = ("~" if r.get("within_noise") else "") + f"{r['score']:.4f}"
        lines.append(
            f"{r['trial']:>5}  {r['reference'] or '-':<11} {r['design']:<44} {score:>8} "
            f"{delta if delta == '' else f'{delta:+.2f}':>8} {dev if dev == '' else f'{dev:.4f}':>6} "
            f"{ms:>8.1f} {speedup!s:>6}x {r['gflops']:>7.2f} {r['params_m']:>6.1f}M"
        )
    return "\n".join(lines)



# ---- the confirmation's rows: confirmed.csv, and its columns in pareto.csv -----------------------------


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
                se = paired_se(noise, len(shared))
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


# ---- the run's files ---------------------------------------------------------------------------------


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

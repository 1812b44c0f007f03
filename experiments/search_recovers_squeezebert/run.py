"""Does the default search find SqueezeBERT's trade-off, and is the front it shows true? The main
command of README, timed:

    ARCH_SEARCH_CHECKPOINT=../shared/models/all-MiniLM-L6-v2 GLUE_DIR=../shared/glue \\
        python -m arch_search run space=squeezebert seed=S

(the distilled supernet scores each design; the front and both references are confirmed by the
compressed proxy with two paired seeds). Each run goes to its own folder beside this file:

- ``seed0/``: seed 0 from empty caches (its own ``cache_dir``, emptied first): the first run,
  the task teacher and the supernet trained in it;
- ``seed0-cached/``: seed 0 again, a new study, the caches warm (teacher, supernet, the
  confirmations kept in ``<cache_dir>/confirmations``): a second run;
- ``seed1/``: seed 1 from empty caches (emptied first): a second first run;
- ``seed1-cached/``: seed 1 again, the caches warm: the second run after ``seed1``.

then ``results.md`` and ``summary.json`` from their files: wall times, each front with both
scores, the run's noise (the confirmation's paired seeds), where the SqueezeBERT pattern lands,
and how far the two seeds' confirmed fronts agree (hypervolume ratio, shared designs).

    python experiments/search_recovers_squeezebert/run.py                 # the four runs (~4 h on 2 cores), skipping finished ones
    python experiments/search_recovers_squeezebert/run.py --only seed0    # one of them
    python experiments/search_recovers_squeezebert/run.py --render        # results.md, summary.json from the folders
    python experiments/search_recovers_squeezebert/run.py --figures       # each run's report PNGs (<run>/figures/) again
    python experiments/search_recovers_squeezebert/run.py --quick         # smoke: `run search=quick`, prints only

The run with the from-scratch proxy (the default before) is archived in ``scratch_proxy/``; the
three runs before issue 34 (front coverage's baseline) in ``before_issue34/``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from arch_search.measure.latency import Env
from arch_search.study.front import hypervolume_2d, pareto_mask
from arch_search.study.run_tables import with_current_names
from arch_search.tables import md_table
from experiments import toolkit

HERE = Path(__file__).resolve().parent
CACHE = toolkit.REPO / ".cache" / "search_recovers"  # the runs' own cache_dir (the first run empties it)
RUNS = {"seed0": (0, "fresh"), "seed0-cached": (0, "warm"), "seed1": (1, "fresh"), "seed1-cached": (1, "warm")}  # name: (seed, caches), in run order
CACHED = {"seed0-cached": "seed0", "seed1-cached": "seed1"}  # each second run and the first run it follows
BEFORE = HERE / "before_issue34"  # the same three runs before issue 34 (uniform supernet draws, top-of-front confirmation)
QUICK = ["search=quick", "search.n_trials=4", "search.progress=false", "proxy.progress=false",
         "proxy.teacher_steps=4", "proxy.steps=3", "confirm.teacher_steps=4", "confirm.distill_steps=2",
         "confirm.steps=2", "confirm.calibration=8", "proxy_setup.heldout=60", "confirm.setup.heldout=60",
         "proxy_setup.max_len=16", "latency.rounds=2", "seq_len=16"]


def command(name: str, run_dir: Path, cache: Path, quick: bool = False) -> list[str]:
    seed, _ = RUNS[name]
    extra = QUICK if quick else ["space=squeezebert"]
    return [sys.executable, "-m", "arch_search", "run", *extra, f"seed={seed}", f"hydra.run.dir={run_dir}",
            f"cache_dir={cache}"]


def run_one(name: str, run_dir: Path, cache: Path, quick: bool = False) -> float:
    """The main command into ``run_dir`` (its output in log.txt), timed; returns seconds."""
    if RUNS[name][1] == "fresh":
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    seconds = toolkit.run_logged(command(name, run_dir, cache, quick), run_dir, toolkit.data_env())
    (run_dir / "wall_seconds.txt").write_text(f"{seconds:.0f}\n")
    (run_dir / "machine.txt").write_text(f"{Env.current(threads=1)}\n")
    return seconds


FIGURES = ("pareto_front", "confirmed_front", "search_vs_confirmed", "reference_latency", "grouping_heatmap")


# ---- what a run shows ------------------------------------------------------------------------------


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def truth(value: str) -> bool:
    return value == "True"


def timing(run_dir: Path) -> dict:
    """Where a run's time went, from its study.db (read-only): the first trial (it trains the
    teacher and the supernet when they are not cached), the other distinct designs, the
    confirmation; and the dense reference's samples per trial, with the sampling error of the
    drift factor they give (1.2533 cv / sqrt(n): a median's standard error, in %)."""
    import sqlite3
    from datetime import datetime

    db = sqlite3.connect(f"file:{run_dir / 'study.db'}?mode=ro", uri=True)
    studies = dict(db.execute("SELECT study_name, study_id FROM studies"))
    search_id = next(i for name, i in studies.items() if not name.endswith(":confirm"))
    confirm_id = next((i for name, i in studies.items() if name.endswith(":confirm")), None)

    def trials(study_id):
        rows = db.execute("SELECT trial_id, number, datetime_start, datetime_complete FROM trials "
                          "WHERE study_id = ? AND state = 'COMPLETE' ORDER BY number", (study_id,)).fetchall()
        return [(tid, n, (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()) for tid, n, a, b in rows]

    def attr(trial_id, key):
        row = db.execute("SELECT value_json FROM trial_user_attributes WHERE trial_id = ? AND key = ?", (trial_id, key)).fetchone()
        return json.loads(row[0]) if row else None

    search = trials(search_id)
    first = next(s for _, n, s in search if n == 0)
    designs = [(tid, s) for tid, n, s in search if n > 0 and attr(tid, "duplicate_of") is None]
    confirm = trials(confirm_id) if confirm_id is not None else []
    samples = [attr(tid, "reference_samples") for tid, _ in designs]
    cvs = [attr(tid, "reference_cv") for tid, _ in designs]
    recorded = [(n, cv) for n, cv in zip(samples, cvs) if n and cv is not None]
    wall = float((run_dir / "wall_seconds.txt").read_text())
    search_s, confirm_s = sum(s for *_, s in search), sum(s for *_, s in confirm)
    return {
        "first_trial_minutes": round(first / 60, 1), "designs_minutes": round(sum(s for _, s in designs) / 60, 1),
        "seconds_per_design": round(statistics.median(s for _, s in designs), 1),
        "confirm_minutes": round(confirm_s / 60, 1), "confirmations": len(confirm),
        "confirmations_cached": sum(attr(tid, "cached") is not None for tid, *_ in confirm),
        "seconds_per_confirmation": round(statistics.median(s for tid, _, s in confirm if attr(tid, "cached") is None), 1)
        if any(attr(tid, "cached") is None for tid, *_ in confirm) else None,
        "other_minutes": round((wall - search_s - confirm_s) / 60, 1),
        "reference_samples": statistics.median(n for n, _ in recorded) if recorded else None,
        "drift_factor_se_percent": round(100 * statistics.median(1.2533 * cv / math.sqrt(n) for n, cv in recorded), 2)
        if recorded else None,
    }


def latency_agreement(a: Path, b: Path) -> dict | None:
    """Two runs' drift-corrected latencies of the designs both timed (trials.csv): the median
    and the 90th percentile of |b / a - 1|, in %."""
    ms = [{r["spec_hash"]: float(r["latency_ms"]) for r in read_csv(d / "trials.csv")} for d in (a, b)]
    common = sorted(set(ms[0]) & set(ms[1]))
    if not common:
        return None
    dev = sorted(abs(ms[1][h] / ms[0][h] - 1) * 100 for h in common)
    return {"designs": len(common), "median_percent": round(statistics.median(dev), 2),
            "p90_percent": round(dev[min(len(dev) - 1, int(0.9 * len(dev)))], 2)}


def analyse(run_dir: Path) -> dict:
    """One run's numbers: wall time, noise, the confirmed front and its span, SqueezeBERT's place."""
    study = json.loads((run_dir / "study.json").read_text())
    confirmed = read_csv(run_dir / "confirmed.csv")
    noise = study.get("noise") or {}
    front = sorted((r for r in confirmed if truth(r["confirmed_front"])), key=lambda r: float(r["latency_ms"]))
    scores = [float(r["confirmed_score"]) for r in front]
    span = max(scores) - min(scores) if scores else 0.0
    squeeze = next((r for r in confirmed if r["reference"] == "squeezebert"), None)
    where = None
    if squeeze is not None:
        acc, ms = float(squeeze["confirmed_score"]), float(squeeze["latency_ms"])
        no_slower = [float(r["confirmed_score"]) for r in front if float(r["latency_ms"]) <= ms]
        as_good = [float(r["latency_ms"]) for r in front if float(r["confirmed_score"]) >= acc]
        where = {"on_front": truth(squeeze["confirmed_front"]), "score": acc, "ms": ms,
                 "behind_points": round(100 * (max(no_slower) - acc), 2) if no_slower else 0.0,
                 "slower_ms": round(ms - min(as_good), 1) if as_good else 0.0}
    return {
        "wall_minutes": round(float((run_dir / "wall_seconds.txt").read_text()) / 60, 1),
        "machine": (run_dir / "machine.txt").read_text().strip(),
        "evaluations": study.get("evaluations"), "noise_sd": noise.get("sd"), "noise_dof": noise.get("dof"),
        "noise_source": noise.get("source"), "confirmed": len(confirmed), "front": front,
        "front_accuracy_span": round(span, 4), "span_over_noise": round(span / noise["sd"], 1) if noise.get("sd") else None,
        **front_coverage(confirmed, reference_front()), **toolkit.search_reach(run_dir),
        "teacher": study.get("teacher"), "squeezebert": where, "search_front": [with_current_names(x) for x in read_csv(run_dir / "pareto.csv")], "timing": timing(run_dir),
    }


LESSONS = ("which_layers", "group_count", "shuffle")  # the reference front's designs (their compressed rows)
COVERAGE_REF = (1.0, -15.0)  # (speedup, score vs dense x100): the hypervolume's reference point


def reference_front(seeds: tuple[int, ...] | None = None) -> list[tuple[float, float, str]]:
    """The lessons' compressed-proxy designs without shuffle as (speedup, score vs dense x100,
    name): the mean score over seeds (all, or ``seeds``) minus dense's (each lesson's own dense
    rows, same seeds), x100; the speedup from the lesson's latency.csv. Every lesson's row is a
    point (a design in two lessons is two points, timed twice)."""
    points = []
    for lesson in LESSONS:
        scores: dict[str, list[float]] = {}
        shuffled = set()
        for r in read_csv(HERE.parent / lesson / "scores.csv"):
            if seeds is not None and int(r["seed"]) not in seeds:
                continue
            scores.setdefault(r["design"], []).append(float(r["score"]))
            if any(part.endswith("s") for part in r["spec"].split("g[")[1].rstrip("]").split()):
                shuffled.add(r["design"])
        speedup = {r["design"]: float(r["speedup"]) for r in read_csv(HERE.parent / lesson / "latency.csv")}
        dense = next(n for n in scores if speedup.get(n) == 1.0)
        points += [(speedup[n], 100 * (statistics.fmean(v) - statistics.fmean(scores[dense])), f"{lesson}: {n}")
                   for n, v in scores.items() if n not in shuffled and n in speedup]
    return points


def speedup_hypervolume(points: list[tuple[float, float]], ref: tuple[float, float] = COVERAGE_REF) -> float:
    """The area that ``points`` (speedup, score vs dense; both up) dominate above ``ref``."""
    inside = [(sp, sc) for sp, sc in points if sp > ref[0] and sc > ref[1]]
    if not inside:
        return 0.0
    keep = pareto_mask([sc for _, sc in inside], [-sp for sp, _ in inside])  # faster is the "lower latency"
    best = [(sc, -sp) for (sp, sc), k in zip(inside, keep) if k]  # (score, "latency")
    return hypervolume_2d(best, (ref[1], -ref[0]))


def confirmed_points(confirmed: list[dict]) -> list[tuple[float, float]]:
    """A run's confirmed designs as (speedup over its dense reference, confirmed score vs dense x100)."""
    dense = next(float(r["latency_ms"]) for r in confirmed if r["reference"] == "bert_base")
    return [(dense / float(r["latency_ms"]), float(r["confirmed_vs_dense_points"])) for r in confirmed
            if r["confirmed_vs_dense_points"] not in ("", None)]


def front_coverage(confirmed: list[dict], reference: list[tuple[float, float, str]]) -> dict:
    """How much of what the lessons found a run's confirmed front shows: its hypervolume over
    that of its union with the reference front (``COVERAGE_REF``), and the widest gap between
    neighbours on its confirmed front (the ratio of their speedups)."""
    mine = confirmed_points(confirmed)
    union = mine + [(sp, sc) for sp, sc, _ in reference]
    own, both = speedup_hypervolume(mine), speedup_hypervolume(union)
    keep = pareto_mask([sc for _, sc in mine], [-sp for sp, _ in mine])
    speedups = sorted(sp for (sp, _), k in zip(mine, keep) if k)
    return {"front_coverage": round(own / both, 3) if both else None,
            "widest_speedup_step": round(max((b / a for a, b in zip(speedups, speedups[1:])), default=math.nan), 3),
            "confirmed_front_speedups": [round(x, 2) for x in speedups]}


def coverage_ceiling(designs: int = 6) -> dict:
    """What the coverage target asks of a run, from the lessons' own rows. ``two_seeds``: the
    coverage of the lessons' designs themselves, each scored with 2 of its 3 seeds (as a run
    confirms: 2 seeds), per seed pair; the seed noise alone keeps this below 1. ``best_of``: the
    coverage of the best ``designs`` reference points (dense among them, 3 seeds): the most a run
    confirming that many designs could show without noise."""
    reference = reference_front()
    pairs = list(itertools.combinations(sorted({int(r["seed"]) for r in read_csv(HERE.parent / LESSONS[0] / "scores.csv")}), 2))
    two = {f"{a},{b}": front_coverage([{"reference": "", "latency_ms": 1 / sp, "confirmed_vs_dense_points": sc} for sp, sc, _ in
                                       reference_front((a, b))] + [{"reference": "bert_base", "latency_ms": 1.0,
                                                                  "confirmed_vs_dense_points": 0.0}], reference)["front_coverage"]
           for a, b in pairs}
    points = sorted({(sp, sc) for sp, sc, _ in reference if sp > 1.0})
    full = speedup_hypervolume([(sp, sc) for sp, sc, _ in reference])
    best = max(itertools.combinations(points, designs - 1), key=lambda c: speedup_hypervolume([(1.0, 0.0), *c]))
    return {"two_seeds": two, "two_seeds_mean": round(statistics.fmean(two.values()), 3),
            "best_of": designs, "best_of_coverage": round(speedup_hypervolume([(1.0, 0.0), *best]) / full, 3),
            "best_of_speedups": [round(sp, 2) for sp, _ in best]}


def before_issue34() -> dict[str, dict]:
    """``front_coverage`` of each run in ``BEFORE`` (the baseline the issue measured)."""
    return {name: {**front_coverage(read_csv(BEFORE / name / "confirmed.csv"), reference_front()),
                   **toolkit.search_reach(BEFORE / name)}
            for name in RUNS if (BEFORE / name / "confirmed.csv").is_file()}


def hypervolume_ratio(a: list[dict], b: list[dict]) -> float | None:
    """The smaller confirmed front's hypervolume over the larger's, both to one reference point
    (the worst confirmed score and the slowest latency of the two fronts)."""
    if not a or not b:
        return None
    points = [(float(r["confirmed_score"]), float(r["latency_ms"])) for r in a + b]
    ref = (min(s for s, _ in points) - 0.01, max(ms for _, ms in points) * 1.01)
    hv = [hypervolume_2d([(float(r["confirmed_score"]), float(r["latency_ms"])) for r in f], ref) for f in (a, b)]
    return round(min(hv) / max(hv), 3) if max(hv) > 0 else None


def render(runs: dict[str, dict]) -> tuple[str, dict]:
    first, seed1 = runs.get("seed0"), runs.get("seed1")
    cached = runs.get("seed1-cached") or runs.get("seed0-cached")  # the latest second run
    shared = sorted({r["design"] for r in first["front"]} & {r["design"] for r in seed1["front"]}) if first and seed1 else []
    summary = {
        "machine": next(iter(runs.values()))["machine"] if runs else None,
        "wall_minutes_first": first["wall_minutes"] if first else None,
        "wall_minutes_first_seed1": seed1["wall_minutes"] if seed1 else None,
        "wall_minutes_cached": cached["wall_minutes"] if cached else None,
        "front_accuracy_span": first["front_accuracy_span"] if first else None,
        "noise_sd": first["noise_sd"] if first else None, "noise_dof": first["noise_dof"] if first else None,
        "squeezebert_on_front": first["squeezebert"]["on_front"] if first and first["squeezebert"] else None,
        "hypervolume_ratio_between_seeds": hypervolume_ratio(first["front"], seed1["front"]) if first and seed1 else None,
        "shared_front_designs": shared,
        "front_coverage": {name: r["front_coverage"] for name, r in runs.items()},
        "widest_speedup_step": {name: r["widest_speedup_step"] for name, r in runs.items()},
        "front_coverage_ceiling": coverage_ceiling(),
        "before_issue34": before_issue34(),
        "latency_agreement_cached_vs_first": {b: agree for b, a in CACHED.items() if b in runs and a in runs
                                               if (agree := latency_agreement(HERE / a, HERE / b))} or None,
        "runs": {name: {k: v for k, v in r.items() if k not in ("front", "search_front")} for name, r in runs.items()},
    }
    lines = ["# search_recovers_squeezebert: the default `run space=squeezebert` (distilled supernet + confirmation)", "",
             "Command (each run): `ARCH_SEARCH_CHECKPOINT=../shared/models/all-MiniLM-L6-v2 GLUE_DIR=../shared/glue "
             "python -m arch_search run space=squeezebert seed=S` with `hydra.run.dir=<folder>` and "
             f"`cache_dir={CACHE.relative_to(toolkit.REPO)}` (emptied before `seed0`), run by "
             "`python experiments/search_recovers_squeezebert/run.py`.", "",
             "The runs at a glance (leveled start: the study's first trials drawn by complexity level, "
             "`search.leveled_start`, 0 in a run made before it existed; start bins: those draws spread over MAC-speedup bins, "
             "`search.start_bins`, 0 by level only; fastest trial and mild designs, one or two types "
             "grouped: what the search evaluated, references left out):", ""]
    lines += md_table([{"run": f"`{name}`", **r, "fastest_trial_speedup": f"{r['fastest_trial_speedup']}x",
                        "widest_speedup_step": f"{r['widest_speedup_step']}x"} for name, r in runs.items()], {
        "run": "run", "leveled_start": "leveled start", "start_bins": "start bins", "fastest_trial_speedup": "fastest trial",
        "mild_designs": "mild designs", "confirmed_front_speedups": "confirmed front speedups",
        "widest_speedup_step": "widest step (target <= 1.35)", "front_coverage": "front coverage (target >= 0.95)",
        "wall_minutes": "wall min"})
    lines.append("")
    for name, r in runs.items():
        seed, caches = RUNS[name]
        lines += [f"## `{name}`: seed {seed}, {caches} caches", "",
                  f"Machine: {r['machine']}. Wall time: **{r['wall_minutes']} min** ({r['evaluations']} distinct designs, "
                  "the confirmation and the final re-measurement included).", "",
                  f"Noise: sd {r['noise_sd']:.4f} of the confirmed score, {r['noise_dof']} dof ({r['noise_source']}).", "",
                  "Search front (the supernet's score, the confirmation's beside it where confirmed):", ""]
        lines += md_table([{**x, "ms": x.get("remeasured_ms") or x["latency_ms"]} for x in r["search_front"]], {
            "trial": "trial", "reference": "reference", "design": "design", "score": "supernet score",
            "ms": "ms", "remeasured_speedup": "speedup", "confirmed_score": "confirmed", "verdict": "verdict"})
        t = r["timing"]
        lines += ["", f"Where the time went: first trial {t['first_trial_minutes']} min (it trains the teacher and the "
                  f"supernet when they are not cached), {r['evaluations'] - 1} other designs {t['designs_minutes']} min "
                  f"({t['seconds_per_design']} s each, median), {t['confirmations']} confirmations {t['confirm_minutes']} min "
                  f"({t.get('confirmations_cached', 0)} of them copied from the cache of earlier runs; "
                  f"{t['seconds_per_confirmation']} s each scored), the rest (start, re-measurement, files) {t['other_minutes']} min."
                  + (f" The dense reference timed {t['reference_samples']:.0f} times a trial: the drift factor's sampling "
                     f"error {t['drift_factor_se_percent']}% (median over trials)." if t["reference_samples"] else "")]
        lines += ["", "Confirmed designs (compressed proxy, seeds paired; `front`: Pareto-optimal on the confirmed score):", ""]
        lines += md_table(read_csv(HERE / name / "confirmed.csv") if (HERE / name).is_dir() else [], {
            "trial": "trial", "reference": "reference", "design": "design", "latency_ms": "ms", "search_score": "supernet",
            "confirmed_score": "confirmed", "confirmed_vs_dense_points": "vs dense (points)", "mde_points": "MDE",
            "verdict": "verdict", "dev_vs_dense_points": "dev vs dense", "confirmed_front": "front"})
        dense = next((x for x in read_csv(HERE / name / "confirmed.csv") if x["reference"] == "bert_base"), None)
        if r["teacher"] and dense:
            te = r["teacher"]
            lines += ["", f"The task teacher itself (dense before the confirmation heals it): score {te['score']:.4f}, dev "
                      + ", ".join(f"{k} {100 * v:.2f}" for k, v in te["dev"].items())
                      + f"; the healed dense reference minus it: {100 * (float(dense['confirmed_score']) - te['score']):+.2f} "
                      "points (every 'vs dense' is against the healed dense)."]
        s = r["squeezebert"]
        if (HERE / name / "figures" / "confirmed_front.png").is_file():
            lines += ["", f"![the confirmed front of {name}]({name}/figures/confirmed_front.png)", "",
                      f"Figures (`python -m arch_search report {name}`): " + ", ".join(
                          f"[{f}]({name}/figures/{f}.png)" for f in FIGURES if (HERE / name / "figures" / f"{f}.png").is_file())
                      + "."]
        lines += ["", f"Confirmed front: {len(r['front'])} designs, score span {r['front_accuracy_span']:.4f} "
                  f"= {r['span_over_noise']}x the noise sd (target >= 3x). Speedups on it: {r['confirmed_front_speedups']}; "
                  f"widest step between neighbours **{r['widest_speedup_step']}x** (target <= 1.35); front coverage "
                  f"**{r['front_coverage']}** (target >= 0.95: its hypervolume over that of its union with the lessons' "
                  "reference front, below).", ""]
        if s:
            lines.append("SqueezeBERT's pattern: " + ("**on the confirmed front**." if s["on_front"] else
                         f"not on the confirmed front: {s['behind_points']} points behind the best front design no slower, "
                         f"{s['slower_ms']} ms slower than the fastest front design at least as accurate."))
        lines.append("")
    ref = sorted(reference_front())
    keep = pareto_mask([sc for _, sc, _ in ref], [-sp for sp, _, _ in ref])
    lines += ["## The reference front", "",
              "The lessons' compressed-proxy designs without shuffle (which_layers, group_count, shuffle: mean score over "
              "their 3 seeds minus their dense's, x100; speedup from each lesson's latency.csv, 1 thread at BERT-base dims). "
              f"Front coverage = the hypervolume of a run's confirmed front over that of its union with these, in (speedup, "
              f"score vs dense) space from the reference point {COVERAGE_REF}. Their Pareto front:", "",
              "| design | speedup | score vs dense (points) |", "| --- | --- | --- |",
              *[f"| {n} | {sp:.2f} | {sc:.2f} |" for (sp, sc, n), k in zip(ref, keep) if k], ""]
    c = summary["front_coverage_ceiling"]
    lines += ["What the coverage target asks: the lessons' designs themselves, each scored with 2 of their 3 seeds "
              "(a run confirms with 2), cover " + ", ".join(f"{v} (seeds {k})" for k, v in c["two_seeds"].items())
              + f" of the reference front, mean {c['two_seeds_mean']}: with the seed noise alone, a run that confirmed "
              f"every one of those designs would fall short of 0.95 with {sum(v < 0.95 for v in c['two_seeds'].values())} "
              f"of the {len(c['two_seeds'])} seed pairs. Without noise, the best {c['best_of']} designs (dense and "
              f"{c['best_of_speedups']}x) cover {c['best_of_coverage']}: a run confirming {c['best_of']} designs needs "
              "nearly exactly those.", ""]
    if summary["before_issue34"]:
        lines += ["## Before issue 34", "",
                  "The same three runs on the code before issue 34 (`before_issue34/`: the supernet's random designs drawn "
                  "uniformly per choice, the confirmation of the search front's top designs):", "",
                  "| run | front coverage | widest speedup step | confirmed front speedups | fastest trial | mild designs |",
                  "| --- | --- | --- | --- | --- | --- |",
                  *[f"| `{n}` | {c['front_coverage']} | {c['widest_speedup_step']}x | {c['confirmed_front_speedups']} | "
                    f"{c['fastest_trial_speedup']}x | {c['mild_designs']} |" for n, c in summary["before_issue34"].items()], ""]
    for b, a in (summary["latency_agreement_cached_vs_first"] or {}).items():
        lines += [f"## Latency: `{CACHED[b]}` against `{b}`", "",
                  f"The {a['designs']} designs both timed: their drift-corrected latencies differ by {a['median_percent']}% "
                  f"(median; 90th percentile {a['p90_percent']}%) between `{CACHED[b]}` and `{b}` (each with the "
                  "reference timed every third round, `search.latency_mode.reference_every=3`): the spread between two "
                  "runs of one setting.", ""]
    if summary["hypervolume_ratio_between_seeds"] is not None:
        lines += ["## Seeds 0 and 1", "", f"Hypervolume ratio of the confirmed fronts: {summary['hypervolume_ratio_between_seeds']}; "
                  f"designs on both: {', '.join(shared) or 'none'}.", ""]
    return "\n".join(lines), summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(RUNS), help="these runs (default: every one not yet finished)")
    ap.add_argument("--render", action="store_true", help="only write results.md and summary.json from the folders")
    ap.add_argument("--figures", action="store_true", help="only write each finished run's report PNGs again")
    ap.add_argument("--quick", action="store_true", help="smoke run of `run search=quick`; prints, writes nothing here")
    args = ap.parse_args()
    if args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            run_one("seed0", Path(tmp) / "seed0", Path(tmp) / "cache", quick=True)
            text, summary = render({"seed0": analyse(Path(tmp) / "seed0")})
            toolkit.show({"results.md": text + "\n", "summary.json": json.dumps(summary, indent=2) + "\n"})  # not written
        return
    if args.figures:
        for name in args.only or RUNS:
            if (HERE / name / "wall_seconds.txt").is_file():
                toolkit.report_pngs(HERE / name, HERE / name / "figures", FIGURES)
        return
    if not args.render:
        for name in args.only or RUNS:
            if args.only or not (HERE / name / "wall_seconds.txt").is_file():
                print(f"{name}: {' '.join(command(name, HERE / name, CACHE))}", flush=True)
                print(f"{name}: {run_one(name, HERE / name, CACHE) / 60:.1f} min", flush=True)
                toolkit.report_pngs(HERE / name, HERE / name / "figures", FIGURES)
    runs = {name: analyse(HERE / name) for name in RUNS if (HERE / name / "wall_seconds.txt").is_file()}
    text, summary = render(runs)
    (HERE / "results.md").write_text(text + "\n")
    (HERE / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()

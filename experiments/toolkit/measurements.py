"""What a lesson measures of each design: latency (all designs interleaved, before any training;
``latency.csv``) and costs at the target scale, the proxy scores (``store``), and the one row
per design that joins them (``evaluate``)."""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Mapping
from pathlib import Path

from hydra.utils import instantiate

from arch_search import ArchSpec, build_model, count_cost
from arch_search.measure.cost import Cost
from arch_search.measure.latency import Comparison
from experiments.toolkit.checks import BUDGET_CHECK, budget_args
from experiments.toolkit.compose import config, target
from experiments.toolkit.scores import METRICS, Scores
from experiments.toolkit.store import read_rows, save_rows, stored_scores, teacher_scores


def measure(designs: Mapping[str, ArchSpec], args: argparse.Namespace) -> Comparison:
    """All designs in ONE interleaved ``compare_latency`` call (run.yaml's ``latency`` group);
    the first design is the baseline of ``speedup``."""
    cfg = config(args)
    models = {name: build_model(target(spec, args)) for name, spec in designs.items()}
    print(f"timing {len(models)} designs interleaved, {args.rounds} rounds ...", flush=True)
    return instantiate(cfg.latency).compare(models, baseline=next(iter(designs)))


def timed(designs: Mapping[str, ArchSpec], args: argparse.Namespace, here: Path) -> dict[str, dict]:
    """Each design's latency row (design, median / p10 / p90 ms, cv, speedup, machine): measured by this invocation, before any
    training (a quiet machine), and stored in ``here/latency.csv``; read from there under
    ``--render``."""
    path = here / "latency.csv"
    if args.render:
        stored = {r["design"]: {k: (v if k in ("design", "machine") else float(v)) for k, v in r.items()}
                  for r in read_rows(path)}
        missing = [n for n in designs if n not in stored]
        if missing:
            raise SystemExit(f"error: {path}: no latency for {', '.join(missing)} (run without --render to time them)")
        return {n: stored[n] for n in designs}
    cmp = measure(designs, args)
    out = {name: {"design": name, "median_ms": round(lat.median_ms, 2), "p10_ms": round(lat.p10_ms, 2),
                  "p90_ms": round(lat.p90_ms, 2), "cv": round(lat.cv, 4), "speedup": round(cmp.speedup[name], 3),
                  "machine": str(lat.env)} for name, lat in cmp.latencies.items()}
    if not args.quick:
        save_rows(path, list(out.values()))
    return out


def costs(designs: Mapping[str, ArchSpec], args: argparse.Namespace) -> dict[str, Cost]:
    cfg = config(args)
    return {name: count_cost(target(spec, args), seq_len=cfg.seq_len, batch=cfg.batch) for name, spec in designs.items()}


def rows(designs: Mapping[str, ArchSpec], scores: Mapping[str, Scores], latency: Mapping[str, Mapping],
         cost: Mapping[str, Cost]) -> list[dict]:
    """One CSV row per design: pattern, each metric per seed with its mean and sd (points),
    latency, costs."""
    out = []
    for name, spec in designs.items():
        s, lat, c = scores[name], latency[name], cost[name]
        row = {"design": name, "groups": spec.pattern()}
        for which in METRICS if s.score else ("heldout", "dev"):
            values = s.points(which)
            nan = any(math.isnan(v) for v in values)
            row |= {f"{which}_mean": math.nan if nan else round(statistics.fmean(values), 2),
                    f"{which}_sd": math.nan if nan or len(values) < 2 else round(statistics.stdev(values), 2)}
            row |= {f"{which}_seed{seed}": round(v, 2) for seed, v in zip(s.seeds, values)}
        row |= {k: lat[k] for k in ("median_ms", "p10_ms", "p90_ms", "cv", "speedup")}
        row |= {"macs": c.macs, "gmacs": round(c.gmacs, 3), "gflops": round(c.gflops, 3), "params_m": round(c.params / 1e6, 2),
                "seconds_mean": round(statistics.fmean(s.seconds), 1)}
        out.append(row)
    return out


def scores_only(designs: Mapping[str, ArchSpec], args: argparse.Namespace, here: Path,
                checked: Mapping[str, ArchSpec] | None = None, **kw) -> None:
    """Under ``--scores-only``: score what ``here/scores.csv`` lacks (``stored_scores``; with
    ``checked``, those designs at ``BUDGET_CHECK`` x the budget too, ``at_budget``'s rows) and the
    teacher's row (``teacher_scores``), then exit: a later ``--render`` writes the report."""
    if getattr(args, "scores_only", False):
        stored_scores(designs, args, here, **kw)
        if checked:
            stored_scores(checked, budget_args(args), here, budget=BUDGET_CHECK, **kw)
        teacher_scores(args, here, **kw)
        print(f"scores only: {here / 'scores.csv'} holds every design and seed; run without --scores-only to time "
              "and write the report")
        raise SystemExit(0)


def evaluate(designs: Mapping[str, ArchSpec], args: argparse.Namespace, here: Path,
             checked: Mapping[str, ArchSpec] | None = None) -> tuple[dict[str, dict], dict[str, Scores], list[dict]]:
    """Latency (first, on a quiet machine), costs and the lessons' proxy scores of every design
    (resumable, ``stored_scores``), and their rows. ``--scores-only``: the scores (and ``checked``'s
    at the checked budget), then exit."""
    scores_only(designs, args, here, checked)
    latency = timed(designs, args, here)
    cost = costs(designs, args)
    scores = stored_scores(designs, args, here)
    return latency, scores, rows(designs, scores, latency, cost)

"""Searches compared by their sampler (``experiments/samplers``,
``experiments/search_recovers_squeezebert/samplers.py``): one ``python -m arch_search run`` per
(sampler, seed) in ``<out>/<sampler>-seed<seed>``, its trials read back in trial order, and the
hypervolume of (score, latency ms) after each of them against one reference point for every run:
the worst score and the worst latency any run saw, so that every run's designs count."""

from __future__ import annotations

import csv
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from arch_search.measure.latency import Env
from arch_search.study.front import hypervolume_history
from arch_search.study.run_tables import with_current_names
from experiments.toolkit.runs import run_logged

Point = tuple[float, float]  # (score, latency ms)


def run_dir(out: Path, sampler: str, seed: int) -> Path:
    return out / f"{sampler}-seed{seed}"


def run_search(overrides: Sequence[str], run_dir: Path, data_dir: str) -> float:
    """``python -m arch_search run`` with ``overrides`` in ``run_dir`` (its log there, GLUE read
    from ``data_dir``), then the front's trained weights removed (~20 MB each, not needed to
    compare samplers). Returns the wall seconds."""
    cmd = [sys.executable, "-m", "arch_search", "run", *overrides, f"hydra.run.dir={run_dir}"]
    seconds = run_logged(cmd, run_dir, {**os.environ, "GLUE_DIR": data_dir})
    shutil.rmtree(run_dir / "weights", ignore_errors=True)
    return seconds


def trials(run_dir: Path) -> list[tuple[float, float, str]]:
    """(score, latency ms, design hash) of the run's finished trials, in trial order (numerically;
    runs made before the rename call the score proxy_accuracy)."""
    with open(run_dir / "trials.csv", newline="") as f:
        rows = sorted(map(with_current_names, csv.DictReader(f)), key=lambda r: int(r["trial"]))
    return [(float(r["score"]), float(r["latency_ms"]), r["spec_hash"]) for r in rows]


def distinct(run_dir: Path) -> list[Point]:
    """(score, latency ms) of each distinct design in the order the run first evaluated it."""
    seen, out = set(), []
    for score, ms, spec_hash in trials(run_dir):
        if spec_hash not in seen:
            seen.add(spec_hash)
            out.append((score, ms))
    return out


def hypervolume_curves(points: dict[tuple, list[Point]]) -> tuple[dict[tuple, list[float]], Point]:
    """Per run (a key of ``points``), the hypervolume after each of its points against one
    reference point for all runs, (the worst score, the worst latency) any run saw; and that point."""
    everything = [p for run in points.values() for p in run]
    ref = (min(a for a, _ in everything), max(ms for _, ms in everything))
    return {k: hypervolume_history(v, ref) for k, v in points.items()}, ref


def save_machine(out: Path, threads: int) -> None:
    """This machine, in ``out/machine.txt``: the report names where its runs ran."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "machine.txt").write_text(f"{Env.current(threads=threads)}\n")


def machine(out: Path) -> str:
    """The machine the runs in ``out`` ran on (``save_machine``), or ``?``."""
    return (out / "machine.txt").read_text().strip() if (out / "machine.txt").is_file() else "?"


def wall_minutes(run_dir: Path) -> float:
    """The run's wall time (``wall_seconds.txt``), in minutes."""
    return float((run_dir / "wall_seconds.txt").read_text()) / 60


def curves_figure(curves: dict[tuple, list[float]], line: Callable[[str], dict], title: str, xaxis_title: str,
                  yaxis_title: str, n: int | None = None):
    """One line per (sampler, seed) run: its hypervolume after each point (the first ``n``; all
    without), styled by ``line(sampler)`` (plotly's ``line`` dict)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for (s, seed), hv in curves.items():
        hv = hv[:n]
        fig.add_scatter(x=list(range(1, len(hv) + 1)), y=hv, mode="lines", name=f"{s} seed {seed}", line=line(s))
    fig.update_layout(title=title, xaxis_title=xaxis_title, yaxis_title=yaxis_title)
    return fig

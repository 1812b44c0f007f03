"""Running ``python -m arch_search`` for an experiment: the command with its output in the run
directory's log.txt (progress redraws removed, machine paths scrubbed: a committed run names no
folder of the machine that made it), the latency look-up table built once before a set of runs,
its report's PNGs, and how far a run's search reached."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

from hydra.utils import instantiate

from experiments.toolkit.compose import compose_run
from experiments.toolkit.paths import REPO, relative


def build_lut(overrides: Sequence[str]) -> None:
    """The machine's latency look-up table for ``run.yaml`` composed with ``overrides`` (which
    set ``search/latency_mode=lut``): timed once, before a set of runs that then only read it."""
    from arch_search.design.space import SearchSpace

    cfg = compose_run(overrides)
    space = SearchSpace.load(cfg.search.space, proxy_scale=cfg.proxy_setup.scale)
    instantiate(cfg.search.latency_mode).prepare(space, seed=0)


def run_logged(cmd: Sequence[str], run_dir: Path, env: Mapping[str, str]) -> float:
    """``cmd`` from the repository root, its output in ``run_dir/log.txt`` (tqdm's redraws
    removed), timed; returns seconds. A failed command stops the script in one ``error:`` line."""
    import subprocess
    import time

    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(run_dir / "log.txt", "w") as log:
        done = subprocess.run(list(cmd), cwd=REPO, env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed ({done.returncode}); see {run_dir / 'log.txt'}")
    strip_progress(run_dir / "log.txt")
    scrub_paths(run_dir)
    return seconds


def report_pngs(run_dir: Path, out: Path, names: Sequence[str]) -> None:
    """The PNGs ``names`` of ``python -m arch_search report <run_dir>`` into ``out`` (the page
    itself, ~5 MB with plotly.js inlined, is not kept: that command makes it again)."""
    import shutil
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "arch_search", "report", str(run_dir), "--out", tmp]
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        out.mkdir(exist_ok=True)
        for name in names:
            shutil.copyfile(Path(tmp) / f"{name}.png", out / f"{name}.png")


def search_reach(run_dir: Path) -> dict:
    """How far a search run's distinct designs reached (references left out): its fastest
    design's speedup over dense (trials.csv) and how many designs have one or two projection
    types grouped (the mild end); and the run's ``search.leveled_start`` and ``search.start_bins``
    (.hydra/config.yaml; 0 for a run from before they existed, which started as its sampler
    does, or by level only)."""
    import re

    import yaml

    with open(run_dir / "trials.csv", newline="") as f:
        rows = {r["spec_hash"]: r for r in csv.DictReader(f) if not r["reference"]}
    grouped = lambda design: sum(int(g) > 1 for g in re.findall(r"[a-z]+(\d+)", design.split("g[")[1]))  # noqa: E731
    config = run_dir / ".hydra" / "config.yaml"
    search = (yaml.safe_load(config.read_text()) or {}).get("search", {}) if config.is_file() else {}
    return {"leveled_start": int(search.get("leveled_start", 0)), "start_bins": int(search.get("start_bins", 0)),
            "fastest_trial_speedup": max((float(r["speedup_vs_dense"]) for r in rows.values()), default=None),
            "mild_designs": sum(grouped(r["design"]) in (1, 2) for r in rows.values())}


TEXT_FILES = {".yaml", ".txt", ".log", ".json", ".csv", ".md"}


def scrub_paths(run_dir: Path) -> None:
    """A run directory's files (text, and every text column of its SQLite study) through
    ``relative``: a committed run names no folder of the machine that made it."""
    import sqlite3

    for f in sorted(run_dir.rglob("*")):
        if f.is_file() and f.suffix in TEXT_FILES:
            text = f.read_text()
            if (scrubbed := relative(text)) != text:
                f.write_text(scrubbed)
        elif f.is_file() and f.suffix == ".db":
            with sqlite3.connect(f) as db:
                db.create_function("relative", 1, lambda v: relative(v) if isinstance(v, str) else v, deterministic=True)
                for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                    for _, col, kind, *_ in db.execute(f'PRAGMA table_info("{table}")').fetchall():
                        if any(t in kind.upper() for t in ("CHAR", "TEXT", "CLOB")):
                            db.execute(f'UPDATE "{table}" SET "{col}" = relative("{col}") WHERE "{col}" != relative("{col}")')


def strip_progress(log: Path) -> None:
    """The log without tqdm's carriage-return redraws (keeps each bar's last state)."""
    lines = [line.rsplit("\r", 1)[-1] for line in log.read_text().split("\n")]
    log.write_text("\n".join(line for line in lines if line.strip()) + "\n")

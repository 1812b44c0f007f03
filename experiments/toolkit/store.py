"""Scoring designs with the lessons' proxy: every (design, seed) stored in ``scores.csv`` as it
is scored (``stored_scores``: resumable, shared between lessons by design identity, seed and
proxy key; a design's identity is ``spec.hash``, as in the search: ``scored_as``), the task
teacher scored as a design (``teacher.csv``), or designs scored once without storing
(``score_designs``, the from-scratch proxy)."""

from __future__ import annotations

import argparse
import csv
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from hydra.utils import instantiate

from arch_search import ArchSpec
from arch_search.cache import atomic_path
from arch_search.measure.latency import Env
from arch_search.tables import csv_text
from arch_search.tasks.training import ProxyDiverged
from experiments.toolkit.compose import SCRATCH, config, proxy_key
from experiments.toolkit.paths import code_commit
from experiments.toolkit.scores import Scores


SCORE_COLUMNS = ("design", "spec", "spec_hash", "seed", "score", "heldout", "dev", "seconds", "proxy", "code", "machine",
                 "from")
# A row written before the spec_hash column names its design by ``spec.summary()`` (the ``spec``
# column) alone, which leaves these fields out; every such row was scored for a design with these
# values (the presets' in conf/arch/ when they were written), so they complete its identity.
SUMMARY_LEAVES_OUT = {"vocab": 30522, "max_positions": 512, "type_vocab": 2, "act": "gelu", "layer_norm_eps": 1e-12}


def scored_as(row: Mapping[str, str], spec: ArchSpec) -> bool:
    """Was the score ``row`` (of a scores.csv) scored for ``spec``? By ``spec.hash``; a row from
    before the spec_hash column by its summary, for a design whose fields the summary leaves out
    are those every such row had (``SUMMARY_LEAVES_OUT``)."""
    if row.get("spec_hash"):
        return row["spec_hash"] == spec.hash
    return row["spec"] == spec.summary() and all(getattr(spec, k) == v for k, v in SUMMARY_LEAVES_OUT.items())


def read_rows(path: Path) -> list[dict]:
    """The rows of a CSV (scores.csv, latency.csv, results.csv; none when absent)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [dict(r) for r in csv.DictReader(f)]


def save_rows(path: Path, rows: Sequence[Mapping], columns: Sequence[str] | None = None) -> None:
    """``rows`` as ``path``'s CSV, whole or not at all (a kill mid-write keeps the last file): a
    resumable run saves after each row it adds and reads them back (``read_rows``) to skip them.
    ``columns``: those, in that order (a missing one empty); else the first row's."""
    with atomic_path(path) as tmp:
        tmp.write_text(csv_text([{k: r.get(k, "") for k in columns} for r in rows] if columns else rows))


def score_designs(designs: Mapping[str, ArchSpec], args: argparse.Namespace, **proxy_kwargs) -> dict[str, Scores]:
    """Every design through the from-scratch proxy (``SCRATCH``, ``instantiate(cfg.proxy,
    **proxy_kwargs)``), once per seed, not stored (proxy_fidelity). Seed-major, so each seed's
    task data and tokenizer are loaded once."""
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in designs}
    for seed in args.seeds:
        proxy = instantiate(config(args, seed, SCRATCH).proxy, **proxy_kwargs)
        for name, spec in designs.items():
            try:
                r = proxy.evaluate(spec)
                run = (r.score, r.dev[r.metric], r.details["train_seconds"])
            except ProxyDiverged as e:
                run = (math.nan, math.nan, math.nan)
                print(f"seed {seed} {name}: diverged ({e})", flush=True)
            runs[name].append(run)
            print(f"seed {seed}  {name:<34} held-out {run[0]:.4f}  dev {run[1]:.4f}  ({run[2]:.0f} s train)", flush=True)
    return {name: Scores(tuple(args.seeds), *map(tuple, zip(*r))) for name, r in runs.items()}


def stored_scores(designs: Mapping[str, ArchSpec], args: argparse.Namespace, here: Path, task: str | None = None,
                  extra: Sequence[str] = (), budget: int = 1, missing_ok: bool = False) -> dict[str, Scores] | None:
    """Every design x seed with the lessons' proxy (``COMPRESSED``), resumable: ``here/scores.csv``
    gets a row after each design, and a (design, seed) already there is not scored again. A row
    of another lesson (``here/../*/scores.csv``) for the same design, seed and proxy is
    copied instead of scored (its folder in ``from``). ``--render`` scores nothing; ``--quick``
    stores nothing. A stored design scored as another spec than ``designs``' (``scored_as``) is an
    error. ``task``,
    ``extra`` and ``budget``: as ``config`` takes them (glue_tasks scores each task with its own
    held-out rows; another budget's rows go to ``scores_<budget>x.csv``). A (design, seed) still missing (under
    ``--render``) is an error, or None with ``missing_ok``."""
    name = "scores.csv" if budget == 1 else f"scores_{budget}x.csv"  # another budget's rows apart: readers of scores.csv see 1x only
    path = here / name
    rows = [] if args.quick else read_rows(path)
    for r in rows:
        if r["design"] in designs and not scored_as(r, spec := designs[r["design"]]):
            raise SystemExit(f"error: {path}: {r['design']!r} was scored as {r['spec']} ({r.get('spec_hash') or 'no hash'}), "
                             f"not {spec.summary()} ({spec.hash}); move the file away to score it anew")
    siblings = [] if args.quick else [
        {**r, "from": r["from"] or p.parent.name} for p in sorted(here.parent.glob(f"*/{name}"))
        if p.parent != here for r in read_rows(p)]
    code = code_commit()
    cfgs = {seed: config(args, seed, task=task, extra=extra, budget=budget) for seed in args.seeds}
    keys = {seed: proxy_key(cfg) for seed, cfg in cfgs.items()}
    for seed, cfg in cfgs.items():
        machine = str(Env.current(cfg.proxy.threads))  # the threads the proxy trains with
        key = keys[seed]
        done = {r["design"] for r in rows if int(r["seed"]) == seed and r["proxy"] == key}
        todo = [name for name in designs if name not in done]
        if not todo or args.render:
            continue
        proxy = None
        for name in todo:
            spec = designs[name]
            same = next((r for r in siblings if (int(r["seed"]), r["proxy"]) == (seed, key) and scored_as(r, spec)), None)
            if same is not None:
                rows.append({**same, "design": name, "spec_hash": spec.hash})
                print(f"seed {seed}  {name:<34} copied from {same['from']}", flush=True)
            else:
                proxy = proxy or instantiate(cfg.proxy)
                t = time.perf_counter()
                try:
                    r = proxy.evaluate(spec)
                    metric = proxy.setup.data.task.metric  # the score may be a log-likelihood
                    values = (r.score, r.details["heldout"][metric], r.dev[metric])
                except ProxyDiverged as e:
                    values = (math.nan,) * 3
                    print(f"seed {seed} {name}: diverged ({e})", flush=True)
                rows.append({"design": name, "spec": spec.summary(), "spec_hash": spec.hash, "seed": seed,
                             **{k: round(v, 5) for k, v in zip(("score", "heldout", "dev"), values)},
                             "seconds": round(time.perf_counter() - t, 1), "proxy": key, "code": code,
                             "machine": machine, "from": ""})
                print(f"seed {seed}  {name:<34} score {values[0]:.4f}  held-out {values[1]:.4f}  dev {values[2]:.4f}  "
                      f"({rows[-1]['seconds']} s)", flush=True)
            if not args.quick:  # after every design
                save_rows(path, rows, SCORE_COLUMNS)
    by = {(r["design"], int(r["seed"])): r for r in rows if r["proxy"] == keys.get(int(r["seed"]))}
    missing = [f"{n} seed {s}" for n in designs for s in args.seeds if (n, s) not in by]
    if missing and missing_ok:
        return None
    if missing:
        raise SystemExit(f"error: {path}: no score for {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} "
                         "(run without --render to score them)")
    return {name: Scores(tuple(args.seeds), *(tuple(float(by[name, s][k]) for s in args.seeds)
                                              for k in ("heldout", "dev", "seconds", "score")))
            for name in designs}


TEACHER_COLUMNS = ("task", "teacher", "heldout", "dev", "score", "code", "machine")


def teacher_scores(args: argparse.Namespace, here: Path, task: str | None = None, extra: Sequence[str] = ()) -> Scores | None:
    """The task teacher itself scored as a design (no compression, no healing, no fine-tune of
    its own): its held-out metric, dev metric and score (the gold log-likelihood on the held-out
    rows), the same for every seed of ``args`` (it is trained once, not per seed). Stored in
    ``here/teacher.csv`` keyed by the teacher's cache key (a sibling lesson's row for the same
    teacher is copied); measured when missing (the teacher trained first if it is not cached);
    ``--render`` only reads (None when missing, or when the proxy has no teacher); ``--quick``
    stores nothing."""
    from arch_search.tasks.training import gold_log_likelihood, score

    path = here / "teacher.csv"
    cfg = config(args, 0, task=task, extra=extra)
    proxy = instantiate(cfg.proxy)
    if not hasattr(proxy, "task_teacher"):  # a proxy without a task teacher (the from-scratch fine-tune)
        return None
    key = proxy.task_teacher.key()
    mine = [] if args.quick else read_rows(path)
    stored = [*mine, *([] if args.quick else [r for p in sorted(here.parent.glob("*/teacher.csv")) if p != path
                                               for r in read_rows(p)])]
    row = next((r for r in stored if (r["task"], r["teacher"]) == (cfg.task.name, key)), None)
    if row is None and args.render:
        return None
    if row is None:
        data, metric = proxy.setup.data, proxy.setup.data.task.metric
        row = {"task": cfg.task.name, "teacher": key, "heldout": round(score(proxy.teacher, data.heldout, data.task)[metric], 5),
               "dev": round(score(proxy.teacher, data.dev, data.task)[metric], 5),
               "score": round(gold_log_likelihood(proxy.teacher, data.heldout, data.task), 5),
               "code": code_commit(), "machine": str(Env.current(cfg.proxy.threads))}
        print(f"teacher {cfg.task.name}: held-out {row['heldout']}  dev {row['dev']}  score {row['score']}", flush=True)
    if not args.quick and not args.render and row not in mine:  # --render writes no score file
        save_rows(path, [*mine, row], TEACHER_COLUMNS)
    n = len(args.seeds)
    return Scores(tuple(args.seeds), (float(row["heldout"]),) * n, (float(row["dev"]),) * n, (0.0,) * n,
                  (float(row["score"]),) * n)

"""What the lesson experiments (which_layers, group_count, shuffle, glue_tasks, samplers) share:
the lessons' proxy (the compressed proxy, ``COMPRESSED``) over several paired seeds with every
(design, seed) stored as it is scored (``stored_scores``: resumable, shared between lessons), the
paired noise, the minimum detectable effect and the verdict (``arch_search.stats``), one
interleaved latency measurement (``timed``), costs, and the writing of results.md / results.csv /
summary.json / a PNG.

The proxy and the latency protocol are *composed* from ``conf/run.yaml`` (the config of
``python -m arch_search run``) and instantiated with Hydra, so an experiment scores designs
exactly as ``run proxy=compressed`` does. Accuracy is measured at the proxy scale (the
checkpoint's dims), latency and FLOPs at the target scale (the design's own dims, BERT-base
here), as in the search (``../shared/DESIGN.md``, "Two scales").
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from arch_search import ArchSpec, build_model, count_cost
from arch_search.cache import atomic_path
from arch_search.measure.cost import Cost
from arch_search.measure.latency import Comparison, Env
from arch_search.tasks.training import ProxyDiverged
from arch_search.resources import conf_dir
from arch_search.study.fingerprint import scored_settings
from arch_search.stats import MDE_STANDARD_ERRORS, Noise, PairedDifference, paired_difference, paired_noise, paired_se
from arch_search.tables import csv_text, md_table
from arch_search.design.spec import PROJECTIONS, SHORT_NAMES as SHORT  # the lessons' names for them

if TYPE_CHECKING:
    import plotly.graph_objects as go

def _repo() -> Path:
    """The checkout the experiments run in: this package's (an editable install), else the
    working directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "experiments").is_dir() else Path.cwd()


REPO = _repo()
SHARED = Path(os.environ.get("ARCH_SEARCH_SHARED", REPO.parent / "shared"))
SEEDS = (0, 1, 2)
# The lessons' proxy (issue 23): the per-design compressed proxy (conf/proxy/compressed.yaml) at
# its default budget on the pretrained setup, one teacher and one held-out split (setup seed 0);
# ``seed`` moves only the per-design training, so every seed scores every design on the same
# batches and rows (common random numbers) and differences between designs are paired.
COMPRESSED = ("proxy_setup=pretrained", "proxy=compressed", "proxy_setup.seed=0")
# The from-scratch fine-tune (the run's default before the distilled supernet; seed SNR ~1): the
# proxy of the lessons' earlier results and of proxy_fidelity; its seed moves the held-out split too.
SCRATCH = ("proxy=finetune_scratch", "proxy_setup=scratch", "proxy_setup.seed={seed}")
# --quick: a smoke run of the whole script in seconds (nothing is written)
QUICK_OVERRIDES = {
    COMPRESSED: ("task=wnli", "proxy.teacher_steps=2", "proxy.calibration=8", "proxy.distill_steps=2", "proxy.steps=2",
                 "proxy.batch_size=8", "proxy.permute=false", "proxy.refit=false", "proxy_setup.heldout=60", "proxy_setup.max_len=16", "seq_len=16", "latency.warmup=0"),
    SCRATCH: ("proxy.steps=2", "proxy_setup.heldout=100", "proxy_setup.max_len=16",
              "proxy_setup.scale={hidden:64,layers:1,heads:4,intermediate:128}", "seq_len=16", "latency.warmup=0"),
}
QUICK_TARGET = {"hidden": 64, "layers": 2, "heads": 4, "intermediate": 256}  # tiny target dims to time


def parser(doc: str) -> argparse.ArgumentParser:
    """The command line every lesson shares (a script may add its own options)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="proxy seeds (run.yaml's `seed`)")
    ap.add_argument("--rounds", type=int, default=50, help="interleaved timed rounds per design (latency.rounds)")
    ap.add_argument("--data-dir", default=os.environ.get("GLUE_DIR", str(SHARED / "glue")), help="GLUE TSV folders")
    ap.add_argument("--cache-dir", default=str(REPO / ".cache" / "arch_search"), help="teachers, tokenizers")
    ap.add_argument("--proxy-threads", type=int, default=None,
                    help="training threads (proxy.threads; default: the proxy's). 1 keeps a shared machine's other "
                         "core free: 2 OpenMP threads beside another busy process stall at barriers")
    ap.add_argument("--render", action="store_true",
                    help="only write the report from the rows already stored (scores.csv, latency.csv): no training, no timing")
    ap.add_argument("--scores-only", action="store_true",
                    help="only score what scores.csv lacks (no timing, no report): a second core can score while the "
                         "first runs another lesson; a later plain run times on a quiet machine and writes the report")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny budget, 2 seeds, tiny target; writes nothing")
    return ap


def parse(ap: argparse.ArgumentParser) -> argparse.Namespace:
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.rounds = args.seeds[:2], 2  # two seeds: the paired noise needs them
    return args


def checkpoint() -> str:
    """The dense checkpoint the pretrained setup compresses: ARCH_SEARCH_CHECKPOINT, else ../shared's MiniLM."""
    return os.environ.get("ARCH_SEARCH_CHECKPOINT", str(SHARED / "models" / "all-MiniLM-L6-v2"))


def config(args: argparse.Namespace, seed: int = 0, proxy: tuple[str, ...] = COMPRESSED, task: str | None = None,
           extra: Sequence[str] = (), budget: int = 1) -> DictConfig:
    """``conf/run.yaml`` as ``python -m arch_search run seed=<seed> <proxy> ~confirm`` composes
    it (``proxy``: ``COMPRESSED``, the lessons' proxy, or ``SCRATCH``), on ``task`` (default:
    run.yaml's, SST-2; under --quick WNLI) with the ``extra`` overrides; ``budget``: that many
    times the compressed proxy's healing budget (its distillation and fine-tune steps, after
    every override; the teacher stays the same)."""
    overrides = [
        f"seed={seed}", *(o.format(seed=seed) for o in proxy), "~confirm",
        f"task.data_dir={args.data_dir}", f"cache_dir={args.cache_dir}", f"proxy_setup.checkpoint={checkpoint()}",
        f"latency.rounds={args.rounds}", "proxy.progress=false", *([f"task={task}"] if task else []), *extra,
    ]
    if args.proxy_threads is not None:
        overrides.append(f"proxy.threads={args.proxy_threads}")
    if args.quick:
        overrides += [o for o in QUICK_OVERRIDES[proxy] if not (task and o.startswith("task="))]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="run", overrides=overrides)
    if budget != 1:
        if proxy != COMPRESSED:
            raise ValueError("budget multiplies the compressed proxy's healing steps: use proxy=COMPRESSED")
        cfg.proxy.distill_steps, cfg.proxy.steps = budget * cfg.proxy.distill_steps, budget * cfg.proxy.steps
    return cfg


def target(spec: ArchSpec, args: argparse.Namespace) -> ArchSpec:
    """The design at the scale it is timed and costed at (tiny under --quick)."""
    return spec.with_scale(**QUICK_TARGET) if args.quick else spec


# ---- accuracy: the lessons' proxy, several seeds, paired -------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Proxy results of one design, one value per seed (fractions; NaN where it diverged).
    ``heldout``: the task metric on the held-out train rows (SST-2 accuracy); ``dev``: on dev;
    ``score``: what the search maximises (the compressed proxy: mean gold log-likelihood on the
    held-out rows; the scratch proxy: the held-out metric)."""

    seeds: tuple[int, ...]
    heldout: tuple[float, ...]
    dev: tuple[float, ...]
    seconds: tuple[float, ...]
    score: tuple[float, ...] = ()

    def points(self, which: str = "heldout") -> tuple[float, ...]:
        """``which`` per seed, x100 (accuracy in points; a log-likelihood in hundredths); NaN per
        seed for a ``score`` the proxy did not give."""
        values = getattr(self, which)
        return tuple(100 * v for v in values) if values else (math.nan,) * len(self.seeds)

    def stats(self, which: str = "heldout") -> tuple[float, float, float]:
        """(mean, min, max) over seeds, in percent; all NaN when a seed diverged (NaN), wherever it is."""
        values = self.points(which)
        if any(math.isnan(v) for v in values):
            return math.nan, math.nan, math.nan
        return statistics.fmean(values), min(values), max(values)

    def text(self, which: str = "heldout") -> str:
        mean, lo, hi = self.stats(which)
        return f"{mean:.1f} ({lo:.1f}-{hi:.1f})" if len(self.seeds) > 1 else f"{mean:.1f}"


METRICS = ("heldout", "dev", "score")  # the verdicts are on ``heldout``: accuracy, the highest SNR of the three
METRIC_NAMES = {"heldout": "held-out accuracy", "dev": "dev accuracy", "score": "score (log-likelihood x100)"}


def noise(scores: Mapping[str, Scores], which: str = "heldout") -> Noise | None:
    """The paired seed noise of ``which`` over every design (``paired_noise``), in points."""
    return paired_noise({name: s.points(which) for name, s in scores.items()},
                        f"the residual of design + seed over {len(scores)} designs x {len(next(iter(scores.values())).seeds)} seeds")


def mde(scores: Mapping[str, Scores], which: str = "heldout") -> float:
    """The minimum detectable effect of a paired difference between two designs, in points:
    ``MDE_STANDARD_ERRORS`` standard errors at the lesson's paired noise (``noise``)."""
    return MDE_STANDARD_ERRORS * paired_se(noise(scores, which), len(next(iter(scores.values())).seeds))


def compare(scores: Mapping[str, Scores], a: str, b: str, which: str = "heldout",
            noise_: Noise | None = None) -> PairedDifference:
    """``a - b`` in points, paired by seed, with the lesson's pooled noise (``noise``)."""
    pooled = noise_ or noise(scores, which)
    if pooled is None:
        raise ValueError("a paired difference needs 2 seeds or more")
    return paired_difference(scores[a].points(which), scores[b].points(which), pooled)


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


SCORE_COLUMNS = ("design", "spec", "seed", "score", "heldout", "dev", "seconds", "proxy", "code", "machine", "from")


def proxy_key(cfg: DictConfig) -> str:
    """12 hex digits naming what makes two scores comparable: the task and the proxy's and its
    setup's scored settings (``scored_settings``, as a study's fingerprint has them)."""
    blob = json.dumps({"task": cfg.task.name, "proxy": scored_settings(cfg.proxy, kind=cfg.proxy._target_),
                       "setup": scored_settings(cfg.proxy_setup)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def read_rows(path: Path) -> list[dict]:
    """The rows of a CSV (scores.csv, latency.csv; none when absent)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [dict(r) for r in csv.DictReader(f)]


def code_commit() -> str:
    """The commit the scores come from (``+`` when the tree has uncommitted changes)."""
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + ("+" if git("status", "--porcelain", "--untracked-files=no", "arch_search", "conf") else "")


def stored_scores(designs: Mapping[str, ArchSpec], args: argparse.Namespace, here: Path, task: str | None = None,
                  extra: Sequence[str] = (), budget: int = 1, missing_ok: bool = False) -> dict[str, Scores] | None:
    """Every design x seed with the lessons' proxy (``COMPRESSED``), resumable: ``here/scores.csv``
    gets a row after each design, and a (design, seed) already there is not scored again. A row
    of another lesson (``here/../*/scores.csv``) for the same design, seed and proxy is
    copied instead of scored (its folder in ``from``). ``--render`` scores nothing; ``--quick``
    stores nothing. A stored design whose spec differs from ``designs``' is an error. ``task``,
    ``extra`` and ``budget``: as ``config`` takes them (glue_tasks scores each task with its own
    held-out rows; another budget's rows go to ``scores_<budget>x.csv``). A (design, seed) still missing (under
    ``--render``) is an error, or None with ``missing_ok``."""
    name = "scores.csv" if budget == 1 else f"scores_{budget}x.csv"  # another budget's rows apart: readers of scores.csv see 1x only
    path = here / name
    rows = [] if args.quick else read_rows(path)
    for r in rows:
        if r["design"] in designs and r["spec"] != designs[r["design"]].summary():
            raise SystemExit(f"error: {path}: {r['design']!r} was scored as {r['spec']}, not "
                             f"{designs[r['design']].summary()}; move the file away to score it anew")
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
            same = next((r for r in siblings if (r["spec"], int(r["seed"]), r["proxy"]) == (spec.summary(), seed, key)), None)
            if same is not None:
                rows.append({**same, "design": name})
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
                rows.append({"design": name, "spec": spec.summary(), "seed": seed,
                             **{k: round(v, 5) for k, v in zip(("score", "heldout", "dev"), values)},
                             "seconds": round(time.perf_counter() - t, 1), "proxy": key, "code": code,
                             "machine": machine, "from": ""})
                print(f"seed {seed}  {name:<34} score {values[0]:.4f}  held-out {values[1]:.4f}  dev {values[2]:.4f}  "
                      f"({rows[-1]['seconds']} s)", flush=True)
            if not args.quick:  # after every design, whole or not at all (a kill mid-write keeps the last file)
                with atomic_path(path) as tmp:
                    tmp.write_text(csv_text([{k: r.get(k, "") for k in SCORE_COLUMNS} for r in rows]))
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


# ---- the task teacher as a design: the dense model the user already has (issue 35) -------------------

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
        with atomic_path(path) as tmp:
            tmp.write_text(csv_text([{k: r[k] for k in TEACHER_COLUMNS} for r in [*mine, row]]))
    n = len(args.seeds)
    return Scores(tuple(args.seeds), (float(row["heldout"]),) * n, (float(row["dev"]),) * n, (0.0,) * n,
                  (float(row["score"]),) * n)


def dense_as_teacher(scores: Mapping[str, Scores], dense: str, teacher: Scores | None,
                     verdict: Callable[[Mapping[str, Scores]], str], which: str = "heldout") -> dict:
    """What the healed dense design costs, and whether a verdict changes when dense is the
    teacher itself: ``scores`` with ``dense``'s row moved to ``teacher``'s level, each seed keeping
    its deviation from dense's mean, so the paired noise (the residual of design + seed, blind to a
    row's level) and every other design stay as they were: only dense's value changes."""
    if teacher is None:
        return {"verdict": "not measured"}
    healed = scores[dense].stats(which)[0]
    row, moved = scores[dense], {}
    for field in ("heldout", "dev", "score"):
        values, level = getattr(row, field), getattr(teacher, field)
        moved[field] = tuple(v - statistics.fmean(values) + level[0] for v in values) if values and level else values
    word = verdict({**scores, dense: Scores(row.seeds, moved["heldout"], moved["dev"], row.seconds, moved["score"])})
    return {"verdict": word, "teacher_points": round(teacher.stats(which)[0], 2),
            "healed_dense_points": round(healed, 2), "healed_minus_teacher_points": round(healed - teacher.stats(which)[0], 2),
            "metric": METRIC_NAMES[which],
            "teacher_dev_points": round(teacher.stats("dev")[0], 2), "healed_dense_dev_points": round(scores[dense].stats("dev")[0], 2)}


def teacher_lines(check: Mapping, verdict: str, dense: str = "dense") -> list[str]:
    """The report's section on ``dense_as_teacher``'s result beside the lesson's ``verdict``."""
    head = ["## The dense reference: the teacher itself", ""]
    if check["verdict"] == "not measured":
        return [*head, "The teacher's own metrics are not measured yet: run the command without `--render`.", ""]
    holds = "holds" if check["verdict"] == verdict else "changes"
    return [*head,
            f"The compressed proxy heals and fine-tunes every design, `{dense}` too (it starts as the task teacher and is "
            f"fine-tuned like the others). The teacher itself, which a user already has: {check['metric']} "
            f"{check['teacher_points']:.2f} (dev {check['teacher_dev_points']:.2f}); the healed `{dense}`: "
            f"{check['healed_dense_points']:.2f} (dev {check['healed_dense_dev_points']:.2f}): what the recipe does to a "
            f"design that needed no healing, healed minus teacher, **{check['healed_minus_teacher_points']:+.2f} points**.", "",
            f"With `{dense}` scored as the teacher itself (the same value for every seed): **{check['verdict']}** "
            f"(the lesson's verdict, {verdict}, {holds}).", ""]


# ---- the verdict at 4x the healing budget (issue 35) -----------------------------------------------

BUDGET_CHECK = 4  # times the default healing budget a verdict is checked at
BUDGET_CHECK_SEEDS = 2  # with the first two seeds, paired


def budget_args(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the seeds a budget check uses (the first ``BUDGET_CHECK_SEEDS``)."""
    return argparse.Namespace(**{**vars(args), "seeds": list(args.seeds[:BUDGET_CHECK_SEEDS])})


def at_budget(designs: Mapping[str, ArchSpec], args: argparse.Namespace, here: Path,
              verdict: Callable[[Mapping[str, Scores]], tuple[str, float]], task: str | None = None,
              extra: Sequence[str] = (), budget: int = BUDGET_CHECK, which: str = "heldout") -> dict:
    """Does a verdict hold at ``budget`` x the healing budget? ``designs`` (those the verdict
    rests on) scored with the first ``BUDGET_CHECK_SEEDS`` seeds at that budget (stored in
    scores.csv under their own proxy key, resumable), ``verdict(scores) -> (word, MDE in
    points)`` on them, and beside it the same rule on the same designs and seeds at the default
    budget (the like-for-like comparison: fewer designs and seeds than the lesson's own verdict).
    The rows are stored in ``scores_<budget>x.csv`` beside scores.csv.
    ``which``: the metric the verdict is on (its noise and means are reported). Under ``--render``
    with rows missing: ``{"verdict": "not scored"}``."""
    few = budget_args(args)
    kw = {"task": task, "extra": extra, "missing_ok": True}
    default = stored_scores(designs, few, here, **kw)
    checked = stored_scores(designs, few, here, budget=budget, **kw)
    cfg = config(few, task=task, extra=extra, budget=budget)
    out = {"budget": budget, "distill_steps": cfg.proxy.distill_steps, "steps": cfg.proxy.steps, "seeds": few.seeds,
           "designs": list(designs), "metric": METRIC_NAMES[which]}
    if checked is None or default is None:
        return {"verdict": "not scored", **out}
    (word, mde_), (word_1x, mde_1x) = verdict(checked), verdict(default)
    n = noise(checked, which)
    return {"verdict": word, "mde_points": round(mde_, 2), "noise_sd_points": round(n.sd, 3), "noise_dof": n.dof, **out,
            "same_designs_at_1x": {"verdict": word_1x, "mde_points": round(mde_1x, 2)},
            "points": {name: round(s.stats(which)[0], 2) for name, s in checked.items()},
            "minutes": round(sum(sum(s.seconds) for s in checked.values()) / 60, 1)}


def budget_lines(check: Mapping, verdict: str) -> list[str]:
    """The report's section on ``at_budget``'s result beside the lesson's ``verdict``."""
    head = [f"## The verdict at {check['budget']}x the healing budget", "",
            f"The designs the verdict rests on ({', '.join(check['designs'])}) scored again with {check['distill_steps']} "
            f"distillation and {check['steps']} fine-tune steps ({check['budget']}x the default; the same teacher), seeds "
            f"{', '.join(map(str, check['seeds']))}, paired."]
    if check["verdict"] == "not scored":
        return [*head, "", "Not scored yet: run the command without `--render`.", ""]
    same = check["same_designs_at_1x"]
    holds = "holds" if check["verdict"] == verdict else "changes"
    return [*head, "", f"Noise: paired seed sd {check['noise_sd_points']:.2f} points ({check['noise_dof']} dof).", "",
            f"- at {check['budget']}x: **{check['verdict']}** (MDE {check['mde_points']:.2f} points)",
            f"- the same designs and seeds at the default budget: {same['verdict']} (MDE {same['mde_points']:.2f})",
            f"- the lesson's verdict (all designs, every seed, default budget): {verdict}: it **{holds}** at "
            f"{check['budget']}x.", "",
            *md_table([{"design": n, "points": f"{v:.2f}"} for n, v in check["points"].items()],
                      {"design": "design", "points": f"{check['metric']} at {check['budget']}x (mean)"}), ""]


# ---- latency and costs at the target scale -------------------------------------------------------


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
        with atomic_path(path) as tmp:
            tmp.write_text(csv_text(list(out.values())))
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


# ---- running a command ---------------------------------------------------------------------------


def build_lut(overrides: Sequence[str]) -> None:
    """The machine's latency look-up table for ``run.yaml`` composed with ``overrides`` (which
    set ``search/latency_mode=lut``): timed once, before a set of runs that then only read it."""
    from arch_search.design.space import SearchSpace

    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="run", overrides=list(overrides))
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


def relative(text: str) -> str:
    """``text`` naming no path of this machine: the checkout's paths relative to the repository
    root, ``../shared``'s as ``../shared`` (what a committed file may name)."""
    for path, name in ((SHARED.resolve(), "../shared"), (SHARED, "../shared"), (REPO, ".")):  # a linked ../shared: both spellings
        text = text.replace(f"{path}/", "" if name == "." else f"{name}/").replace(str(path), name)
    return text


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


# ---- writing -------------------------------------------------------------------------------------


def show(files: Mapping[str, str]) -> None:
    """What a smoke run (--quick) would have written, printed instead: each file as a line
    ``--- <name> ---`` and then its text (``tests/test_experiments.py`` reads them back)."""
    for name, body in files.items():
        print(f"--- {name} ---\n{body}", flush=True)


def write_results(here: Path, summary: Mapping, report: Sequence[str], quick: bool = False) -> bool:
    """``summary.json`` and ``results.md`` beside the experiment; a smoke run (``quick``)
    prints them instead (``show``) and writes nothing. True when written."""
    if quick:
        show({"summary.json": json.dumps(summary, indent=1) + "\n", "results.md": "\n".join(report) + "\n"})
        return False
    (here / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (here / "results.md").write_text("\n".join(report) + "\n")
    return True



def command() -> str:
    """The command line that computes the results, from the repository root: the one running,
    without ``--render`` (which only writes the report of rows already computed)."""
    args = [a for a in sys.argv[1:] if a != "--render"]
    return " ".join(["python", str(Path(sys.argv[0]).resolve().relative_to(REPO)), *args])


def machine_of(summary: Path, scored: int) -> str:
    """The machine that computed a results file's rows: this one, or, when rows were kept from
    an earlier invocation (``summary`` names its machine) and ``scored`` were added here, both."""
    from arch_search.measure.latency import Env

    here = str(Env.current(2))
    before = json.loads(summary.read_text()).get("machine") if summary.is_file() else None
    if not before or before == here:
        return here
    return before if scored == 0 else f"{before} (earlier rows) + {here} ({scored} rows)"


def power_lines(scores: Mapping[str, Scores]) -> list[str]:
    """The lesson's noise and power per metric: the paired seed sd, its dof, and the MDE of a
    paired difference between two designs."""
    lines = []
    for which in METRICS:
        n = noise(scores, which)
        if n is not None:
            lines.append(f"- {METRIC_NAMES[which]}: paired seed sd {n.sd:.2f} points ({n.dof} dof, {n.source}); "
                         f"MDE of a difference between two designs {mde(scores, which):.2f} points")
    return lines


def header(title: str, args: argparse.Namespace, latency: Mapping[str, Mapping], designs: Mapping[str, ArchSpec],
           rows_: Sequence[Mapping], scores: Mapping[str, Scores], here: Path) -> list[str]:
    """Title, the command, the machines, the proxy and latency set-ups as composed, the noise
    and power, and the table of designs."""
    cfg = config(args)
    p, ps, lat = cfg.proxy, cfg.proxy_setup, cfg.latency
    scale = ps.scale
    dims = target(next(iter(designs.values())), args)
    stored = [r for r in read_rows(here / "scores.csv") if r["design"] in designs and int(r["seed"]) in args.seeds]
    machines = sorted({r["machine"] for r in stored}) or [str(Env.current(2))]
    codes = sorted({r["code"] for r in stored})
    minutes = sum(float(r["seconds"]) for r in stored) / 60
    return [
        f"# {title}", "",
        f"Command: `{command()}` (from the repository root; GLUE from `GLUE_DIR`, default `../shared/glue`; "
        "`--render` rewrites this report from scores.csv and latency.csv)", "",
        f"Machine, latency: {next(iter(latency.values()))['machine']}. Machine, scores: {'; '.join(machines)} "
        f"(code {', '.join(codes) or 'this checkout'}; {minutes:.0f} min of scoring in scores.csv).", "",
        "**Accuracy** (proxy scale): the compressed proxy (`proxy_setup=pretrained proxy=compressed`, "
        "conf/proxy/compressed.yaml, its default budget): the dense checkpoint "
        f"`{Path(ps.checkpoint).name}` fine-tuned on {cfg.task.name} for {p.teacher_steps} steps (the teacher, trained once "
        "and cached) is "
        f"compressed into each design at hidden {scale.hidden} / {scale.layers} layers / FFN {scale.intermediate} "
        f"(channel permutation, least-squares refit on {p.calibration} rows, {p.distill_steps} steps of hidden-state "
        f"distillation), then fine-tuned {p.steps} steps of batch {p.batch_size} with the teacher's logits "
        f"(weight {p.kd_weight}), max length {ps.max_len}. **held-out** = accuracy on {ps.heldout} train rows held "
        "out of all training (the verdicts' metric); **dev** = the task's dev split; **score** = mean gold "
        "log-likelihood on the held-out rows x100 (what the search maximises). Seeds "
        f"{', '.join(map(str, args.seeds))}: one teacher and held-out split (setup seed 0); the seed moves the "
        "per-design training only, so every design sees the same batches per seed (common random numbers) and "
        "differences are paired by seed.", "",
        "**Power**: the noise of a paired difference is the residual of design + seed over all designs here; "
        "MDE = 2 standard errors of the paired difference. A verdict is *reproduced* when the paper's effect "
        "exceeds the MDE, *contradicted* when the opposite effect does, else *not reproduced*.", "",
        *power_lines(scores), "",
        f"**Latency** (target scale, {dims.hidden} hidden x {dims.layers} layers, FFN {dims.intermediate}): "
        f"batch {cfg.batch}, seq {cfg.seq_len}, {lat.threads} thread(s), `torch.inference_mode`, {lat.warmup} "
        f"warm-up passes, then {lat.rounds} rounds; all {len(designs)} designs interleaved in one `compare_latency` "
        "call, before any training. Speedup = median(first design) / median(design). FLOPs = 2 x MACs of the "
        "encoder (`count_cost`, fvcore).", "",
        "## Designs", "", *design_table(rows_, scores), "",
    ]


DESIGN_COLUMNS = {
    "design": "design", "groups": "groups (q k v post in out)", "heldout": "held-out % (seeds)",
    "dev": "dev % (seeds)", "score": "score x100 (seeds)", "median_ms": "median ms", "speedup": "speedup",
    "gflops": "GFLOPs", "params_m": "params M",
}


def design_table(rows_: Sequence[Mapping], scores: Mapping[str, Scores]) -> list[str]:
    """The per-design table every lesson prints first."""
    shown = [{**r, **{w: scores[r["design"]].text(w) for w in METRICS}, "speedup": f"{r['speedup']:.2f}x"} for r in rows_]
    return md_table(shown, DESIGN_COLUMNS)


def errorbars(x: Sequence[float], stats: Sequence[tuple[float, float, float]], name: str,
              text: Sequence[str] | None = None, **kw) -> go.Scatter:
    """A scatter trace at (x, mean) with asymmetric error bars to [min, max] (``stats``)."""
    import plotly.graph_objects as go  # here: only drawing needs plotly (the GPU machine runs lessons without it)

    y = [m for m, _, _ in stats]
    return go.Scatter(
        x=list(x), y=y, name=name, text=list(text) if text else None,
        mode="markers+text" if text else "markers+lines", textposition="top center",
        error_y=dict(type="data", symmetric=False, array=[hi - m for m, _, hi in stats],
                     arrayminus=[m - lo for m, lo, _ in stats]), **kw,
    )


def write(here: Path, args: argparse.Namespace, rows_: Sequence[Mapping], report: Sequence[str],
          fig: go.Figure, png: str, summary: Mapping | None = None, extra: Mapping[str, str] | None = None) -> None:
    """results.md, results.csv (``rows_``), summary.json (``summary``), ``png`` and ``extra``
    files ({name: text}) beside the script; under --quick everything is printed instead and
    nothing is written."""
    files = {"results.md": "\n".join(report) + "\n", "results.csv": csv_text(rows_), **(extra or {})}
    if summary is not None:
        files["summary.json"] = json.dumps(summary, indent=1) + "\n"
    if args.quick:
        show(files)
        print(f"--- {png}: {len(fig.data)} traces (not written under --quick) ---")
        return
    for name, body in files.items():
        (here / name).write_text(body)
    fig.write_image(here / png, width=1100, height=600)  # plotly -> kaleido -> headless Chromium
    print(f"wrote {', '.join(files)} and {png} in {here}")


def summary(verdict: str, mde: float, args: argparse.Namespace, scores: Mapping[str, Scores], **more) -> dict:
    """A lesson's summary.json: its verdict, the MDE behind it (points), the seeds, the proxy,
    the noise per metric, and ``more``."""
    cfg = config(args)
    pooled = {w: noise(scores, w) for w in METRICS}
    return {"verdict": verdict, "mde_points": round(mde, 2), "metric": METRIC_NAMES["heldout"], "seeds": list(args.seeds),
            "proxy": f"{cfg.task.name}, proxy_setup=pretrained proxy=compressed ({proxy_key(cfg)})",
            "noise_sd_points": {w: round(n.sd, 3) for w, n in pooled.items() if n is not None},
            "noise_dof": next((n.dof for n in pooled.values() if n is not None), None), **more}


__all__ = ["BUDGET_CHECK", "COMPRESSED", "at_budget", "budget_lines", "dense_as_teacher", "teacher_lines", "teacher_scores", "PROJECTIONS", "SCRATCH", "SHORT", "Scores", "command", "compare", "config", "costs", "csv_text",
           "design_table", "errorbars", "evaluate", "header", "md_table", "mde", "measure", "noise",
           "parse", "parser", "read_rows", "rows", "score_designs", "show", "stored_scores",
           "summary", "target", "timed", "write"]

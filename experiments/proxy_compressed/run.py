"""Does the compressed proxy (proxy=compressed) tell designs apart? Its gap, noise and power.

Twelve designs of ``space=squeezebert`` (dense, SqueezeBERT, uniform G=2/4/8/16, FFN-only,
attention-only, post-attention-only and mixed ones) are scored by ``CompressedProxy`` at its
default budget (conf/proxy/compressed.yaml, composed as ``run proxy_setup=pretrained
proxy=compressed`` composes it, a variant's overrides on top: ``proxy_config``) on SST-2, with
every proxy seed in the plan:
one teacher, one held-out split and one set of calibration rows (the setup's seed 0); the
seed changes the per-design training (head init, batch order, dropout), so the spread over
seeds is the proxy's own noise, and every seed scores every design on the same batches
(common random numbers: differences between designs are paired).

Reported: per design the score (mean gold log-likelihood on the 2,000 held-out sentences),
held-out and dev metric (accuracy on SST-2), mean and standard deviation over seeds; the gap dense minus
SqueezeBERT pattern (dev, points); the signal-to-noise ratio (standard deviation of
the design means / mean within-design standard deviation); seconds per design.

    python experiments/proxy_compressed/run.py               # results.md, results.csv, summary.json, PNG
    python experiments/proxy_compressed/run.py --quick       # smoke run (CI): WNLI, tiny budget, writes nothing

Rows already in results.csv (same design and seed) are kept and not scored again, so an
interrupted run resumes.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path

import plotly.graph_objects as go
from hydra.utils import instantiate
from omegaconf import DictConfig
from plotly.subplots import make_subplots

from arch_search import ArchSpec
from arch_search.design.spec import PROJECTIONS
from arch_search.measure.latency import Env
from arch_search.proxies import ProxySetup
from arch_search.tasks.glue import get_task
from experiments import toolkit
from experiments.toolkit.ranking import NAMED, gap, means, snr, table_of, tau
from experiments.toolkit.scores import METRIC_WORDS

HERE = Path(__file__).resolve().parent
ALL = tuple(NAMED)  # the named designs (groups of q, k, v, post-attention, FFN in, FFN out), every layer alike
SECOND_TASK_DESIGNS = ("dense", "post-only-4", "ffn-only-4", "all-2", "squeezebert", "all-16")  # 6 of the 12: time
BASE = ArchSpec.preset("bert_base")
QUICK = ("proxy.teacher_steps=2", "proxy.calibration=8", "proxy.distill_steps=2", "proxy.steps=2", "proxy.batch_size=8",
         "proxy.threads=1", "proxy_setup.heldout=60", "proxy_setup.max_len=24")  # --quick: tiny budgets
# What the command runs, in this order: (task, variant, designs, proxy seeds). Rows already in
# results.csv are kept, so an interrupted run resumes where it stopped.
PLAN = (
    ("sst2", "default", ALL, (0, 1, 2)),                  # gap, SNR, seconds
    ("sst2", "budget-4x", ALL, (0,)),                     # the rank-fidelity reference
    ("sst2", "no-permute", ("squeezebert",), (0, 1, 2)),  # ablations: one healing step removed
    ("sst2", "no-refit", ("squeezebert",), (0, 1, 2)),
    ("sst2", "no-distill", ("squeezebert",), (0, 1, 2)),  # = the curve at 0 distillation steps
    ("sst2", "distill-800", ("squeezebert",), (0, 1, 2)),  # the curve at 4x the distillation
    ("mrpc", "default", SECOND_TASK_DESIGNS, (0,)),       # a second task (F1)
)
QUICK_PLAN = (("wnli", "default", ("dense", "squeezebert"), (0, 1)), ("wnli", "budget-4x", ("dense", "squeezebert"), (0,)),
              ("wnli", "no-refit", ("squeezebert",), (0,)), ("wnli", "distill-8", ("squeezebert",), (0,)))


def variant(name: str) -> tuple[list[str], int]:
    """A variant's overrides of conf/proxy/compressed.yaml and its healing-budget multiplier:
    ``default`` (none), ``budget-4x`` (4x the distillation and fine-tune steps),
    ``no-permute``/``no-refit``/``no-distill`` (one healing step removed) or ``distill-N`` (N
    distillation steps)."""
    if name in ("default", "budget-4x"):
        return [], 4 if name == "budget-4x" else 1
    if name in ("no-permute", "no-refit"):
        return [f"proxy.{name[3:]}=false"], 1
    if name == "no-distill":
        return ["proxy.distill_steps=0"], 1
    if name.startswith("distill-"):
        return [f"proxy.distill_steps={int(name.split('-')[1])}"], 1
    raise ValueError(f"unknown variant {name!r}")


def proxy_config(task: str, var: str, seed: int, cache_dir: str, quick: bool = False) -> DictConfig:
    """``conf/run.yaml`` composed for one part of the plan, as ``run proxy_setup=pretrained
    proxy=compressed seed=<seed> task=<task>`` composes it (setup seed 0), with --quick's budgets
    and then the variant's overrides; ``instantiate(cfg.proxy)`` builds its proxy."""
    overrides, budget = variant(var)
    return toolkit.proxy_run(toolkit.COMPRESSED, seed, cache_dir, task=task, extra=[*(QUICK if quick else ()), *overrides],
                             budget=budget)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="TASK:VARIANT", help="run only these parts of the plan (e.g. sst2:budget-4x)")
    ap.add_argument("--cache-dir", default=".cache/arch_search", help="where the teachers are cached")
    ap.add_argument("--quick", action="store_true", help="WNLI, 2 designs, tiny budget; prints, writes nothing")
    args = ap.parse_args()
    plan = QUICK_PLAN if args.quick else [p for p in PLAN if not args.only or f"{p[0]}:{p[1]}" in args.only]
    path = HERE / "results.csv"
    rows = [] if args.quick else [
        {"task": "sst2", "variant": "default", **r} for r in toolkit.read_rows(path)]  # older rows: sst2, default
    rows = [{k: r[k] for k in COLUMNS} for r in rows]
    done = {(r["task"], r["variant"], r["design"], int(r["seed"])) for r in rows}
    t0 = time.perf_counter()
    teacher_s: dict[str, float] = {}
    setups: dict[str, ProxySetup] = {}  # one a task (its data, checkpoint and teacher), shared by its variants
    scored = 0  # rows scored by this invocation
    for task, var, designs, seeds in plan:
        for seed in seeds:
            todo = [d for d in designs if (task, var, d, seed) not in done]
            if not todo:
                continue
            cfg = proxy_config(task, var, seed, args.cache_dir, args.quick)
            if task not in setups:
                setups[task] = instantiate(cfg.proxy_setup)
            setup = setups[task]
            proxy = instantiate(cfg.proxy, setup=setup)
            if task not in teacher_s:
                t = time.perf_counter()
                proxy.teacher  # trained once per task (or loaded from the cache), timed apart
                teacher_s[task] = time.perf_counter() - t
            metric = setup.data.task.metric
            for name in todo:
                spec = BASE.replace(groups=dict(zip(PROJECTIONS, NAMED[name])))
                t = time.perf_counter()
                r = proxy.evaluate(spec)
                rows.append({"task": task, "variant": var, "design": name, "seed": seed, "score": round(r.score, 5),
                             "heldout_metric": round(r.details["heldout"][metric], 5), "dev_metric": round(r.dev[metric], 5),
                             "seconds": round(time.perf_counter() - t, 1)})
                print(f"{task} {var:<11} {name:<18} seed {seed}: score {r.score:.4f}, held-out {metric} "
                      f"{rows[-1]['heldout_metric']}, dev {rows[-1]['dev_metric']}, {rows[-1]['seconds']} s", flush=True)
                scored += 1
                if not args.quick:  # after every design: an interrupted run resumes
                    toolkit.save_rows(path, rows)
    machine = str(Env.current(2)) if args.quick else toolkit.machine_of(HERE / "summary.json", scored)
    if not args.quick and (HERE / "summary.json").is_file():  # teachers this invocation did not need
        teacher_s = json.loads((HERE / "summary.json").read_text()).get("teacher_seconds", {}) | teacher_s
    summary, report, fig = analyse(rows, teacher_s, time.perf_counter() - t0, machine, quick=args.quick)
    if not toolkit.write_results(HERE, summary, report, args.quick):
        return
    fig.write_image(HERE / "proxy_compressed.png", width=1300, height=600)
    print(f"wrote results.md, results.csv, summary.json and proxy_compressed.png in {HERE}")


COLUMNS = ("task", "variant", "design", "seed", "score", "heldout_metric", "dev_metric", "seconds")


KEYS = ("score", "heldout_metric", "dev_metric", "seconds")  # the columns a design's table holds


def old_references() -> dict[str, dict[str, float]]:
    """Earlier proxies' numbers for the same grouping patterns, from their committed results:
    proxy_fidelity's from-scratch reference (3x the scratch proxy's budget) and proxy_supernet's
    pretrained-inheritance fine-tune (400 steps)."""
    by_groups = {v: k for k, v in NAMED.items()}
    out: dict[str, dict[str, float]] = {}
    fid = HERE.parent / "proxy_fidelity" / "results.csv"
    if fid.is_file():
        for r in csv.DictReader(open(fid)):
            g = tuple(int(x.lstrip("qkvpostinu")) for x in r["groups"].split())
            if g in by_groups:
                out.setdefault("scratch reference, held-out", {})[by_groups[g]] = float(r["long_heldout"])
                out.setdefault("scratch reference, dev", {})[by_groups[g]] = float(r["long_dev"])
    sup = HERE.parent / "proxy_supernet" / "plain" / "designs.csv"  # the plain supernet experiment (issue 3)
    if sup.is_file():
        for r in csv.DictReader(open(sup)):
            g = tuple(int(x) for x in r["groups"].split(","))
            if g in by_groups and r["finetune_heldout"]:
                out.setdefault("pretrained inheritance, held-out", {})[by_groups[g]] = float(r["finetune_heldout"])
                out.setdefault("pretrained inheritance, dev", {})[by_groups[g]] = float(r["finetune_dev"])
    return out


def fmt(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def analyse(rows: list[dict], teacher_s: dict[str, float], seconds: float, machine: str, quick: bool = False) -> tuple[dict, list[str], go.Figure]:
    """summary.json, the Markdown report and the figure, from the rows (task x variant x design x seed)."""
    r2 = lambda x: None if x is None else round(x, 2)  # noqa: E731
    task = "wnli" if quick else "sst2"
    settings = toolkit.proxy_settings("compressed")
    main_t, ref_t = (table_of(rows, NAMED, KEYS, task=task, variant=v) for v in ("default", "budget-4x"))
    seeds = sorted({int(r["seed"]) for r in rows if (r["task"], r["variant"]) == (task, "default")})
    mean = {key: means(main_t, key) for key in ("score", "dev_metric", "heldout_metric")}
    per_seed = {s: {r["design"]: float(r["score"]) for r in rows if (r["task"], r["variant"], int(r["seed"])) == (task, "default", s)}
                for s in seeds}
    seed_taus = [tau(per_seed[a], per_seed[b], interval=False)["tau"] for i, a in enumerate(seeds) for b in seeds[i + 1:]]
    seed_taus = [t for t in seed_taus if t is not None]
    by_ref = tau(mean["score"], means(ref_t, "score"), interval=False)
    tau_ref, n_ref = by_ref["tau"], by_ref["designs"]
    ref_dev = means(ref_t, "dev_metric")
    tau_ref_dev = tau(mean["dev_metric"], ref_dev, interval=False)["tau"]
    # Which number should the search maximise? Each candidate's noise and how well it predicts the
    # 4x reference's dev metric (the generalisation the search is after).
    choice = {key: {"snr": r2(snr(main_t, key)), "kendall_tau_vs_reference_dev": tau(mean[key], ref_dev, interval=False)["tau"]}
              for key in ("score", "heldout_metric", "dev_metric")}
    old = {name: tau(mean["score"], ref, interval=False) for name, ref in ({} if quick else old_references()).items()}
    g, g_ref = gap(main_t), gap(ref_t)
    ablation = {var: gap(table_of(rows, NAMED, KEYS, task=task, variant=var), main_t) for var in ("default", "no-permute", "no-refit", "no-distill")}
    curve_vars = sorted({r["variant"] for r in rows if r["task"] == task and r["variant"].startswith("distill-")} | {"no-distill", "default"},
                        key=lambda v: 0 if v == "no-distill" else settings["distill_steps"] if v == "default" else int(v.split("-")[1]))
    steps_of = {v: 0 if v == "no-distill" else settings["distill_steps"] if v == "default" else int(v.split("-")[1]) for v in curve_vars}
    curve = {v: gap(table_of(rows, NAMED, KEYS, task=task, variant=v), main_t) for v in curve_vars}
    curve = {v: c for v, c in curve.items() if c is not None}
    grouped_s = [float(r["seconds"]) for r in rows if (r["task"], r["variant"]) == (task, "default") and r["design"] != "dense"]
    grouped_ref_s = [float(r["seconds"]) for r in rows if (r["task"], r["variant"]) == (task, "budget-4x") and r["design"] != "dense"]
    second = sorted({r["task"] for r in rows} - {task})
    second_t = {t: table_of(rows, NAMED, KEYS, task=t, variant="default") for t in second}
    summary = {
        "machine": machine, "task": task, "designs": len(main_t), "seeds": seeds,
        "score": "mean log-likelihood of the gold label on the held-out rows",
        "gap_points": r2(g[0]) if g else None, "gap_squeezebert_sd_points": r2(g[1]) if g else None,
        "snr": r2(snr(main_t, "score")), "snr_heldout_metric": r2(snr(main_t, "heldout_metric")),
        "snr_dev_metric": r2(snr(main_t, "dev_metric")),
        "kendall_tau": tau_ref, "kendall_tau_designs": n_ref, "kendall_tau_dev_metric": tau_ref_dev,
        "score_choice": choice,
        "reference": "the same pipeline at 4x the distillation and fine-tune steps, proxy seed 0",
        "kendall_tau_between_seeds": r2(statistics.fmean(seed_taus)) if seed_taus else None,
        "kendall_tau_vs_old": old,
        "gap_points_reference": r2(g_ref[0]) if g_ref else None,
        "ablation_gap_points": {v: r2(x[0]) for v, x in ablation.items() if x},
        "distill_curve_gap_points": {steps_of[v]: r2(x[0]) for v, x in curve.items()},
        "seconds_per_design": round(statistics.fmean(grouped_s), 1) if grouped_s else None,
        "seconds_per_design_reference": round(statistics.fmean(grouped_ref_s), 1) if grouped_ref_s else None,
        "teacher_seconds": {t: round(s, 1) for t, s in teacher_s.items()},
        "compute_minutes": round(sum(float(r["seconds"]) for r in rows) / 60, 1),
        "second_task": {},
        "settings": settings,
    }
    for t, tab in second_t.items():
        gt = gap(tab)
        summary["second_task"][t] = {
            "designs": len(tab), "seeds": sorted({int(r["seed"]) for r in rows if r["task"] == t}),
            "metric": METRIC_WORDS[get_task(t).metric], "gap_points": r2(gt[0]) if gt else None,
            "kendall_tau_vs_sst2_score": tau(mean["score"], means(tab, "score"), interval=False)["tau"],
            "kendall_tau_vs_sst2_dev": tau(mean["dev_metric"], means(tab, "dev_metric"), interval=False)["tau"],
        }
    lines = [
        "# proxy_compressed: gap, noise, power and rank fidelity of the compressed proxy", "",
        f"Command: `{toolkit.command()}`; machine: {summary['machine']}; main task {task}, proxy seeds {seeds} "
        f"(one teacher, held-out split and calibration set per task: setup seed 0); {summary['compute_minutes']} min "
        f"of scoring in results.csv's rows, {seconds / 60:.1f} min in this invocation (rows already in results.csv are kept, "
        "not scored again). Settings: conf/proxy/compressed.yaml.", "",
        f"- **Gap dense - SqueezeBERT pattern (dev accuracy): {summary['gap_points']} points** (target <= 3); "
        f"the SqueezeBERT pattern's seed sd {summary['gap_squeezebert_sd_points']} points.",
        f"- **Signal-to-noise (score): {summary['snr']}** over {len(main_t)} designs x {len(seeds)} seeds "
        f"(target >= 3); on held-out accuracy: {summary['snr_heldout_metric']}, on dev accuracy: {summary['snr_dev_metric']}.",
        f"- **Kendall tau against the same pipeline at 4x the budget: {tau_ref}** over {n_ref} designs on the score "
        f"(target >= 0.6; {tau_ref_dev} on dev accuracy). Between two seeds of the default proxy: "
        f"{summary['kendall_tau_between_seeds']} (mean over seed pairs; the noise ceiling).",
        f"- Seconds per grouped design: {summary['seconds_per_design']} (target <= 120); at 4x: "
        f"{summary['seconds_per_design_reference']}; teachers (trained once per task, then loaded from the cache in ~3 s): "
        f"{summary['teacher_seconds']} s.", "",
        "Which number the search maximises: the score (gold log-likelihood on held-out train rows), held-out accuracy "
        "and dev accuracy compared by their noise and by how well their design means predict the 4x reference's dev metric:", "",
        "| candidate | SNR | Kendall tau vs 4x reference, dev |", "| --- | --- | --- |",
        *[f"| {key} | {fmt(c['snr'], 2)} | {fmt(c['kendall_tau_vs_reference_dev'], 3)} |" for key, c in choice.items()], "",
        f"## {task}: designs at the default budget", "",
        "| design | groups (q k v post in out) | score (mean ± sd) | held-out acc. | dev acc. (mean ± sd) | vs dense (dev, points) | 4x budget: score | 4x: dev acc. |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    dense_dev = main_t.get("dense", {}).get("dev_metric", (float("nan"),))[0]
    for name, t in sorted(main_t.items(), key=lambda kv: -kv[1]["score"][0]):
        r = ref_t.get(name)
        lines.append(f"| {name} | {' '.join(map(str, NAMED[name]))} | {t['score'][0]:.4f} ± {t['score'][1]:.4f} | "
                     f"{100 * t['heldout_metric'][0]:.1f} | {100 * t['dev_metric'][0]:.1f} ± {100 * t['dev_metric'][1]:.1f} | "
                     f"{100 * (t['dev_metric'][0] - dense_dev):+.1f} | {fmt(r and r['score'][0], 4)} | "
                     f"{fmt(r and 100 * r['dev_metric'][0])} |")
    lines += ["", "## Rank fidelity against earlier proxies", "",
              "Kendall tau between this proxy's mean score and earlier proxies' numbers for the same grouping patterns, "
              "from their committed results (experiments/proxy_fidelity: BERT's random init, 3x the scratch proxy's budget; "
              "experiments/proxy_supernet: block-diagonal slices of the pretrained model, 400-step fine-tune).", "",
              "| earlier proxy | designs in common | tau |", "| --- | --- | --- |"]
    lines += [f"| {name} | {o['designs']} | {fmt(o['tau'], 3)} |" for name, o in old.items()] or ["| (none found) | | |"]
    lines += ["", "## Ablation: one healing step removed (SqueezeBERT pattern)", "",
              "The gap is dense (default) minus the SqueezeBERT pattern on dev accuracy; sd = the SqueezeBERT pattern's "
              "seed standard deviation.", "", "| variant | seeds | score (mean ± sd) | dev acc. (mean ± sd) | gap (points) | seconds |",
              "| --- | --- | --- | --- | --- | --- |"]
    for var in ("default", "no-permute", "no-refit", "no-distill"):
        t = table_of(rows, NAMED, KEYS, task=task, variant=var).get("squeezebert")
        if t:
            lines.append(f"| {var} | {t['n']} | {t['score'][0]:.4f} ± {t['score'][1]:.4f} | {100 * t['dev_metric'][0]:.1f} ± "
                         f"{100 * t['dev_metric'][1]:.1f} | {ablation[var][0]:.1f} | {t['seconds'][0]:.0f} |")
    lines += ["", "## Distillation budget (SqueezeBERT pattern; fine-tune at the default 200 steps)", "",
              "| distillation steps | gap (points, ± SqueezeBERT seed sd) |", "| --- | --- |"]
    lines += [f"| {steps_of[v]} | {c[0]:.1f} ± {c[1]:.1f} |" for v, c in curve.items()]
    if g_ref:
        lines += ["", f"At 4x the whole budget (distillation and fine-tune, seed 0 only) the gap is {g_ref[0]:.1f} points."]
    for t, tab in second_t.items():
        st = summary["second_task"][t]
        lines += ["", f"## Second task: {t} ({st['metric']}, proxy seeds {st['seeds']})", "",
                  f"Gap dense - SqueezeBERT pattern: {fmt(st['gap_points'])} points of dev {st['metric']}. "
                  f"Kendall tau of the designs' order against SST-2's: {st['kendall_tau_vs_sst2_score']} on the score, "
                  f"{st['kendall_tau_vs_sst2_dev']} on the dev metric.", "",
                  f"| design | score | held-out {st['metric']} | dev {st['metric']} | vs dense (dev, points) |", "| --- | --- | --- | --- | --- |"]
        d = tab.get("dense", {}).get("dev_metric", (float("nan"),))[0]
        for name, x in sorted(tab.items(), key=lambda kv: -kv[1]["score"][0]):
            lines.append(f"| {name} | {x['score'][0]:.4f} | {100 * x['heldout_metric'][0]:.1f} | {100 * x['dev_metric'][0]:.1f} | "
                         f"{100 * (x['dev_metric'][0] - d):+.1f} |")
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"{task}: score per design (min-max over seeds; SNR {summary['snr']})",
                                                        "gap dense - SqueezeBERT pattern vs distillation steps"))
    names = sorted(main_t, key=lambda n: -main_t[n]["score"][0])
    scores = {n: [float(r["score"]) for r in rows if (r["task"], r["variant"], r["design"]) == (task, "default", n)] for n in names}
    fig.add_trace(toolkit.errorbars(names, [(main_t[n]["score"][0], min(scores[n]), max(scores[n])) for n in names],
                                    "default budget"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[n for n in names if n in ref_t], y=[ref_t[n]["score"][0] for n in names if n in ref_t],
                             mode="markers", name="4x budget (seed 0)"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[steps_of[v] for v in curve], y=[c[0] for c in curve.values()], mode="markers+lines",
                             error_y=dict(type="data", array=[c[1] for c in curve.values()]), name="gap (dev points)"), row=1, col=2)
    fig.update_yaxes(title_text="mean gold log-likelihood, held-out", row=1, col=1)
    fig.update_yaxes(title_text="points of dev accuracy", row=1, col=2)
    fig.update_xaxes(title_text="distillation steps", row=1, col=2)
    fig.update_layout(template="plotly_white")
    return summary, lines, fig


if __name__ == "__main__":
    main()

"""Does the search beat random sampling at the default budget? NSGA-II vs TPE vs random, and TPE
with the leveled start (its first 16 trials drawn by complexity level, issue 34), by level only
(``tpe-leveled``) and spread over 7 MAC-speedup bins too (``tpe-binned``, the default).

Each run is ``python -m arch_search run space=squeezebert`` with the default proxy (the
distilled supernet, whose scores separate designs: SNR 3.8, ``../proxy_supernet``) and the default
64 distinct designs, once per (sampler, seed), one run at a time. Two stated departures from the
default run, both to compare samplers and not machines: latency comes from the machine's look-up
table (``search/latency_mode=lut``, built once before the runs: every run prices a design the
same, with no timing noise between runs), and there is no confirmation (``~confirm``) and no
second-seed noise estimate (``search.proxy_noise=false``): the hypervolume is of the search's own
(score, latency) points. ``seed=N`` seeds the sampler and the proxy (the supernet of seed N,
trained once and cached), so the samplers of one seed score a design identically and differ only
in which designs they pick: the comparison is paired by seed.

Reported: hypervolume after 16, 32 and 64 distinct designs against one reference point for all
runs (the worst score and latency any run saw), mean and seed sd per sampler; per seed the
difference to random, its mean, and the MDE (2 standard errors of the paired difference, from the
seed-to-seed sd of the differences); a verdict per sampler at 64.

    python experiments/samplers/run.py            # runs/ (resumable), results.md, results.csv, summary.json, PNG
    python experiments/samplers/run.py --render   # the report again from runs/
    python experiments/samplers/run.py --quick    # smoke (CI): 4 designs a run, one seed, tiny proxy; writes nothing
"""

from __future__ import annotations

import math
import statistics
import tempfile
from pathlib import Path

from arch_search.tables import md_table
from experiments import toolkit
from experiments.toolkit.sampler_runs import (curves_figure, distinct, hypervolume_curves, machine, run_dir,
                                              run_search, save_machine, wall_minutes)

HERE = Path(__file__).resolve().parent
# name: its overrides. The sampler's own start (uniform draws per choice) for the three samplers;
# ``tpe-leveled``: TPE after a start of 16 trials drawn by complexity level (issue 34);
# ``tpe-binned``: the default's start, those draws spread over 7 MAC-speedup bins too.
SAMPLERS = {"nsga2": ["search/sampler=nsga2", "search.leveled_start=0"],
            "tpe": ["search/sampler=tpe", "search.leveled_start=0"],
            "tpe-leveled": ["search/sampler=tpe", "search.leveled_start=16", "search.start_bins=0"],
            "tpe-binned": ["search/sampler=tpe", "search.leveled_start=16", "search.start_bins=7"],
            "random": ["search/sampler=random", "search.leveled_start=0"]}  # random last: the baseline
STARTS = ("tpe-leveled", "tpe-binned")  # TPE with the leveled start, compared with TPE's own
AT = (16, 32, 64)  # distinct designs at which the hypervolume is reported
QUICK = ["proxy.steps=2", "proxy.teacher_steps=2", "proxy.batch_size=8", "proxy_setup.heldout=60",
         "proxy_setup.max_len=16", "task=wnli", "latency.rounds=2", "latency.warmup=0",
         "search.latency_mode.heldout_designs=1"]


def overrides(args, sampler: str | None = None, seed: int = 0) -> list[str]:
    """The run's overrides besides its directory: the default run but LUT latency, no
    confirmation and no second-seed noise."""
    out = ["search.space=squeezebert", f"seed={seed}", "~confirm", "search.proxy_noise=false", "search/latency_mode=lut",
           f"search.n_trials={args.trials}", f"cache_dir={args.cache_dir}", f"proxy_setup.checkpoint={toolkit.checkpoint()}",
           f"task.data_dir={args.data_dir}", "search.progress=false", "proxy.progress=false"]
    if args.proxy_threads is not None:
        out.append(f"proxy.threads={args.proxy_threads}")
    if sampler:
        out += SAMPLERS.get(sampler, [f"search/sampler={sampler}"])
    return out + (QUICK if args.quick else [])


def run_one(args, sampler: str, seed: int, out: Path) -> None:
    """One search in ``out/<sampler>-seed<seed>``; a run whose trials.csv holds its designs is
    skipped, an interrupted one resumes its study (the CLI's own resume) and adds its wall time
    to the earlier attempts'."""
    run = run_dir(out, sampler, seed)
    if (run / "trials.csv").is_file() and len(distinct(run)) >= args.trials:
        return
    earlier = float((run / "wall_seconds.txt").read_text()) if (run / "wall_seconds.txt").is_file() else 0
    seconds = run_search(overrides(args, sampler, seed), run, args.data_dir) + earlier
    (run / "wall_seconds.txt").write_text(f"{seconds:.0f}\n")
    print(f"{sampler} seed {seed}: {seconds / 60:.1f} min", flush=True)


def analyse(out: Path, seeds, at=AT) -> tuple[list[dict], dict, tuple[float, float]]:
    """Hypervolume after each distinct design of every run, against one reference point (the
    worst score and worst latency any run saw); rows of the hypervolume at each of ``at``."""
    points = {(s, seed): distinct(run_dir(out, s, seed)) for s in SAMPLERS for seed in seeds}
    curves, ref = hypervolume_curves(points)
    rows = [{"sampler": s, "seed": seed, "designs": len(points[(s, seed)]),
             **{f"hv_{n}": round(curves[(s, seed)][n - 1], 5) if len(curves[(s, seed)]) >= n else math.nan for n in at}}
            for (s, seed) in curves]
    return rows, curves, ref


def versus_random(rows, seeds, n: int, base: str = "random") -> dict[str, dict]:
    """Per sampler: its hypervolume at ``n`` minus ``base``'s, paired by seed: mean, the MDE (2
    standard errors, from the seed-to-seed sd of the differences) and the verdict."""
    by = {(r["sampler"], r["seed"]): r[f"hv_{n}"] for r in rows}
    out = {}
    for s in [s for s in SAMPLERS if s not in (base, "random")]:
        d = [by[(s, seed)] - by[(base, seed)] for seed in seeds]
        se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else math.nan
        mde = 2 * se
        verdict = ("not reproduced" if math.isnan(mde) or abs(statistics.fmean(d)) <= mde
                   else "reproduced" if statistics.fmean(d) > 0 else "contradicted")
        out[s] = {"difference": statistics.fmean(d), "by_seed": d, "mde": mde, "verdict": verdict,
                  "ratio": statistics.fmean(by[(s, seed)] / by[(base, seed)] if by[(base, seed)] else math.nan
                                            for seed in seeds)}
    return out


def differences(vs: dict[str, dict], base: str) -> list[str]:
    """The table of ``versus_random``'s rows against ``base`` (its name as the header says it)."""
    return md_table([{"sampler": s, "difference": f"{v['difference']:+.4f}", "mde": f"{v['mde']:.4f}",
                              "by_seed": ", ".join(f"{d:+.4f}" for d in v["by_seed"]), "ratio": f"{v['ratio']:.3f}",
                              "verdict": v["verdict"]} for s, v in vs.items()],
                            {"sampler": "sampler", "difference": f"hypervolume - {base}'s", "mde": "MDE",
                             "by_seed": "per seed", "ratio": f"ratio to {base} (mean)", "verdict": "verdict"})


def render(args, out: Path):
    rows, curves, ref = analyse(out, args.seeds)
    at = [n for n in AT if all(not math.isnan(r[f"hv_{n}"]) for r in rows)] or [min(r["designs"] for r in rows)]
    if at != [n for n in AT if n in at]:
        rows, curves, ref = analyse(out, args.seeds, at)
    n = max(at)
    vs = versus_random(rows, args.seeds, n)
    starts = {k: v for k, v in versus_random(rows, args.seeds, n, base="tpe").items() if k in STARTS}
    binned = {k: v for k, v in versus_random(rows, args.seeds, n, base="tpe-leveled").items() if k == "tpe-binned"}
    reached = {(r["sampler"], r["seed"]): toolkit.search_reach(run_dir(out, r["sampler"], r["seed"])) for r in rows}
    minutes = {(r["sampler"], r["seed"]): wall_minutes(run_dir(out, r["sampler"], r["seed"])) for r in rows}
    stats = {s: {k: [r[f"hv_{k}"] for r in rows if r["sampler"] == s] for k in at} for s in SAMPLERS}
    table = [{"sampler": s, **{f"hv_{k}": f"{statistics.fmean(v[k]):.4f} ± {statistics.stdev(v[k]) if len(v[k]) > 1 else 0:.4f}"
                               for k in at}} for s, v in stats.items()]
    lines = [
        "# samplers: NSGA-II vs TPE (with and without the leveled start) vs random at the default budget", "",
        f"Command: `{toolkit.command()}` (from the repository root); each run is `python -m arch_search run "
        f"{toolkit.relative(' '.join(overrides(args, '<sampler>', 0))).replace('seed=0', 'seed=<seed>')}`, one at a time.", "",
        f"Machine: {machine(out)}", "",
        f"Set-up: the squeezebert space (15,625 designs), {args.trials} distinct designs a run, the dense and SqueezeBERT "
        "references first in every run; the default proxy (the distilled supernet of the run's seed); latency from the "
        "machine's look-up table (the same price for a design in every run); no confirmation. Hypervolume of (score, "
        f"latency) against one reference point for all runs: score {ref[0]:.4f}, latency {ref[1]:.1f} ms "
        "(units: score x ms). Seeds " + ", ".join(map(str, args.seeds)) + ", paired: one seed's runs share the proxy.", "",
        "## Hypervolume (mean ± seed sd)", "",
        *md_table(table, {"sampler": "sampler", **{f"hv_{k}": f"after {k} designs" for k in at}}), "",
        f"## Against random, after {n} designs (paired by seed; MDE = 2 standard errors of the per-seed differences, "
        f"{len(args.seeds) - 1} dof)", "",
        *differences(vs, "random"), "",
        "## The leveled start (issue 34): TPE after 16 trials drawn by complexity level (`tpe-leveled`), and "
        "those draws spread over 7 MAC-speedup bins too (`tpe-binned`, the default), against TPE's own uniform "
        f"start, after {n} designs (paired by seed)", "",
        *differences(starts, "TPE"), "",
        "The bins against levels only (paired by seed):", "",
        *differences(binned, "tpe-leveled"), "",
        "What the start is for: the fastest design a run evaluated (speedup over dense, LUT) and how many of its "
        "designs have one or two projection types grouped (the mild end; references left out), mean over seeds:", "",
        *md_table([{"sampler": s, "fastest": f"{statistics.fmean(reached[(s, seed)]['fastest_trial_speedup'] for seed in args.seeds):.2f}x",
                            "mild": f"{statistics.fmean(reached[(s, seed)]['mild_designs'] for seed in args.seeds):.1f}"} for s in SAMPLERS],
                          {"sampler": "sampler", "fastest": "fastest design", "mild": "mild designs"}), "",
        "## Per run", "",
        *md_table([{**r, "minutes": f"{minutes[(r['sampler'], r['seed'])]:.1f}",
                            "fastest": f"{reached[(r['sampler'], r['seed'])]['fastest_trial_speedup']:.2f}x",
                            "mild": reached[(r["sampler"], r["seed"])]["mild_designs"]} for r in rows],
                          {"sampler": "sampler", "seed": "seed", "designs": "designs",
                           **{f"hv_{k}": f"hv after {k}" for k in at}, "fastest": "fastest design",
                           "mild": "mild designs", "minutes": "wall min"}), "",
    ]
    colors = {"nsga2": "#1f77b4", "tpe": "#2ca02c", "tpe-leveled": "#9467bd", "tpe-binned": "#8c564b", "random": "#ff7f0e"}
    fig = curves_figure(curves, lambda s: dict(color=colors[s], dash="dot" if s == "random" else "solid"),
                        "Hypervolume after each distinct design: NSGA-II, TPE and random (dotted)",
                        "distinct designs", "hypervolume (score x ms)")
    summary = {"verdict": vs["nsga2"]["verdict"], "mde_points": round(vs["nsga2"]["mde"], 5),
               "mde_units": "hypervolume (score x ms), not accuracy points",
               "metric": f"hypervolume of (supernet score, LUT latency) after {n} designs", "seeds": list(args.seeds),
               "proxy": "the default run's proxy (distilled supernet), LUT latency, no confirmation",
               "claim": "a multi-objective search beats random sampling",
               "versus_random": {s: {k: (round(v[k], 5) if isinstance(v[k], float) else v[k]) for k in ("difference", "mde", "ratio", "verdict")}
                                 for s, v in vs.items()},
               **{f"{key}_vs_{base}": {k: (round(v[k], 5) if isinstance(v[k], float) else v[k]) for k in ("difference", "mde", "ratio", "verdict")}
                  for key, base, v in (("leveled_start", "tpe", starts.get("tpe-leveled")), ("binned_start", "tpe", starts.get("tpe-binned")),
                                       ("binned_start", "leveled_start", binned.get("tpe-binned"))) if v},
               "reach": {s: {"fastest_speedup": round(statistics.fmean(reached[(s, seed)]["fastest_trial_speedup"] for seed in args.seeds), 3),
                             "mild_designs": round(statistics.fmean(reached[(s, seed)]["mild_designs"] for seed in args.seeds), 2)}
                         for s in SAMPLERS}}
    return rows, lines, fig, summary


def main() -> None:
    ap = toolkit.parser(__doc__)
    ap.add_argument("--trials", type=int, default=64, help="distinct designs per run (the default search's)")
    args = toolkit.parse(ap)
    with tempfile.TemporaryDirectory() as tmp:
        out = HERE / "runs"
        if args.quick:  # one seed, 4 designs a run, everything in a temporary folder
            args.seeds, args.trials, args.cache_dir, out = args.seeds[:1], 4, str(Path(tmp) / "cache"), Path(tmp) / "runs"
        if not args.render:
            toolkit.build_lut(overrides(args))  # the machine's table, timed once before the runs
            save_machine(out, threads=args.proxy_threads or 2)
            for seed in args.seeds:
                for s in SAMPLERS:
                    run_one(args, s, seed, out)
        rows, lines, fig, summary = render(args, out)
        toolkit.write(HERE, args, rows, lines, fig, "samplers.png", summary=summary)  # --quick: printed, not written


if __name__ == "__main__":
    main()

"""NSGA-II vs random sampling at equal trials: hypervolume over 3 seeds each.

Runs ``python -m arch_search run space=squeezebert`` once per (sampler, seed), each with the
same number of finished trials, and compares the hypervolume of (proxy accuracy up, latency
down) after every trial. To fit six searches on two cores, every run is cheaper than the
default one in two stated ways: latency comes from the machine's look-up table
(``search/latency_mode=lut``, built once, before the runs, on a quiet machine; deterministic, so
every run prices a design the same) and the from-scratch proxy trains ``--proxy-steps`` steps
on one thread; ``--jobs`` runs go side by side. Seeds pair the runs: ``seed=N`` sets both the
sampler's seed and the proxy's (init, batch order, held-out slice), so NSGA-II and random of one
seed score a design identically and differ only in which designs they pick.

    python experiments/search_recovers_squeezebert/samplers.py           # samplers.md/.csv/.png, samplers/
    python experiments/search_recovers_squeezebert/samplers.py --render  # the tables and plot from samplers/ again
    python experiments/search_recovers_squeezebert/samplers.py --quick   # smoke: 2 tiny runs, writes nothing here
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import plotly.graph_objects as go

from arch_search.tables import csv_text, md_table
from experiments import toolkit
from experiments.toolkit.sampler_runs import (curves_figure, hypervolume_curves, machine, run_dir, run_search,
                                              save_machine, trials, wall_minutes)

HERE = Path(__file__).resolve().parent

SAMPLERS = ("nsga2", "random")
QUICK = ["search.n_trials=4", "proxy.steps=2", "proxy_setup.vocab_size=2000", "proxy_setup.heldout=100",
         "proxy_setup.max_len=16", "proxy_setup.scale={hidden:32,layers:1,heads:4,intermediate:64}",
         "latency.rounds=2", "latency.warmup=0", "search.latency_mode.heldout_designs=1"]


def overrides(args, sampler: str | None = None, seed: int = 0) -> list[str]:
    """The run's command-line overrides (besides the run directory): the from-scratch proxy these
    runs were made with (the default before the distilled supernet), its seed moving the
    held-out split as it did then, no confirmation."""
    out = ["search.space=squeezebert", f"seed={seed}", "proxy=finetune_scratch", "proxy_setup=scratch",
           f"proxy_setup.seed={seed}", "~confirm", "search/latency_mode=lut", f"search.n_trials={args.trials}",
           f"proxy.steps={args.proxy_steps}", "proxy.threads=1", "proxy.eval_dev=false", f"cache_dir={args.cache_dir}",
           "search.progress=false", "proxy.progress=false"]
    if sampler:
        out.append(f"search/sampler={sampler}")
    return out + (QUICK if args.quick else [])


def run_one(args, sampler: str, seed: int, out: Path) -> float:
    run = run_dir(out, sampler, seed)
    seconds = run_search(overrides(args, sampler, seed), run, args.data_dir)
    (run / "study.db").unlink(missing_ok=True)  # trials.csv keeps every trial; the db is ~1 MB a run
    (run / "wall_seconds.txt").write_text(f"{seconds:.0f}\n")
    print(f"{sampler} seed {seed}: {seconds / 60:.1f} min", flush=True)
    return seconds


def analyse(out: Path, seeds: list[int]) -> tuple[list[dict], dict, tuple[float, float]]:
    """Hypervolume after each trial of every run, against one reference point for all runs: the
    worst accuracy and the worst latency any run saw (so every run's designs count). Returns
    the per-run rows, the curves {(sampler, seed): [hv, ...]} and the reference point."""
    points = {(s, seed): trials(run_dir(out, s, seed)) for s in SAMPLERS for seed in seeds}
    curves, ref = hypervolume_curves({k: [(a, ms) for a, ms, _ in v] for k, v in points.items()})
    n = min(len(v) for v in points.values())
    rows = []
    for (s, seed), hv in curves.items():
        run = points[(s, seed)][:n]
        rows.append({"sampler": s, "seed": seed, "trials": n, "hypervolume": round(hv[n - 1], 4),
                     "hv_at_half": round(hv[n // 2 - 1], 4), "best_accuracy": round(100 * max(a for a, _, _ in run), 2),
                     "fastest_ms": round(min(ms for _, ms, _ in run), 2),
                     "distinct_designs": len({h for _, _, h in run})})
    return rows, curves, ref


def render(args, out: Path) -> tuple[list[dict], list[str], go.Figure]:
    rows, curves, ref = analyse(out, args.seeds)
    by = {(r["sampler"], r["seed"]): r for r in rows}
    n = rows[0]["trials"]
    ratio = [by[("nsga2", s)]["hypervolume"] / by[("random", s)]["hypervolume"] for s in args.seeds]
    wins = sum(r > 1 for r in ratio)
    mean = {s: statistics.fmean(by[(s, seed)]["hypervolume"] for seed in args.seeds) for s in SAMPLERS}
    minutes = {k: wall_minutes(run_dir(out, *k)) for k in by}
    lines = [
        "# search_recovers_squeezebert: NSGA-II vs random sampling at equal trials", "",
        f"Command: `{toolkit.command()}` (from the repository root); each run is "
        f"`python -m arch_search run {' '.join(overrides(args, '<sampler>', 0)).replace('seed=0', 'seed=<seed>')}`.", "",
        f"Machine: {machine(out)}", "",
        f"Set-up: the squeezebert space (5^6 = 15,625 designs), {n} finished trials per run, the dense and "
        "SqueezeBERT references enqueued first in every run (as in the default search). Accuracy: the default "
        f"from-scratch proxy (hidden 256, 4 layers) but {args.proxy_steps} steps instead of 400, on 1 thread, no dev "
        "evaluation. Latency: "
        "the machine's look-up table (BERT-base dims, batch 1, seq 128, 1 thread), built once before the runs, so "
        f"every run prices a design the same. Runs went {args.jobs} side by side. NSGA-II: population 10 "
        "(conf/search/sampler/nsga2.yaml). Hypervolume of (accuracy, latency) against one reference point for all "
        f"runs, the worst of both seen anywhere: accuracy {100 * ref[0]:.2f}%, latency {ref[1]:.1f} ms "
        "(units: accuracy fraction x ms).", "",
        "## Hypervolume per run", "",
        *md_table([{**r, "minutes": f"{minutes[(r['sampler'], r['seed'])]:.1f}"} for r in rows], {
            "sampler": "sampler", "seed": "seed", "trials": "trials", "hypervolume": f"hypervolume at {n}",
            "hv_at_half": f"at {n // 2}", "best_accuracy": "best accuracy %", "fastest_ms": "fastest ms",
            "distinct_designs": "distinct designs", "minutes": "wall min"}), "",
        f"Mean hypervolume at {n} trials: NSGA-II {mean['nsga2']:.4f}, random {mean['random']:.4f}; NSGA-II / random "
        f"per seed: {', '.join(f'{r:.3f}' for r in ratio)} (NSGA-II ahead in {wins} of {len(ratio)} seeds).", "",
    ]
    fig = curves_figure(curves, lambda s: dict(dash="solid" if s == "nsga2" else "dot",
                                               color="#1f77b4" if s == "nsga2" else "#ff7f0e"),
                        "Hypervolume after each trial: NSGA-II (solid) vs random (dotted), 3 seeds each",
                        "finished trials", "hypervolume (accuracy x ms)", n=n)
    return rows, lines, fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--trials", type=int, default=32, help="finished trials per run")
    ap.add_argument("--proxy-steps", type=int, default=150)
    ap.add_argument("--jobs", type=int, default=2, help="runs side by side (each trains on 1 thread)")
    ap.add_argument("--data-dir", default=toolkit.glue_dir())
    ap.add_argument("--cache-dir", default=str(toolkit.REPO / ".cache" / "arch_search"))
    ap.add_argument("--render", action="store_true", help="only rewrite the results from samplers/")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 tiny runs in a temporary folder, prints")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.jobs = args.seeds[:1], 1
        with tempfile.TemporaryDirectory() as tmp:
            args.cache_dir = str(Path(tmp) / "cache")
            toolkit.build_lut(overrides(args))  # the machine's table, timed once before the runs
            for s in SAMPLERS:
                run_one(args, s, args.seeds[0], Path(tmp))
            rows, lines, fig = render(args, Path(tmp))
            toolkit.show({"samplers.md": "\n".join(lines) + "\n", "samplers.csv": csv_text(rows)})
            print(f"--- samplers.png: {len(fig.data)} traces (not written under --quick) ---")
        return
    out = HERE / "samplers"
    if not args.render:
        toolkit.build_lut(overrides(args))  # the machine's table, timed once before the runs
        save_machine(out, threads=1)
        jobs = [(s, seed) for seed in args.seeds for s in SAMPLERS]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda job: run_one(args, *job, out), jobs))
    rows, lines, fig = render(args, out)
    (HERE / "samplers.md").write_text("\n".join(lines) + "\n")
    (HERE / "samplers.csv").write_text(csv_text(rows))
    fig.write_image(HERE / "samplers.png", width=1100, height=600)
    print("\n".join(lines))


if __name__ == "__main__":
    main()

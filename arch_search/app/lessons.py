"""What the lesson experiments (which_layers, group_count, shuffle) share: the search's own
accuracy proxy over several seeds, one interleaved latency measurement, costs, and the writing
of results.md / results.csv / a PNG.

The proxy and the latency protocol are *composed* from ``conf/run.yaml`` (the config of
``python -m arch_search run``) and instantiated with Hydra, so an experiment scores designs
exactly as the search does by default and cannot drift from it. Accuracy is measured at the
proxy scale (``proxy_setup.scale``), latency and FLOPs at the target scale (the design's own
dims, BERT-base here), as in the search (``../shared/DESIGN.md``, "Two scales").
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from arch_search import ArchSpec, build_model, count_cost
from arch_search.measure.cost import Cost
from arch_search.measure.latency import Comparison
from arch_search.tasks.training import ProxyDiverged
from arch_search.resources import conf_dir
from arch_search.study.results import csv_text, md_table
from arch_search.design.spec import PROJECTIONS, SHORT_NAMES as SHORT  # the lessons' names for them

def _repo() -> Path:
    """The checkout the experiments run in: this package's (an editable install), else the
    working directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "experiments").is_dir() else Path.cwd()


REPO = _repo()
SHARED = Path(os.environ.get("ARCH_SEARCH_SHARED", REPO.parent / "shared"))
SEEDS = (0, 1, 2)
# --quick: a smoke run of the whole script in seconds (nothing is written)
QUICK_OVERRIDES = (
    "proxy.steps=2", "proxy_setup.heldout=100", "proxy_setup.max_len=16",
    "proxy_setup.scale={hidden:64,layers:1,heads:4,intermediate:128}", "seq_len=16", "latency.warmup=0",
)
QUICK_TARGET = {"hidden": 64, "layers": 2, "heads": 4, "intermediate": 256}  # tiny target dims to time


def parser(doc: str) -> argparse.ArgumentParser:
    """The command line every lesson shares (a script may add its own options)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="proxy seeds (run.yaml's `seed`)")
    ap.add_argument("--rounds", type=int, default=50, help="interleaved timed rounds per design (latency.rounds)")
    ap.add_argument("--data-dir", default=os.environ.get("GLUE_DIR", str(SHARED / "glue")), help="GLUE TSV folders")
    ap.add_argument("--cache-dir", default=str(REPO / ".cache" / "arch_search"), help="trained tokenizers")
    ap.add_argument("--proxy-threads", type=int, default=None,
                    help="training threads (proxy.threads; default: run.yaml's). 1 keeps a shared machine's other "
                         "core free: 2 OpenMP threads beside another busy process stall at barriers")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 proxy steps, 1 seed, tiny target; writes nothing")
    return ap


def parse(ap: argparse.ArgumentParser) -> argparse.Namespace:
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.rounds = args.seeds[:1], 2
    return args


def config(args: argparse.Namespace, seed: int = 0) -> DictConfig:
    """``conf/run.yaml`` as ``python -m arch_search run seed=<seed> proxy=finetune_scratch
    proxy_setup=scratch proxy_setup.seed=<seed> ~confirm`` composes it: the lessons' proxy
    is the from-scratch fine-tune their committed results used (the run's default before the
    distilled supernet), and their seed moves the held-out split too, as it did then."""
    overrides = [
        f"seed={seed}", "proxy=finetune_scratch", "proxy_setup=scratch", f"proxy_setup.seed={seed}", "~confirm",
        f"task.data_dir={args.data_dir}", f"cache_dir={args.cache_dir}",
        f"latency.rounds={args.rounds}", "proxy.progress=false",
    ]
    if args.proxy_threads is not None:
        overrides.append(f"proxy.threads={args.proxy_threads}")
    if args.quick:
        overrides += QUICK_OVERRIDES
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="run", overrides=overrides)


def target(spec: ArchSpec, args: argparse.Namespace) -> ArchSpec:
    """The design at the scale it is timed and costed at (tiny under --quick)."""
    return spec.with_scale(**QUICK_TARGET) if args.quick else spec


# ---- accuracy: the search's proxy, several seeds -------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """Proxy accuracy of one design, one value per seed (fractions; NaN where it diverged).
    ``heldout``: held-out SST-2 train sentences, the score the search sees; ``dev``: SST-2 dev."""

    seeds: tuple[int, ...]
    heldout: tuple[float, ...]
    dev: tuple[float, ...]
    seconds: tuple[float, ...]

    def stats(self, which: str = "heldout") -> tuple[float, float, float]:
        """(mean, min, max) over seeds, in percent; all NaN when a seed diverged (NaN), wherever it is."""
        values = [100 * v for v in getattr(self, which)]
        if any(math.isnan(v) for v in values):
            return math.nan, math.nan, math.nan
        return statistics.fmean(values), min(values), max(values)

    def text(self, which: str = "heldout") -> str:
        mean, lo, hi = self.stats(which)
        return f"{mean:.1f} ({lo:.1f}-{hi:.1f})" if len(self.seeds) > 1 else f"{mean:.1f}"


def delta(a: Scores, b: Scores, which: str = "heldout") -> tuple[float, float, float]:
    """Paired per-seed difference a - b in points (same seed = same held-out slice, init and
    batch order): (mean, min, max) over seeds."""
    d = [100 * (x - y) for x, y in zip(getattr(a, which), getattr(b, which))]
    return statistics.fmean(d), min(d), max(d)


def paired(a: Scores, b: Scores, prefix: str) -> dict[str, float]:
    """CSV columns of ``a - b`` in points, paired by seed: ``<prefix>_heldout`` (mean),
    ``<prefix>_heldout_min``, ``<prefix>_heldout_max``, and the same for ``dev``."""
    out = {}
    for which in ("heldout", "dev"):
        mean, lo, hi = delta(a, b, which)
        out |= {f"{prefix}_{which}": round(mean, 2), f"{prefix}_{which}_min": round(lo, 2), f"{prefix}_{which}_max": round(hi, 2)}
    return out


def paired_text(row: Mapping, key: str) -> str:
    """``+1.2 (+0.4 to +2.0)`` from the columns ``paired`` wrote."""
    return f"{row[key]:+.1f} ({row[key + '_min']:+.1f} to {row[key + '_max']:+.1f})"


def paired_stats(row: Mapping, key: str) -> tuple[float, float, float]:
    return row[key], row[key + "_min"], row[key + "_max"]


def score_designs(designs: Mapping[str, ArchSpec], args: argparse.Namespace, **proxy_kwargs) -> dict[str, Scores]:
    """Every design through the run config's proxy (``instantiate(cfg.proxy, **proxy_kwargs)``),
    once per seed. Seed-major, so each seed's task data and tokenizer are loaded once."""
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in designs}
    for seed in args.seeds:
        proxy = instantiate(config(args, seed).proxy, **proxy_kwargs)
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


# ---- latency and costs at the target scale -------------------------------------------------------


def measure(designs: Mapping[str, ArchSpec], args: argparse.Namespace) -> Comparison:
    """All designs in ONE interleaved ``compare_latency`` call (run.yaml's ``latency`` group);
    the first design is the baseline of ``speedup``."""
    cfg = config(args)
    models = {name: build_model(target(spec, args)) for name, spec in designs.items()}
    print(f"timing {len(models)} designs interleaved, {args.rounds} rounds ...", flush=True)
    return instantiate(cfg.latency).compare(models, baseline=next(iter(designs)))


def costs(designs: Mapping[str, ArchSpec], args: argparse.Namespace) -> dict[str, Cost]:
    cfg = config(args)
    return {name: count_cost(target(spec, args), seq_len=cfg.seq_len, batch=cfg.batch) for name, spec in designs.items()}


def rows(designs: Mapping[str, ArchSpec], scores: Mapping[str, Scores], cmp: Comparison,
         cost: Mapping[str, Cost]) -> list[dict]:
    """One CSV row per design: pattern, accuracy per seed and its stats, latency, costs."""
    out = []
    for name, spec in designs.items():
        s, lat, c = scores[name], cmp.latencies[name], cost[name]
        row = {"design": name, "groups": spec.pattern()}
        for which in ("heldout", "dev"):
            mean, lo, hi = s.stats(which)
            row |= {f"{which}_mean": round(mean, 2), f"{which}_min": round(lo, 2), f"{which}_max": round(hi, 2)}
            row |= {f"{which}_seed{seed}": round(100 * v, 2) for seed, v in zip(s.seeds, getattr(s, which))}
        row |= {
            "median_ms": round(lat.median_ms, 2), "p10_ms": round(lat.p10_ms, 2), "p90_ms": round(lat.p90_ms, 2),
            "cv": round(lat.cv, 4), "speedup": round(cmp.speedup[name], 3), "macs": c.macs, "gmacs": round(c.gmacs, 3),
            "gflops": round(c.gflops, 3), "params_m": round(c.params / 1e6, 2),
            "train_seconds_mean": round(statistics.fmean(s.seconds), 1),
        }
        out.append(row)
    return out


def evaluate(designs: Mapping[str, ArchSpec], args: argparse.Namespace) -> tuple[Comparison, dict[str, Scores], list[dict]]:
    """Latency (first, on a quiet machine), costs and proxy scores of every design, and their rows."""
    cmp = measure(designs, args)
    cost = costs(designs, args)
    scores = score_designs(designs, args)
    return cmp, scores, rows(designs, scores, cmp, cost)


# ---- running a command ---------------------------------------------------------------------------


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
    return seconds


def strip_progress(log: Path) -> None:
    """The log without tqdm's carriage-return redraws (keeps each bar's last state)."""
    lines = [line.rsplit("\r", 1)[-1] for line in log.read_text().split("\n")]
    log.write_text("\n".join(line for line in lines if line.strip()) + "\n")


# ---- writing -------------------------------------------------------------------------------------


def write_results(here: Path, summary: Mapping, report: Sequence[str], quick: bool = False) -> bool:
    """``summary.json`` and ``results.md`` beside the experiment; a smoke run (``quick``)
    prints them instead and writes nothing. True when written."""
    if quick:
        print(json.dumps(summary, indent=1))
        print("\n".join(report))
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


def header(title: str, args: argparse.Namespace, cmp: Comparison, designs: Mapping[str, ArchSpec],
           rows_: Sequence[Mapping], scores: Mapping[str, Scores]) -> list[str]:
    """Title, the command, the machine, the proxy and latency set-ups as composed, and the
    table of designs."""
    cfg = config(args)
    p, ps, lat = cfg.proxy, cfg.proxy_setup, cfg.latency
    scale = ps.scale
    dims = target(next(iter(designs.values())), args)
    return [
        f"# {title}", "",
        f"Command: `{command()}` (from the repository root; GLUE from `GLUE_DIR`, default `../shared/glue`)", "",
        f"Machine: {next(iter(cmp.latencies.values())).env}", "",
        "**Accuracy** (proxy scale): the search's default proxy, composed from `conf/run.yaml` "
        f"(`{p._target_.rsplit('.', 1)[-1]}`, `proxy_setup.init={ps.init}`): each design trained from BERT's random "
        f"init at hidden {scale.hidden} / {scale.layers} layers / {scale.heads} heads / FFN {scale.intermediate} "
        f"with the same grouping pattern, {p.steps} steps of batch {p.batch_size}, AdamW lr {p.lr:g}, {p.threads} "
        f"training thread(s), max length "
        f"{ps.max_len}, a {ps.vocab_size}-token WordPiece vocabulary learnt on train. **held-out** = accuracy on "
        f"{ps.heldout} whole SST-2 train sentences held out of training (the score the search sees); **dev** = "
        f"SST-2 dev (872). Seeds {', '.join(map(str, args.seeds))} (`seed=N` sets the init, the batch order, the held-out "
        "slice and so the vocabulary learnt on the rest); cells are mean (min-max) over seeds, in %. Deltas "
        "between designs are paired by seed.", "",
        f"**Latency** (target scale, {dims.hidden} hidden x {dims.layers} layers, FFN {dims.intermediate}): "
        f"batch {cfg.batch}, seq {cfg.seq_len}, {lat.threads} thread(s), `torch.inference_mode`, {lat.warmup} "
        f"warm-up passes, then {lat.rounds} rounds; all {len(designs)} designs interleaved in one `compare_latency` "
        "call. Speedup = median(dense) / median(design). FLOPs = 2 x MACs of the encoder (`count_cost`, fvcore).", "",
        "## Designs", "", *design_table(rows_, scores), "",
    ]


DESIGN_COLUMNS = {
    "design": "design", "groups": "groups (q k v post in out)", "heldout": "held-out % (seeds)",
    "dev": "dev % (seeds)", "median_ms": "median ms", "speedup": "speedup", "gflops": "GFLOPs", "params_m": "params M",
}


def design_table(rows_: Sequence[Mapping], scores: Mapping[str, Scores]) -> list[str]:
    """The per-design table every lesson prints first."""
    shown = [{**r, "heldout": scores[r["design"]].text("heldout"), "dev": scores[r["design"]].text("dev"),
              "speedup": f"{r['speedup']:.2f}x"} for r in rows_]
    return md_table(shown, DESIGN_COLUMNS)


def errorbars(x: Sequence[float], stats: Sequence[tuple[float, float, float]], name: str,
              text: Sequence[str] | None = None, **kw) -> go.Scatter:
    """A scatter trace at (x, mean) with asymmetric error bars to [min, max] (``stats``)."""
    y = [m for m, _, _ in stats]
    return go.Scatter(
        x=list(x), y=y, name=name, text=list(text) if text else None,
        mode="markers+text" if text else "markers+lines", textposition="top center",
        error_y=dict(type="data", symmetric=False, array=[hi - m for m, _, hi in stats],
                     arrayminus=[m - lo for m, lo, _ in stats]), **kw,
    )


def write(here: Path, args: argparse.Namespace, rows_: Sequence[Mapping], report: Sequence[str],
          fig: go.Figure, png: str, extra: Mapping[str, str] | None = None) -> None:
    """results.md, results.csv (``rows_``), ``png`` and ``extra`` files ({name: text}) beside
    the script; under --quick everything is printed instead and nothing is written."""
    files = {"results.md": "\n".join(report) + "\n", "results.csv": csv_text(rows_), **(extra or {})}
    if args.quick:
        for name, body in files.items():
            print(f"--- {name} ---\n{body}")
        print(f"--- {png}: {len(fig.data)} traces (not written under --quick) ---")
        return
    for name, body in files.items():
        (here / name).write_text(body)
    fig.write_image(here / png, width=1100, height=600)  # plotly -> kaleido -> headless Chromium
    print(f"wrote {', '.join(files)} and {png} in {here}")


__all__ = ["PROJECTIONS", "SHORT", "Scores", "config", "costs", "delta", "design_table", "errorbars",
           "header", "command", "csv_text", "evaluate", "md_table", "measure", "paired", "paired_stats", "paired_text", "parse", "parser", "rows", "score_designs", "target", "write"]

"""Writing a lesson's results: results.md (its header: the command, machines, set-ups, noise
and power, the table of designs), results.csv, summary.json and a PNG beside the script; under
--quick every file is printed instead (``show``) and nothing is written."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from arch_search import ArchSpec
from arch_search.measure.latency import Env
from arch_search.tables import csv_text, md_table
from experiments.toolkit.compose import config, proxy_key, target
from experiments.toolkit.paths import REPO
from experiments.toolkit.scores import METRICS, Scores, mde, metric_label, noise
from experiments.toolkit.store import read_rows

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
    here = str(Env.current(2))
    before = json.loads(summary.read_text()).get("machine") if summary.is_file() else None
    if not before or before == here:
        return here
    return before if scored == 0 else f"{before} (earlier rows) + {here} ({scored} rows)"


def power_lines(scores: Mapping[str, Scores], task: str) -> list[str]:
    """The lesson's noise and power per metric (on the GLUE ``task``): the paired seed sd, its
    dof, and the MDE of a paired difference between two designs."""
    lines = []
    for which in METRICS:
        n = noise(scores, which)
        if n is not None:
            lines.append(f"- {metric_label(which, task)}: paired seed sd {n.sd:.2f} points ({n.dof} dof, {n.source}); "
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
        *power_lines(scores, cfg.task.name), "",
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
    return {"verdict": verdict, "mde_points": round(mde, 2), "metric": metric_label("heldout", cfg.task.name), "seeds": list(args.seeds),
            "proxy": f"{cfg.task.name}, proxy_setup=pretrained proxy=compressed ({proxy_key(cfg)})",
            "noise_sd_points": {w: round(n.sd, 3) for w, n in pooled.items() if n is not None},
            "noise_dof": next((n.dof for n in pooled.values() if n is not None), None), **more}

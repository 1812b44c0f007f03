"""The report of a search: one self-contained HTML page (plotly.js inlined once) and a PNG per
figure, read from the study's storage (and the run directory's pareto.csv and confirmed.csv, if any).

The page: the figures (``arch_search.app.figures``), then the front as a table with speedup vs
dense (the re-measured latency from pareto.csv where it has it), and the confirmed designs as a
second table. The rows come from ``study.run_tables``; this module reads the run and writes the
page. Without a Chrome/Chromium the report is the HTML alone (``Report.notes`` says so).
"""

from __future__ import annotations

import csv
import html
import time
from dataclasses import dataclass, field
from pathlib import Path

from plotly.offline import get_plotlyjs

from arch_search.app.figures import StudyData, fig_confirmed_front, fig_grouping, fig_hypervolume, fig_importances
from arch_search.app.figures import fig_pareto, fig_reference_latency, fig_scatter, fig_search_vs_confirmed
from arch_search.app.figures import importances, write_pngs
from arch_search.study.record import TrialRecord, dense_reference, proxy_noise
from arch_search.study.run_tables import trial_rows
from arch_search.study.run_dir import RunDir
from arch_search.study.storage import RunError, load_study, locate, shown


def confirmed_of(run_dir: Path | None) -> list[dict]:
    """The run directory's confirmed.csv (``Search.write``), by latency; [] without one."""
    path = RunDir(run_dir).confirmed_csv if run_dir else None
    if not path or not path.is_file():
        return []
    with open(path, newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: float(r["latency_ms"]))


def front_rows(d: StudyData, front: list[int], run_dir: Path | None) -> list[dict]:
    """search.trial_rows of the front; the re-measured latency and speedup from the run
    directory's pareto.csv where it has them (matched by trial number)."""
    rows = trial_rows([d.trials[i] for i in front], dense_reference(d.trials), noise=proxy_noise(d.trials))
    csv_path = RunDir(run_dir).pareto_csv if run_dir else None
    if csv_path and csv_path.is_file():
        with open(csv_path, newline="") as f:
            again = {int(r["trial"]): r for r in csv.DictReader(f) if r.get("remeasured_ms")}
        if again:
            for r in rows:
                hit = again.get(r["trial"], {})
                r["remeasured_ms"] = hit.get("remeasured_ms", "")
                r["remeasured_speedup"] = hit.get("remeasured_speedup", "")
    return rows


TABLE_COLUMNS = {
    "trial": "trial", "reference": "reference", "design": "design", "score": "score",
    "score_vs_dense_points": "vs dense (points)", "dev_score": "dev", "latency_ms": "latency ms",
    "speedup_vs_dense": "speedup vs dense", "remeasured_ms": "re-measured ms", "remeasured_speedup": "re-measured speedup",
    "gflops": "GFLOPs", "params_m": "params (M)", "latency_cv": "latency CV",
    "within_noise": "within seed noise of the next faster",
}


CONFIRMED_COLUMNS = {
    "trial": "trial", "reference": "reference", "design": "design", "latency_ms": "latency ms (re-measured)",
    "search_score": "search score", "confirmed_score": "confirmed score", "confirmed_by_seed": "by seed",
    "confirmed_vs_dense_points": "vs dense (points)", "mde_points": "MDE (points)", "verdict": "verdict",
    "dev_vs_dense_points": "dev vs dense (points)", "confirmed_front": "on the confirmed front",
}


def table_html(rows: list[dict], columns: dict[str, str] = TABLE_COLUMNS, table_id: str = "pareto-table") -> str:
    cols = [c for c in columns if rows and c in rows[0]]
    head = "".join(f"<th>{html.escape(columns[c])}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;text-align:right}} td:nth-child(3){{text-align:left;font-family:monospace;white-space:nowrap}}
.figure{{margin:1.5em 0}} .note{{color:#555}}</style>
<script type="text/javascript">{plotlyjs}</script></head>
<body><h1>{title}</h1><p class="note">{notes}</p>
{figures}
<h2>Pareto front</h2><p class="note">{table_note}</p>
{table}
{confirmed}
</body></html>
"""


@dataclass
class Report:
    html: Path
    pngs: list[Path]
    front: list[TrialRecord]
    rows: list[dict]
    hypervolume: list[float]
    reference_point: tuple[float, float]
    seconds: float
    notes: list[str] = field(default_factory=list)  # e.g. why no PNGs were written


def write_report(target: str, study: str | None = None, out: str | Path | None = None, png: bool = True) -> Report:
    """Write report.html and one PNG per figure for the study at ``target`` (a run directory or
    a storage URL) into ``out`` (default: the run directory; required for a storage URL)."""
    t0 = time.perf_counter()
    loc = locate(target, study)
    out_dir = Path(out) if out is not None else loc.run_dir
    if out_dir is None:
        raise RunError("a storage URL needs --out DIR (where to write the report)")
    out_dir.mkdir(parents=True, exist_ok=True)
    d = StudyData.of(load_study(loc))
    front = d.front()
    ref = d.reference_point()
    hv = d.hypervolume(ref)
    imp = importances(d.study, len(d.trials))
    figures = {
        "pareto_front": fig_pareto(d, front),
        "hypervolume": fig_hypervolume(d, hv, ref),
        "grouping_heatmap": fig_grouping(d, front),
        "flops_vs_latency": fig_scatter(d, d.flops / 1e9, d.ms, "GFLOPs (target scale)", "latency (ms)",
                                        "FLOPs vs measured latency (FLOPs are not latency)"),
        "params_vs_score": fig_scatter(d, d.params / 1e6, d.score, "params (M, target scale)", d.score_name,
                                       "Params vs proxy score"),
        "importances": fig_importances(imp, len(d.trials)),
        "reference_latency": fig_reference_latency(d),
        "confirmed_front": fig_confirmed_front(confirmed := confirmed_of(loc.run_dir)),
        "search_vs_confirmed": fig_search_vs_confirmed(confirmed),
    }
    figures = {name: fig for name, fig in figures.items() if fig is not None}
    for fig in figures.values():
        fig.update_layout(template="plotly_white", margin=dict(t=70))
    rows = front_rows(d, front, loc.run_dir)
    counts = ", ".join(f"{n} {s}" for s, n in d.counts.items() if n)
    title = f"arch_search report: study {loc.study_name}"
    notes = (f"Storage {html.escape(shown(loc.url))}; {counts}. Objectives: {html.escape(d.score_name)} (maximise; the search's score on a "
             "held-out slice of train) and latency in ms (minimise; median, target scale, as measured during the search). "
             "The front and hypervolume cover finished, feasible trials; a trial that reused an earlier result "
             "(same design) is counted once.")
    page = PAGE.format(
        title=html.escape(title), notes=notes, plotlyjs=get_plotlyjs(),
        figures="\n".join(
            f'<div class="figure">{fig.to_html(full_html=False, include_plotlyjs=False, div_id=name)}</div>'
            for name, fig in figures.items()),
        table_note="speedup vs dense: the dense reference's latency over the design's, both as measured in the search"
                   + ("; re-measured: from pareto.csv, all interleaved with the dense reference at the end of the run"
                      if rows and "remeasured_ms" in rows[0] else ""),
        table=table_html(rows),
        confirmed=("<h2>Confirmed designs</h2><p class=\"note\">re-scored by the confirmation proxy with paired seeds "
                   "(confirmed.csv): the difference to dense with its minimum detectable effect (MDE) and verdict</p>"
                   + table_html(confirmed, CONFIRMED_COLUMNS, "confirmed-table")) if confirmed else "",
    )
    html_path = out_dir / "report.html"
    html_path.write_text(page, encoding="utf-8")
    pngs = [out_dir / f"{name}.png" for name in figures] if png else []
    notes = []
    if pngs and (skipped := write_pngs(list(figures.values()), pngs)):
        pngs, notes = [], [skipped]
    return Report(html_path, pngs, [d.trials[i] for i in front], rows, hv, ref, time.perf_counter() - t0, notes)

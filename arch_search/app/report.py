"""The report of a search: one self-contained HTML page (plotly.js inlined once) and a PNG per
figure, read from the study's storage (and the run directory's pareto.csv, if any).

Figures: the Pareto front (proxy score vs latency, references marked), hypervolume over
trials, the grouping pattern of the Pareto designs, FLOPs vs latency and params vs score,
parameter importances per objective and, when the trials carry it, the dense reference's
latency over the run (drift); for a run directory with a confirmation (confirmed.csv), the
confirmed front (each seed's score and their mean against latency) and the search's score
against the confirmed one; then the front as a table with speedup vs dense, and the confirmed
designs as a second table.
Records, front and hypervolume, rows and rank correlations come from ``study.record``, ``study.front``,
``study.run_tables`` and ``arch_search.stats`` (this module only draws them and writes the page).
Importances: PED-ANOVA, Watanabe et al., 2023 (Optuna's ``PedAnovaImportanceEvaluator``). PNGs: plotly through kaleido,
which drives a Chrome/Chromium already installed (e.g. Debian's ``chromium``); none is downloaded,
and without one the report is the HTML alone (``Report.notes`` says so).
"""

from __future__ import annotations

import csv
import html
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from arch_search.stats import kendall_tau, spearman
from arch_search.study.front import front as pareto_front, hypervolume_history
from arch_search.study.record import TrialRecord, dense_reference, proxy_noise, records
from arch_search.study.run_tables import trial_rows
from arch_search.study.run_dir import RunDir
from arch_search.study.storage import RunError, load_study, locate, shown
from arch_search.design.spec import PROJECTIONS, SHORT_NAMES, ArchSpec, Reference, shuffles

REFERENCE_LABELS = {Reference.DENSE: "dense (BERT-base)", Reference.SQUEEZEBERT: "SqueezeBERT"}
FIGURES = ("pareto_front", "hypervolume", "grouping_heatmap", "flops_vs_latency", "params_vs_score", "importances",
           "reference_latency",  # only for studies whose trials carry reference_ms
           "confirmed_front", "search_vs_confirmed")  # only for a run directory with confirmed.csv
MIN_TRIALS_FOR_IMPORTANCE = 10


# ---- the data of one study --------------------------------------------------------------------


@dataclass
class StudyData:
    """Finished trials of a study as arrays. ``design`` marks the trials that evaluated a design
    (not the ones that reused an earlier trial's result); ``feasible`` are those within the
    search's constraints, which the front and hypervolume are computed over (as Optuna does)."""

    study: optuna.Study
    trials: list[TrialRecord]  # COMPLETE, with values, by trial number
    score: np.ndarray  # objective 0, the proxy's score
    ms: np.ndarray
    flops: np.ndarray
    params: np.ndarray
    design: np.ndarray  # bool: not a duplicate_of another trial
    feasible: np.ndarray  # bool
    counts: dict[str, int] = field(default_factory=dict)  # trials per state

    @classmethod
    def of(cls, study: optuna.Study) -> StudyData:
        every = records(study.get_trials(deepcopy=False))
        done = sorted((r for r in every if r.finished), key=lambda r: r.number)
        if not done:
            raise RunError(f"study {study.study_name!r} has no finished trial yet")
        nan = math.nan
        return cls(
            study=study,
            trials=done,
            score=np.array([r.score for r in done], float),
            ms=np.array([r.latency_ms for r in done], float),
            flops=np.array([nan if r.flops is None else r.flops for r in done], float),
            params=np.array([nan if r.params is None else r.params for r in done], float),
            design=np.array([r.evaluated for r in done]),
            feasible=np.array([r.feasible for r in done]),
            counts={s.name.lower(): sum(r.state == s.name for r in every) for s in optuna.trial.TrialState},
        )

    @property
    def score_name(self) -> str:
        """What the score is, for axis labels: ``proxy score: gold log-likelihood``, ``proxy score: accuracy``, ..."""
        metric = next((r.proxy_metric for r in self.trials if r.proxy_metric), None)
        return "proxy score" + (f": {metric.replace('log_likelihood', 'gold log-likelihood').replace('_', ' ')}" if metric else "")

    def front(self) -> list[int]:
        """Indices (into ``trials``) of ``pareto_front``: distinct feasible designs, by latency."""
        index = {r.number: i for i, r in enumerate(self.trials)}
        return [index[r.number] for r in pareto_front(self.trials)]

    def reference_point(self) -> tuple[float, float]:
        """(score, latency ms): the worst score and the worst latency of the finished
        feasible trials, i.e. the study's nadir; every design but the worst adds volume."""
        ok = self.feasible if self.feasible.any() else np.ones_like(self.feasible)
        return float(self.score[ok].min()), float(self.ms[ok].max())

    def hypervolume(self, ref: tuple[float, float]) -> list[float]:
        return hypervolume_history(list(zip(self.score[self.feasible], self.ms[self.feasible])), ref)

    def label(self, i: int) -> str:
        r = self.trials[i]
        return f"#{r.number}" + (f" {REFERENCE_LABELS.get(r.reference, r.reference)}" if r.reference else "")


# ---- figures ----------------------------------------------------------------------------------


def _hover(d: StudyData, idx) -> list[str]:
    out = []
    for i in idx:
        out.append(f"{d.label(i)}<br>{d.trials[i].summary}<br>score {d.score[i]:.4f}, {d.ms[i]:.1f} ms, "
                   f"{d.flops[i] / 1e9:.2f} GFLOPs, {d.params[i] / 1e6:.1f}M params")
    return out


def fig_pareto(d: StudyData, front: list[int]) -> go.Figure:
    fig = go.Figure()
    rest = np.flatnonzero(d.design & d.feasible)
    fig.add_trace(go.Scatter(x=d.ms[rest], y=d.score[rest], mode="markers", name="trials",
                             marker=dict(size=5 if len(rest) > 300 else 9, color="rgba(99,110,250,0.45)"), hovertext=_hover(d, rest), hoverinfo="text"))
    infeasible = np.flatnonzero(d.design & ~d.feasible)
    if len(infeasible):
        fig.add_trace(go.Scatter(x=d.ms[infeasible], y=d.score[infeasible], mode="markers", name="infeasible (constraints)",
                                 marker=dict(size=5, color="rgba(150,150,150,0.5)", symbol="x"),
                                 hovertext=_hover(d, infeasible), hoverinfo="text"))
    noise = proxy_noise(d.trials)  # the proxy's seed noise, as error bars on the front
    fig.add_trace(go.Scatter(x=d.ms[front], y=d.score[front], mode="lines+markers", line_shape="hv", name="Pareto front",
                             line=dict(color="#EF553B", width=2), marker=dict(size=8, color="#EF553B"),
                             error_y=dict(type="constant", value=noise.sd, visible=True) if noise else None,
                             hovertext=_hover(d, front), hoverinfo="text"))
    for i, r in enumerate(d.trials):
        ref = r.reference
        if ref and d.design[i]:
            fig.add_trace(go.Scatter(
                x=[d.ms[i]], y=[d.score[i]], mode="markers+text", name=REFERENCE_LABELS.get(ref, ref),
                text=[REFERENCE_LABELS.get(ref, ref)], textposition="top center",
                marker=dict(size=14, symbol="star" if ref == Reference.DENSE else "diamond", color="#00CC96",
                            line=dict(color="black", width=1)),
                hovertext=_hover(d, [i]), hoverinfo="text"))
    noted = (f"<br><sup>error bars: the proxy's seed noise, sd {noise.sd:.4f} ({noise.designs} references scored with "
             "two seeds)</sup>") if noise else ""
    fig.update_layout(title=f"Pareto front: proxy score vs measured latency ({len(front)} designs on the front, "
                            f"{int((d.design & d.feasible).sum())} feasible designs){noted}",
                      xaxis_title="latency (ms, median, target scale)", yaxis_title=f"{d.score_name} (held-out slice of train)")
    return fig


def fig_hypervolume(d: StudyData, hv: list[float], ref: tuple[float, float]) -> go.Figure:
    numbers = [t.number for t, ok in zip(d.trials, d.feasible) if ok]
    fig = go.Figure(go.Scatter(x=numbers, y=hv, mode="lines", line_shape="hv", name="hypervolume"))
    fig.update_layout(
        title=f"Hypervolume over trials (maximise the score, minimise latency)<br><sup>reference point: "
              f"score {ref[0]:.4f}, latency {ref[1]:.1f} ms (the study's worst of each)</sup>",
        xaxis_title="trial number", yaxis_title="hypervolume (score x ms above the reference point)")
    return fig


def fig_grouping(d: StudyData, front: list[int]) -> go.Figure:
    specs = [ArchSpec.from_yaml(d.trials[i].spec) if d.trials[i].spec else None for i in front]
    layers = max((s.layers for s in specs if s), default=0)
    columns = [f"L{layer} {SHORT_NAMES[p]}" for layer in range(layers) for p in PROJECTIONS]
    z, text = [], []
    for s in specs:
        row, hover = [], []
        for layer in range(layers):
            for p in PROJECTIONS:
                if s is None or layer >= s.layers:
                    row.append(None)
                    hover.append("-")
                else:
                    g, shuffled = s.groups[p][layer], shuffles(s.groups[p][layer], s.shuffle[p][layer])
                    row.append(math.log2(g))
                    hover.append(f"{g}" + (" + shuffle" if shuffled else ""))
        z.append(row)
        text.append(hover)
    top = max((v for row in z for v in row if v is not None), default=0)
    ticks = list(range(0, int(top) + 1))
    fig = go.Figure(go.Heatmap(
        z=z, x=columns, y=[d.label(i) for i in front], text=text, colorscale="Viridis", zmin=0, zmax=max(top, 1),
        colorbar=dict(title="groups", tickvals=ticks, ticktext=[str(2 ** k) for k in ticks]),
        hovertemplate="%{y}<br>%{x}: groups %{text}<extra></extra>", xgap=1, ygap=1))
    fig.update_layout(title="Grouping of the Pareto designs (colour: groups, log2 scale), fastest at the top",
                      xaxis_title="layer and projection", yaxis=dict(autorange="reversed", type="category"),
                      xaxis=dict(type="category", tickangle=-90, tickmode="array", tickvals=columns, ticktext=columns,
                                 tickfont=dict(size=9 if len(columns) > 36 else 12)),
                      height=max(350, 140 + 24 * len(front)))
    return fig


def fig_scatter(d: StudyData, x, y, xtitle: str, ytitle: str, what: str) -> go.Figure:
    idx = np.flatnonzero(d.design & np.isfinite(x) & np.isfinite(y))
    rho = spearman(x[idx], y[idx])
    fig = go.Figure(go.Scatter(x=x[idx], y=y[idx], mode="markers", marker=dict(size=5 if len(idx) > 300 else 9, color="rgba(99,110,250,0.6)"),
                               hovertext=_hover(d, idx), hoverinfo="text", name="designs"))
    fig.update_layout(title=f"{what}: Spearman rank correlation {rho:+.3f} over {len(idx)} designs",
                      xaxis_title=xtitle, yaxis_title=ytitle)
    return fig


def importances(study: optuna.Study, n: int) -> dict[str, dict[str, float]]:
    """{objective: {param: importance}} by PED-ANOVA (Optuna's PedAnovaImportanceEvaluator,
    top-10% quantile vs all trials; fast on 10k trials). The score is negated (it assumes minimisation)."""
    if n < MIN_TRIALS_FOR_IMPORTANCE:
        return {}
    evaluator = optuna.importance.PedAnovaImportanceEvaluator()
    targets = {"proxy score": lambda t: -t.values[0], "latency ms": lambda t: t.values[1]}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental API, few-trials warnings
        for name, target in targets.items():
            out[name] = optuna.importance.get_param_importances(study, evaluator=evaluator, target=target)
    return out


def fig_importances(imp: dict[str, dict[str, float]], n: int) -> go.Figure:
    fig = go.Figure()
    first = next(iter(imp.values()), {})
    params = sorted({p for v in imp.values() for p in v}, key=lambda p: first.get(p, 0.0))  # most important on top
    for name, values in imp.items():
        fig.add_trace(go.Bar(y=params, x=[values.get(p, 0.0) for p in params], orientation="h", name=name))
    note = (f": needs at least {MIN_TRIALS_FOR_IMPORTANCE}" if not imp else
            ": under 50, so under 5 in the top 10%; indicative only" if n < 50 else "")
    fig.update_layout(title=f"Parameter importances per objective<br><sup>PED-ANOVA (Optuna's PedAnovaImportanceEvaluator), "
                            f"top 10% vs all, {n} trials{note}</sup>",
                      xaxis_title="importance", barmode="group", height=max(350, 150 + 30 * len(params)))
    return fig


def fig_reference_latency(d: StudyData) -> go.Figure | None:
    """The dense reference's median (ms) measured interleaved with each trial's design
    (``reference_ms``) by trial number, and the study's anchor (``latency_anchor_ms``); None
    when no trial has ``reference_ms`` (studies from before drift correction)."""
    idx = [i for i, r in enumerate(d.trials) if r.reference_ms is not None]
    if not idx:
        return None
    ref_ms = [d.trials[i].reference_ms for i in idx]
    hover = [f"{d.label(i)}: reference {r:.1f} ms; design {d.trials[i].latency_raw_ms or math.nan:.1f} ms "
             f"measured, {d.ms[i]:.1f} ms scaled" for i, r in zip(idx, ref_ms)]
    fig = go.Figure(go.Scatter(x=[d.trials[i].number for i in idx], y=ref_ms, mode="lines+markers", name="dense reference",
                               marker=dict(size=5 if len(idx) > 300 else 8), hovertext=hover, hoverinfo="text"))
    anchor = d.study.user_attrs.get("latency_anchor_ms")
    if anchor is not None:
        fig.add_hline(y=anchor, line_dash="dash", line_color="#EF553B", annotation_text=f"anchor {anchor:.1f} ms")
    fig.update_layout(
        title="Reference latency over the run (drift of the machine)<br><sup>the dense reference's median, measured "
              "interleaved with each trial's design; the search's latency objective is each design's median "
              "scaled by anchor / reference_ms</sup>",
        xaxis_title="trial number", yaxis_title="dense reference latency (ms, median)")
    return fig


def confirmed_of(run_dir: Path | None) -> list[dict]:
    """The run directory's confirmed.csv (``Search.write``), by latency; [] without one."""
    path = RunDir(run_dir).confirmed_csv if run_dir else None
    if not path or not path.is_file():
        return []
    with open(path, newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: float(r["latency_ms"]))


def _confirmed_label(r: dict) -> str:
    return f"#{r['trial']}" + (f" {REFERENCE_LABELS.get(r['reference'], r['reference'])}" if r["reference"] else "")


def fig_confirmed_front(rows: list[dict]) -> go.Figure | None:
    """Each confirmed design: every seed's score (small dots) and their mean against its
    re-measured latency; the front on the confirmed score as a line; references marked."""
    if not rows:
        return None
    ms = [float(r["latency_ms"]) for r in rows]
    mean = [float(r["confirmed_score"]) for r in rows]
    hover = [f"{_confirmed_label(r)}<br>{r['design']}<br>confirmed {r['confirmed_score']} (seeds {r['confirmed_by_seed']}), "
             f"search {r['search_score']}<br>vs dense {r['confirmed_vs_dense_points']} points (MDE {r['mde_points']}): "
             f"{r['verdict']}" for r in rows]
    seeds_x = [m for m, r in zip(ms, rows) for _ in r["confirmed_by_seed"].split()]
    seeds_y = [float(v) for r in rows for v in r["confirmed_by_seed"].split()]
    fig = go.Figure(go.Scatter(x=seeds_x, y=seeds_y, mode="markers", name="one seed",
                               marker=dict(size=6, color="rgba(99,110,250,0.5)"), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=ms, y=mean, mode="markers+text", name="confirmed (mean of the seeds)",
                             text=[_confirmed_label(r) for r in rows], textposition="top center",
                             marker=dict(size=10, color="#636EFA",
                                         symbol=["star" if r["reference"] == Reference.DENSE else "diamond" if r["reference"]
                                                 else "circle" for r in rows]),
                             hovertext=hover, hoverinfo="text"))
    front = [i for i, r in enumerate(rows) if r["confirmed_front"] == "True"]
    fig.add_trace(go.Scatter(x=[ms[i] for i in front], y=[mean[i] for i in front], mode="lines", line_shape="hv",
                             name="confirmed front", line=dict(color="#EF553B", width=2), hoverinfo="skip"))
    fig.update_layout(title=f"The confirmed front: {len(rows)} designs re-scored by the confirmation proxy "
                            f"({len(front)} on its front)<br><sup>dots: each seed; markers: their mean; latency "
                            "re-measured at the end of the run</sup>",
                      xaxis_title="latency (ms, median, re-measured)", yaxis_title="confirmed score (held-out slice of train)")
    return fig


def fig_search_vs_confirmed(rows: list[dict]) -> go.Figure | None:
    """The search proxy's score against the confirmation's, per confirmed design, with the
    Kendall tau between them."""
    if len(rows) < 2:
        return None
    x, y = [float(r["search_score"]) for r in rows], [float(r["confirmed_score"]) for r in rows]
    tau = kendall_tau(x, y)
    fig = go.Figure(go.Scatter(x=x, y=y, mode="markers+text", text=[_confirmed_label(r) for r in rows],
                               textposition="top center", marker=dict(size=10, color="#636EFA"),
                               hovertext=[r["design"] for r in rows], hoverinfo="text"))
    fig.update_layout(title=f"Search score vs confirmed score ({len(rows)} designs; Kendall tau {tau:.2f})"
                            "<br><sup>the designs the confirmation chose: the front's, both references and the best others"
                            "</sup>", xaxis_title="search proxy's score", yaxis_title="confirmed score (mean of the seeds)")
    return fig


# ---- the table and the page -------------------------------------------------------------------


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


def write_pngs(figures: list[go.Figure], paths: list[Path]) -> str | None:
    """Static images through kaleido (one headless Chrome/Chromium session for all). Returns
    None, or why no PNG was written: no Chrome/Chromium was found. Any other error raises."""
    from kaleido.errors import ChromeNotFoundError

    try:
        pio.write_images(figures, paths, width=1200, height=[max(600, f.layout.height or 0) for f in figures])
    except Exception as e:  # plotly re-raises kaleido's ChromeNotFoundError as a RuntimeError
        if not any(isinstance(x, ChromeNotFoundError) for x in (e, e.__cause__, e.__context__)):
            raise
        return ("PNGs skipped: no Chrome or Chromium found (Debian: apt-get install chromium; or set BROWSER_PATH "
                "to a Chrome/Chromium executable); report.html is complete")
    return None

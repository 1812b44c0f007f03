"""The report's figures: a study's finished trials as arrays (``StudyData``), the plotly figures
drawn from them, and their PNGs (``write_pngs``).

Figures: the Pareto front (proxy score vs latency, references marked), hypervolume over
trials, the grouping pattern of the Pareto designs, FLOPs vs latency and params vs score,
parameter importances per objective and, when the trials carry it, the dense reference's
latency over the run (drift); for a run with a confirmation (the rows of its confirmed.csv),
the confirmed front (each seed's score and their mean against latency) and the search's score
against the confirmed one.
Records, front and hypervolume and rank correlations come from ``study.record``, ``study.front``
and ``arch_search.stats`` (this module only draws them).
Importances: PED-ANOVA, Watanabe et al., 2023 (Optuna's ``PedAnovaImportanceEvaluator``). PNGs: plotly through kaleido,
which drives a Chrome/Chromium already installed (e.g. Debian's ``chromium``); none is downloaded,
and without one ``write_pngs`` says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import plotly.graph_objects as go
import plotly.io as pio

from arch_search.stats import kendall_tau, spearman
from arch_search.study.front import front as pareto_front, hypervolume_history
from arch_search.study.record import TrialRecord, proxy_noise, records
from arch_search.study.storage import RunError
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

"""Which projections should be grouped? SqueezeBERT (Iandola et al., 2020, Sec. 4) groups q, k,
v, FFN in and FFN out (G=4) but keeps the post-attention layer dense (G=1).

Fourteen designs at BERT-base dims: dense, all six grouped at G=4, each projection grouped
alone ("only p"), and all six grouped but one kept dense ("all but p"; all but post is
SqueezeBERT). Each is scored with the search's default proxy over 3 seeds and timed
interleaved with the others; per projection: accuracy change vs latency saved.

    python experiments/which_layers/run.py            # results.md, results.csv, which_layers.png
    python experiments/which_layers/run.py --quick    # smoke run (CI): writes nothing
"""

from __future__ import annotations

import math
from pathlib import Path

from plotly.subplots import make_subplots

from arch_search.app import lessons  # noqa: E402  (the experiments' shared helpers)
from arch_search.app.lessons import PROJECTIONS, SHORT  # noqa: E402

from arch_search import ArchSpec  # noqa: E402

HERE = Path(__file__).resolve().parent
G = 4
BASE = ArchSpec.preset("bert_base")
ONLY = {p: f"only {SHORT[p]}" for p in PROJECTIONS}
BUT = {p: f"all but {SHORT[p]}" + (" (SqueezeBERT)" if p == "post_attention" else "") for p in PROJECTIONS}


def grouped(*projections: str) -> ArchSpec:
    return BASE.replace(groups={p: G for p in projections})


ALL = f"all-{G}"
DESIGNS = {
    "dense": grouped(),
    ALL: grouped(*PROJECTIONS),
    **{ONLY[p]: grouped(p) for p in PROJECTIONS},
    **{BUT[p]: grouped(*(q for q in PROJECTIONS if q != p)) for p in PROJECTIONS},
}
assert DESIGNS[BUT["post_attention"]] == ArchSpec.preset("squeezebert")


def effects(scores, cmp) -> list[dict]:
    """Per projection: grouping it alone (vs dense) and keeping it dense among grouped (vs all-4).
    Accuracy deltas in points (mean, min, max over seeds); latency in ms of the medians."""
    ms = {name: lat.median_ms for name, lat in cmp.latencies.items()}
    out = []
    for p in PROJECTIONS:
        saved, kept = ms["dense"] - ms[ONLY[p]], ms[BUT[p]] - ms[ALL]
        alone = lessons.paired(scores[ONLY[p]], scores["dense"], "alone")
        keep = lessons.paired(scores[BUT[p]], scores[ALL], "keep")
        out.append({
            "projection": p, **alone,
            "alone_saved_ms": round(saved, 2), "alone_saved_fraction": round(saved / ms["dense"], 4),
            "alone_points_lost_per_10ms": round(-10 * alone["alone_heldout"] / saved, 3) if saved > 0 else math.nan,
            **keep,
            "keep_cost_ms": round(kept, 2), "keep_cost_fraction": round(kept / ms[ALL], 4),
            "keep_points_gained_per_10ms": round(10 * keep["keep_heldout"] / kept, 3) if kept > 0 else math.nan,
        })
    return out


def rank(effect_rows: list[dict], key: str, p: str = "post_attention") -> int:
    """1 = ``p`` has the largest ``key`` among the six projections (those with a NaN ``key``, no
    latency saved, rank last)."""
    order = sorted(effect_rows, key=lambda r: (math.isnan(r[key]), -r[key] if not math.isnan(r[key]) else 0))
    return 1 + [r["projection"] for r in order].index(p)


def spread(scores) -> float:
    """Seed noise: mean over designs of the max-min range of held-out accuracy (points)."""
    ranges = [s.stats()[2] - s.stats()[1] for s in scores.values()]
    return sum(ranges) / len(ranges)


def report(args, rows, scores, cmp, eff) -> list[str]:
    table = [{
        "projection": r["projection"], "alone": lessons.paired_text(r, "alone_heldout"),
        "alone_dev": lessons.paired_text(r, "alone_dev"),
        "saved": f"{r['alone_saved_ms']:.1f} ({100 * r['alone_saved_fraction']:.1f}%)",
        "per_ms": f"{r['alone_points_lost_per_10ms']:+.2f}",
        "keep": lessons.paired_text(r, "keep_heldout"), "keep_dev": lessons.paired_text(r, "keep_dev"),
        "kept": f"{r['keep_cost_ms']:.1f} ({100 * r['keep_cost_fraction']:.1f}%)",
        "gain_ms": f"{r['keep_points_gained_per_10ms']:+.2f}",
    } for r in eff]
    post = next(r for r in eff if r["projection"] == "post_attention")
    noise = spread(scores)
    lines = lessons.header("Which layers to group: one projection at a time", args, cmp, DESIGNS, rows, scores)
    lines += ["## Per projection", "",
              "*Grouped alone* = `only p` minus `dense`; *kept dense* = `all but p` minus `all-4` (the accuracy "
              "that keeping p dense buys back, and what it costs in latency). Accuracy deltas are held-out points, "
              "paired by seed: mean (min to max over seeds); latency from the interleaved medians.", "",
              *lessons.md_table(table, {
                  "projection": "projection", "alone": "grouped alone: held-out pts", "alone_dev": "dev pts",
                  "saved": "ms saved (of dense)", "per_ms": "pts lost per 10 ms saved",
                  "keep": "kept dense: held-out pts", "keep_dev": "dev pts", "kept": "ms added (of all-4)",
                  "gain_ms": "pts gained per 10 ms"}), "",
              "## Does grouping post-attention cost the most accuracy for the least latency?", "",
              f"- Points lost per ms saved when grouped alone: post_attention ranks {rank(eff, 'alone_points_lost_per_10ms')} "
              "of 6 (1 = the worst trade).",
              f"- Points bought back per ms when kept dense among grouped: post_attention ranks "
              f"{rank(eff, 'keep_points_gained_per_10ms')} of 6 (1 = the best use of latency).",
              f"- Grouping post alone: {lessons.paired_text(post, 'alone_heldout')} held-out points for "
              f"{post['alone_saved_ms']:.1f} ms saved; keeping it dense in all-4: "
              f"{lessons.paired_text(post, 'keep_heldout')} points for "
              f"{post['keep_cost_ms']:.1f} ms.",
              (f"- Seed noise: a design's held-out accuracy spans {noise:.1f} points (max-min over seeds, mean over "
               "designs); a paired delta whose seed range crosses 0 is not separable from noise." if len(args.seeds) > 1
               else "- Seed noise: **not measured (one seed)**; the deltas above are single runs."), ""]
    return lines


def figure(eff):
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "grouped alone (G=4) vs dense", "kept dense among all-4 (all but p) vs all-4"))
    labels = [SHORT[r["projection"]] for r in eff]
    fig.add_trace(lessons.errorbars(
        [r["alone_saved_ms"] for r in eff],
        [lessons.paired_stats(r, "alone_heldout") for r in eff],
        "grouped alone", labels), row=1, col=1)
    fig.add_trace(lessons.errorbars(
        [r["keep_cost_ms"] for r in eff],
        [lessons.paired_stats(r, "keep_heldout") for r in eff],
        "kept dense", labels), row=1, col=2)
    for col in (1, 2):
        fig.add_hline(y=0, line_dash="dot", line_color="grey", row=1, col=col)
    fig.update_xaxes(title_text="latency saved (ms, target scale)", row=1, col=1)
    fig.update_xaxes(title_text="latency added (ms, target scale)", row=1, col=2)
    fig.update_yaxes(title_text="held-out accuracy change (points; bars: seed min-max)", row=1, col=1)
    fig.update_yaxes(title_text="held-out accuracy change (points)", row=1, col=2)
    fig.update_layout(title="Which projection to group: accuracy vs latency per projection", showlegend=False)
    return fig


def main() -> None:
    args = lessons.parse(lessons.parser(__doc__))
    cmp, scores, rows = lessons.evaluate(DESIGNS, args)
    eff = effects(scores, cmp)
    lessons.write(HERE, args, rows, report(args, rows, scores, cmp, eff), figure(eff), "which_layers.png",
                  extra={"projections.csv": lessons.csv_text(eff)})


if __name__ == "__main__":
    main()

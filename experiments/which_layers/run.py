"""Which projections should be grouped? SqueezeBERT (Iandola et al., 2020, Sec. 4) groups q, k,
v, FFN in and FFN out (G=4) but keeps the post-attention layer dense (G=1).

Fourteen designs at BERT-base dims: dense, all six grouped at G=4, each projection grouped
alone ("only p"), and all six grouped but one kept dense ("all but p"; all but post is
SqueezeBERT). Each is scored with the compressed proxy over 3 paired seeds (``experiments.toolkit``) and
timed interleaved with the others; per projection: the accuracy change, its minimum detectable
effect, and the latency saved. The verdict: does keeping post dense among grouped layers
(SqueezeBERT vs all-4) buy back accuracy beyond the MDE, and does it buy more than keeping q, k or
v dense instead (the same latency)?

    python experiments/which_layers/run.py            # scores.csv (resumable), latency.csv, results.*, summary.json, PNG
    python experiments/which_layers/run.py --render   # the report again from scores.csv and latency.csv
    python experiments/which_layers/run.py --quick    # smoke run (CI): writes nothing
"""

from __future__ import annotations

import math
from pathlib import Path

from plotly.subplots import make_subplots

from arch_search import ArchSpec
from arch_search.design.spec import PROJECTIONS, SHORT_NAMES
from arch_search.tables import csv_text, md_table
from experiments import toolkit

HERE = Path(__file__).resolve().parent
G = 4
BASE = ArchSpec.preset("bert_base")
ONLY = {p: f"only {SHORT_NAMES[p]}" for p in PROJECTIONS}
BUT = {p: f"all but {SHORT_NAMES[p]}" + (" (SqueezeBERT)" if p == "post_attention" else "") for p in PROJECTIONS}


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


def effects(scores, latency) -> list[dict]:
    """Per projection: grouping it alone (vs dense) and keeping it dense among grouped (vs all-4).
    Accuracy deltas in points, paired by seed, each with its MDE; latency in ms of the medians."""
    ms = {name: lat["median_ms"] for name, lat in latency.items()}
    out = []
    for p in PROJECTIONS:
        saved, kept = ms["dense"] - ms[ONLY[p]], ms[BUT[p]] - ms[ALL]
        row = {"projection": p}
        for prefix, (a, b) in (("alone", (ONLY[p], "dense")), ("keep", (BUT[p], ALL))):
            for which in ("heldout", "dev"):
                d = toolkit.compare(scores, a, b, which)
                row |= {f"{prefix}_{which}": round(d.mean, 2), f"{prefix}_{which}_mde": round(d.mde, 2),
                        f"{prefix}_{which}_min": round(min(d.by_seed), 2), f"{prefix}_{which}_max": round(max(d.by_seed), 2)}
            if prefix == "alone":
                row |= {"alone_saved_ms": round(saved, 2), "alone_saved_fraction": round(saved / ms["dense"], 4),
                        "alone_points_lost_per_10ms": round(-10 * row["alone_heldout"] / saved, 3) if saved > 0 else math.nan}
            else:
                row |= {"keep_cost_ms": round(kept, 2), "keep_cost_fraction": round(kept / ms[ALL], 4),
                        "keep_points_gained_per_10ms": round(10 * row["keep_heldout"] / kept, 3) if kept > 0 else math.nan}
        out.append(row)
    return out


def rank(effect_rows: list[dict], key: str, p: str = "post_attention") -> int:
    """1 = ``p`` has the largest ``key`` among the six projections (those with a NaN ``key``, no
    latency saved, rank last)."""
    order = sorted(effect_rows, key=lambda r: (math.isnan(r[key]), -r[key] if not math.isnan(r[key]) else 0))
    return 1 + [r["projection"] for r in order].index(p)


SAME_MATMUL = ("q", "k", "v")  # the projections that cost what post-attention costs (one 768x768 matmul each)


def verdict(scores, same: tuple[str, ...] = SAME_MATMUL) -> tuple[str, object, object, dict]:
    """The claim in two parts. (a) A dense layer among grouped ones buys accuracy back: keeping
    post dense, SqueezeBERT - all-4 > MDE. (b) Post is the place for it: SqueezeBERT beats
    keeping q, k or v dense instead (same latency) by more than the MDE. *Reproduced* when both
    hold; *contradicted* when (a)'s opposite holds or one of q, k, v beats post beyond the MDE;
    else *not reproduced*. Returns the verdict, (a), grouping post alone (None without
    ``only post``), and (b) per projection of ``same``."""
    keep = toolkit.compare(scores, BUT["post_attention"], ALL)
    alone = toolkit.compare(scores, ONLY["post_attention"], "dense") if ONLY["post_attention"] in scores else None
    versus = {p: toolkit.compare(scores, BUT["post_attention"], BUT[p]) for p in same}
    parts = [keep.verdict(+1), *(d.verdict(+1) for d in versus.values())]
    word = ("contradicted" if "contradicted" in parts else "reproduced" if all(w == "reproduced" for w in parts)
            else "not reproduced")
    return word, keep, alone, versus


# the verdict at 4x the healing budget rests on (a) and on (b) against keeping q dense
AT_BUDGET = ("dense", BUT["post_attention"], ALL, BUT["q"])


def budget_verdict(scores) -> tuple[str, float]:
    word, keep, _, _ = verdict(scores, same=("q",))
    return word, keep.mde


def text(row, key: str) -> str:
    """``+1.2 ± MDE 0.8 (+0.4 to +2.0)``."""
    return f"{row[key]:+.2f} (MDE {row[key + '_mde']:.2f}; seeds {row[key + '_min']:+.1f} to {row[key + '_max']:+.1f})"


def report(args, rows, scores, latency, eff, check, teacher) -> list[str]:
    table = [{
        "projection": r["projection"], "alone": text(r, "alone_heldout"), "alone_dev": text(r, "alone_dev"),
        "saved": f"{r['alone_saved_ms']:.1f} ({100 * r['alone_saved_fraction']:.1f}%)",
        "per_ms": f"{r['alone_points_lost_per_10ms']:+.2f}",
        "keep": text(r, "keep_heldout"), "keep_dev": text(r, "keep_dev"),
        "kept": f"{r['keep_cost_ms']:.1f} ({100 * r['keep_cost_fraction']:.1f}%)",
        "gain_ms": f"{r['keep_points_gained_per_10ms']:+.2f}",
    } for r in eff]
    word, keep, alone, versus = verdict(scores)
    lines = toolkit.header("Which layers to group: one projection at a time", args, latency, DESIGNS, rows, scores, HERE)
    lines += ["## Verdict", "",
              "Claim (SqueezeBERT, Sec. 4): keep the post-attention layer dense to mix channels across groups; "
              "grouping it would cost the most accuracy for the least latency. The paper keeps groups (4,4,4,1,4,4).", "",
              f"**{word}**. (a) A dense layer among grouped ones buys accuracy back: keeping post dense (SqueezeBERT - "
              f"all-4) changes held-out accuracy by {keep.text()} points (per seed {', '.join(f'{d:+.2f}' for d in keep.by_seed)}): "
              f"{keep.verdict(+1)}. (b) Post is the place for it: SqueezeBERT minus keeping "
              + ", ".join(f"{p} dense instead {d.text()}" for p, d in versus.items())
              + f" points (the same latency, within a few ms): {'; '.join(d.verdict(+1) for d in versus.values())}.", "",
              f"- Grouping post alone (only post - dense): {alone.text()} points.",
              f"- Points bought back per 10 ms when kept dense: post_attention ranks {rank(eff, 'keep_points_gained_per_10ms')} "
              f"of 6; points lost per 10 ms saved when grouped alone: ranks {rank(eff, 'alone_points_lost_per_10ms')} of 6 "
              "(1 = the largest).", "",
              "## Per projection", "",
              "*Grouped alone* = `only p` minus `dense`; *kept dense* = `all but p` minus `all-4` (the accuracy "
              "that keeping p dense buys back, and what it costs in latency). Accuracy deltas in points, paired by "
              "seed: mean (MDE; per-seed range); latency from the interleaved medians.", "",
              *md_table(table, {
                  "projection": "projection", "alone": "grouped alone: held-out pts", "alone_dev": "dev pts",
                  "saved": "ms saved (of dense)", "per_ms": "pts lost per 10 ms saved",
                  "keep": "kept dense: held-out pts", "keep_dev": "dev pts", "kept": "ms added (of all-4)",
                  "gain_ms": "pts gained per 10 ms"}), ""]
    return lines + toolkit.budget_lines(check, word) + toolkit.teacher_lines(teacher, word)


def figure(eff):
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "grouped alone (G=4) vs dense", "kept dense among all-4 (all but p) vs all-4"))
    labels = [SHORT_NAMES[r["projection"]] for r in eff]
    fig.add_trace(toolkit.errorbars(
        [r["alone_saved_ms"] for r in eff],
        [(r["alone_heldout"], r["alone_heldout"] - r["alone_heldout_mde"], r["alone_heldout"] + r["alone_heldout_mde"]) for r in eff],
        "grouped alone", labels), row=1, col=1)
    fig.add_trace(toolkit.errorbars(
        [r["keep_cost_ms"] for r in eff],
        [(r["keep_heldout"], r["keep_heldout"] - r["keep_heldout_mde"], r["keep_heldout"] + r["keep_heldout_mde"]) for r in eff],
        "kept dense", labels), row=1, col=2)
    for col in (1, 2):
        fig.add_hline(y=0, line_dash="dot", line_color="grey", row=1, col=col)
    fig.update_xaxes(title_text="latency saved (ms, target scale)", row=1, col=1)
    fig.update_xaxes(title_text="latency added (ms, target scale)", row=1, col=2)
    fig.update_yaxes(title_text="held-out accuracy change (points; bars: +- MDE)", row=1, col=1)
    fig.update_yaxes(title_text="held-out accuracy change (points)", row=1, col=2)
    fig.update_layout(title="Which projection to group: accuracy vs latency per projection", showlegend=False)
    return fig


def main() -> None:
    args = toolkit.parse(toolkit.parser(__doc__))
    latency, scores, rows = toolkit.evaluate(DESIGNS, args, HERE, {n: DESIGNS[n] for n in AT_BUDGET})
    eff = effects(scores, latency)
    word, keep, alone, versus = verdict(scores)
    check = toolkit.at_budget({n: DESIGNS[n] for n in AT_BUDGET}, args, HERE, budget_verdict)
    teacher = toolkit.dense_as_teacher(scores, "dense", toolkit.teacher_scores(args, HERE), lambda s: verdict(s)[0],
                                       task=toolkit.config(args).task.name)
    summary = toolkit.summary(word, keep.mde, args, scores,
                              claim="keeping post-attention dense among grouped layers buys accuracy, more than keeping q, k or v",
                              keep_post_dense_verdict=keep.verdict(+1),
                              post_versus_keeping_dense={p: round(d.mean, 2) for p, d in versus.items()},
                              keep_post_dense_points=round(keep.mean, 2), group_post_alone_points=round(alone.mean, 2),
                              group_post_alone_mde_points=round(alone.mde, 2),
                              post_rank_gain_per_ms=rank(eff, "keep_points_gained_per_10ms"),
                              post_rank_loss_per_ms_saved=rank(eff, "alone_points_lost_per_10ms"),
                              verdict_at_4x=check, dense_as_teacher=teacher)
    toolkit.write(HERE, args, rows, report(args, rows, scores, latency, eff, check, teacher), figure(eff), "which_layers.png",
                  summary=summary, extra={"projections.csv": csv_text(eff)})


if __name__ == "__main__":
    main()

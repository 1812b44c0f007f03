"""Channel shuffle between stacked grouped layers (ShuffleNet, Zhang et al., 2018, Sec. 3.1).

Two grouped layers in a row without a shuffle form independent towers: output group i of the
second sees only input group i of the first. FFN in -> FFN out is such a stack. Designs at
BERT-base dims: dense; FFN in + FFN out at G in {4, 8, 16} with the shuffle off / on after
both grouped layers (``spec.replace(shuffle={"ffn_in": True, "ffn_out": True})``), attention
dense; and all six projections at G=4 with the shuffle off / on after each, where no dense
layer mixes channels between groups (ShuffleNet's case). Accuracy with the compressed proxy
(3 paired seeds, ``experiments.toolkit``) at equal FLOPs, and what the permutation costs in latency. The
verdict is on the all-six pair: does the shuffle buy accuracy beyond the MDE?

    python experiments/shuffle/run.py            # scores.csv (resumable), latency.csv, results.*, summary.json, PNG
    python experiments/shuffle/run.py --render   # the report again from scores.csv and latency.csv
    python experiments/shuffle/run.py --quick    # smoke run (CI): writes nothing
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from arch_search import ArchSpec
from arch_search.tables import csv_text, md_table
from experiments import toolkit

HERE = Path(__file__).resolve().parent
GROUPS = (4, 8, 16)
STACK = ("ffn_in", "ffn_out")
BASE = ArchSpec.preset("bert_base")
ALL_SIX = "all-4"  # every projection grouped: nothing but a shuffle mixes channels between groups
PAIRS = {**{f"ffn G={g}": (f"ffn G={g}", f"ffn G={g} + shuffle") for g in GROUPS}, ALL_SIX: (ALL_SIX, f"{ALL_SIX} + shuffle")}
DESIGNS = {"dense": BASE}
for g in GROUPS:
    plain, shuffled = PAIRS[f"ffn G={g}"]
    DESIGNS[plain] = BASE.replace(groups={p: g for p in STACK})
    DESIGNS[shuffled] = DESIGNS[plain].replace(shuffle={p: True for p in STACK})
DESIGNS[ALL_SIX] = BASE.replace(groups=4)
DESIGNS[f"{ALL_SIX} + shuffle"] = DESIGNS[ALL_SIX].replace(shuffle=True)


def pairs(scores, latency) -> list[dict]:
    """Per pair: shuffle on minus off, in held-out / dev points (paired by seed, with the MDE)
    and in ms."""
    out = []
    for label, (plain, shuffled) in PAIRS.items():
        off, on = latency[plain]["median_ms"], latency[shuffled]["median_ms"]
        row = {"pair": label, "heldout_off": round(scores[plain].stats()[0], 2), "heldout_on": round(scores[shuffled].stats()[0], 2)}
        for which in ("heldout", "dev"):
            d = toolkit.compare(scores, shuffled, plain, which)
            row |= {f"shuffle_{which}": round(d.mean, 2), f"shuffle_{which}_mde": round(d.mde, 2),
                    f"shuffle_{which}_min": round(min(d.by_seed), 2), f"shuffle_{which}_max": round(max(d.by_seed), 2),
                    f"verdict_{which}": d.verdict(+1)}
        out.append(row | {"ms_off": round(off, 2), "ms_on": round(on, 2), "shuffle_cost_ms": round(on - off, 2),
                          "shuffle_cost_pct": round(100 * (on - off) / off, 1)})
    return out


AT_BUDGET = ("dense", ALL_SIX, f"{ALL_SIX} + shuffle")  # the verdict at 4x the healing budget: where nothing else mixes


def budget_verdict(scores) -> tuple[str, float]:
    d = toolkit.compare(scores, f"{ALL_SIX} + shuffle", ALL_SIX)
    return d.verdict(+1), d.mde


def text(row, key: str) -> str:
    return f"{row[key]:+.2f} (MDE {row[key + '_mde']:.2f}; seeds {row[key + '_min']:+.1f} to {row[key + '_max']:+.1f})"


def report(args, rows, scores, latency, pair_rows, check, teacher) -> list[str]:
    shown = [{**r, "heldout_off": scores[PAIRS[r["pair"]][0]].text(), "heldout_on": scores[PAIRS[r["pair"]][1]].text(),
              "delta": text(r, "shuffle_heldout"), "dev": text(r, "shuffle_dev"),
              "cost": f"{r['shuffle_cost_ms']:+.1f} ms ({r['shuffle_cost_pct']:+.1f}%)"} for r in pair_rows]
    main_ = next(r for r in pair_rows if r["pair"] == ALL_SIX)
    lines = toolkit.header("Channel shuffle between stacked grouped layers", args, latency, DESIGNS, rows, scores, HERE)
    lines += ["## Verdict", "",
              "Claim (ShuffleNet, Zhang et al., 2018): a channel shuffle after a grouped layer lets the next grouped "
              "layer see every group, which helps accuracy at no FLOP cost. SqueezeBERT keeps post-attention dense "
              "instead, so its FFN towers are mixed once per block anyway.", "",
              f"- **{main_['verdict_heldout']}** where nothing else mixes channels (all six projections at G=4): "
              f"shuffle on - off = {text(main_, 'shuffle_heldout')} held-out points.",
              *[f"- FFN in/out at {r['pair'].split()[-1]} (attention dense): {text(r, 'shuffle_heldout')} points, "
                f"{r['verdict_heldout']}." for r in pair_rows if r["pair"] != ALL_SIX], "",
              "## Shuffle on vs off, per pair (same FLOPs and parameters)", "",
              "Deltas = shuffle on minus off, paired by seed: mean (MDE; per-seed range). Latency cost = the "
              "difference of the interleaved medians (in inference the shuffled layer writes its output and then "
              "permutes it into a new buffer, where the plain one writes in place).", "",
              *md_table(shown, {
                  "pair": "grouped", "heldout_off": "held-out % off", "heldout_on": "held-out % on",
                  "delta": "held-out pts", "dev": "dev pts", "ms_off": "ms off", "ms_on": "ms on",
                  "cost": "shuffle's latency cost"}), ""]
    return lines + toolkit.budget_lines(check, main_["verdict_heldout"]) + toolkit.teacher_lines(teacher, main_["verdict_heldout"])


def figure(rows, scores):
    fig = go.Figure()
    by = {r["design"]: r for r in rows}
    for label, names in (("shuffle off", [p for p, _ in PAIRS.values()]), ("shuffle on", [s for _, s in PAIRS.values()]),
                         ("dense", ["dense"])):
        fig.add_trace(toolkit.errorbars([by[n]["median_ms"] for n in names], [scores[n].stats() for n in names], label,
                                        [n.replace("ffn ", "").replace(" + shuffle", "") for n in names]))
    fig.update_layout(title="Channel shuffle on FFN in/out: proxy accuracy vs latency (target scale)",
                      xaxis_title="median latency, ms (BERT-base dims, seq 128, 1 thread)",
                      yaxis_title="held-out accuracy % (bars: seed min-max)")
    return fig


def main() -> None:
    args = toolkit.parse(toolkit.parser(__doc__))
    latency, scores, rows = toolkit.evaluate(DESIGNS, args, HERE, {n: DESIGNS[n] for n in AT_BUDGET})
    pair_rows = pairs(scores, latency)
    main_ = next(r for r in pair_rows if r["pair"] == ALL_SIX)
    check = toolkit.at_budget({n: DESIGNS[n] for n in AT_BUDGET}, args, HERE, budget_verdict)
    teacher = toolkit.dense_as_teacher(scores, "dense", toolkit.teacher_scores(args, HERE), lambda s: budget_verdict(s)[0],
                                       task=toolkit.config(args).task.name)
    summary = toolkit.summary(main_["verdict_heldout"], main_["shuffle_heldout_mde"], args, scores,
                              claim="a channel shuffle after grouped layers buys accuracy where nothing else mixes channels",
                              pairs={r["pair"]: {"points": r["shuffle_heldout"], "mde_points": r["shuffle_heldout_mde"],
                                                 "verdict": r["verdict_heldout"], "cost_ms": r["shuffle_cost_ms"]} for r in pair_rows},
                              verdict_at_4x=check, dense_as_teacher=teacher)
    toolkit.write(HERE, args, rows, report(args, rows, scores, latency, pair_rows, check, teacher), figure(rows, scores),
                  "shuffle.png",
                  summary=summary, extra={"pairs.csv": csv_text(pair_rows)})


if __name__ == "__main__":
    main()

"""Channel shuffle between stacked grouped layers (ShuffleNet, Zhang et al., 2018, Sec. 3.1).

Two grouped layers in a row without a shuffle form independent towers: output group i of the
second sees only input group i of the first. FFN in -> FFN out is such a stack. Designs at
BERT-base dims: dense, and FFN in + FFN out at G in {4, 8, 16} with the shuffle off / on after
both grouped layers (``spec.replace(shuffle={"ffn_in": True, "ffn_out": True})``); attention
stays dense. Accuracy (3 seeds) at equal FLOPs, and what the permutation costs in latency.

    python experiments/shuffle/run.py            # results.md, results.csv, shuffle.png
    python experiments/shuffle/run.py --quick    # smoke run (CI): writes nothing
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from arch_search.app import lessons  # noqa: E402  (the experiments' shared helpers)

from arch_search import ArchSpec  # noqa: E402

HERE = Path(__file__).resolve().parent
GROUPS = (4, 8, 16)
STACK = ("ffn_in", "ffn_out")
BASE = ArchSpec.preset("bert_base")
PAIRS = {g: (f"ffn G={g}", f"ffn G={g} + shuffle") for g in GROUPS}
DESIGNS = {"dense": BASE}
for g, (plain, shuffled) in PAIRS.items():
    DESIGNS[plain] = BASE.replace(groups={p: g for p in STACK})
    DESIGNS[shuffled] = DESIGNS[plain].replace(shuffle={p: True for p in STACK})


def pairs(scores, cmp) -> list[dict]:
    """Per G: shuffle on minus off, in held-out / dev points (paired by seed) and in ms."""
    out = []
    for g, (plain, shuffled) in PAIRS.items():
        off, on = cmp.latencies[plain].median_ms, cmp.latencies[shuffled].median_ms
        out.append({
            "groups": g, "heldout_off": round(scores[plain].stats()[0], 2), "heldout_on": round(scores[shuffled].stats()[0], 2),
            **lessons.paired(scores[shuffled], scores[plain], "shuffle"),
            "ms_off": round(off, 2), "ms_on": round(on, 2), "shuffle_cost_ms": round(on - off, 2),
            "shuffle_cost_pct": round(100 * (on - off) / off, 1),
        })
    return out


def report(args, rows, scores, cmp, pair_rows) -> list[str]:
    shown = [{**r, "heldout_off": scores[PAIRS[r["groups"]][0]].text(), "heldout_on": scores[PAIRS[r["groups"]][1]].text(),
              "delta": lessons.paired_text(r, "shuffle_heldout"), "dev": lessons.paired_text(r, "shuffle_dev"),
              "cost": f"{r['shuffle_cost_ms']:+.1f} ms ({r['shuffle_cost_pct']:+.1f}%)"} for r in pair_rows]
    lines = lessons.header("Channel shuffle between stacked grouped layers (FFN in -> FFN out)", args, cmp, DESIGNS, rows, scores)
    lines += ["## Shuffle on vs off, per G (same FLOPs and parameters)", "",
              "Deltas = shuffle on minus off, paired by seed: mean (min to max over seeds). Latency cost = the "
              "difference of the interleaved medians (in inference the shuffled layer writes its output and then "
              "permutes it into a new buffer, where the plain one writes in place).", "",
              *lessons.md_table(shown, {
                  "groups": "G (ffn in, out)", "heldout_off": "held-out % off", "heldout_on": "held-out % on",
                  "delta": "held-out pts", "dev": "dev pts", "ms_off": "ms off", "ms_on": "ms on",
                  "cost": "shuffle's latency cost"}), ""]
    return lines


def figure(rows, scores):
    fig = go.Figure()
    for label, names in (("shuffle off", [p for p, _ in PAIRS.values()]), ("shuffle on", [s for _, s in PAIRS.values()]),
                         ("dense", ["dense"])):
        by = {r["design"]: r for r in rows}
        fig.add_trace(lessons.errorbars([by[n]["median_ms"] for n in names], [scores[n].stats() for n in names], label,
                                        [n.replace("ffn ", "").replace(" + shuffle", "") for n in names]))
    fig.update_layout(title="Channel shuffle on FFN in/out: proxy accuracy vs latency (target scale)",
                      xaxis_title="median latency, ms (BERT-base dims, seq 128, 1 thread)",
                      yaxis_title="held-out accuracy % (bars: seed min-max)")
    return fig


def main() -> None:
    args = lessons.parse(lessons.parser(__doc__))
    cmp, scores, rows = lessons.evaluate(DESIGNS, args)
    pair_rows = pairs(scores, cmp)
    lessons.write(HERE, args, rows, report(args, rows, scores, cmp, pair_rows), figure(rows, scores), "shuffle.png",
                  extra={"pairs.csv": lessons.csv_text(pair_rows)})


if __name__ == "__main__":
    main()

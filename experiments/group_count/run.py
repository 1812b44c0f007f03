"""How many groups? Uniform G in {1, 2, 4, 8, 16} on all six projections of BERT-base.

SqueezeBERT (Iandola et al., 2020, Sec. 4) picked G=4; grouping cuts a projection's MACs by G,
but latency stops following FLOPs once the ops that grouping does not shrink (attention,
LayerNorm, GELU, embeddings, per-op overhead) dominate. Each design: accuracy with the
compressed proxy over 3 paired seeds (``experiments.toolkit``), interleaved latency, MACs/FLOPs; then
torch.profiler's top ops for G=1 vs G=16. The verdict: is G=4 the knee of the accuracy-latency
curve (the point farthest from the chord G=1 -> G=16, both axes scaled to [0, 1]), and where
does accuracy first fall below dense by more than the MDE?

    python experiments/group_count/run.py            # scores.csv (resumable), latency.csv, results.*, summary.json, PNG, profile.txt
    python experiments/group_count/run.py --render   # the report again from scores.csv, latency.csv and profile.txt
    python experiments/group_count/run.py --quick    # smoke run (CI): writes nothing
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from plotly.subplots import make_subplots

from arch_search import ArchSpec, build_model
from arch_search.measure.cost import MATMUL_OPS
from arch_search.measure.runtime import num_threads
from arch_search.tables import csv_text, md_table
from experiments import toolkit

HERE = Path(__file__).resolve().parent
GROUPS = (1, 2, 4, 8, 16)
DESIGNS = {f"G={g}": ArchSpec.preset("bert_base").replace(groups=g) for g in GROUPS}
PROFILED = ("G=1", "G=16")
# ops that carry the multiply-adds (cost.py's) and what they dispatch to on CPU
MATMUL_KERNELS = {op.split("::")[1] for op in MATMUL_OPS} | {
    "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_attention_math"}


def following(rows) -> list[dict]:
    """Per G: the FLOP reduction vs the measured speedup, the latency FLOPs alone would
    predict (dense ms x MACs ratio), and each doubling's cut in FLOPs vs in latency."""
    dense = rows[0]
    out = []
    for prev, r in zip([None, *rows[:-1]], rows):
        flop_ratio = dense["macs"] / r["macs"]
        predicted = dense["median_ms"] / flop_ratio
        out.append({
            "design": r["design"], "flop_reduction": round(flop_ratio, 3), "speedup": r["speedup"],
            "speedup_over_flop_reduction": round(r["speedup"] / flop_ratio, 3),
            "ms_if_latency_followed_flops": round(predicted, 2), "median_ms": r["median_ms"],
            "ms_above_flops_line": round(r["median_ms"] - predicted, 2),
            "step_flops_cut_pct": round(100 * (1 - r["macs"] / prev["macs"]), 1) if prev else "",
            "step_latency_cut_pct": round(100 * (1 - r["median_ms"] / prev["median_ms"]), 1) if prev else "",
        })
    return out


def profile(args, passes: int = 5, top: int = 12) -> str:
    """torch.profiler: self CPU time by op, G=1 vs G=16, at the target scale, with the latency
    protocol's batch / seq / threads; a summary per forward pass, then torch's table."""
    cfg = toolkit.config(args)
    ids = torch.randint(0, 30522, (cfg.batch, cfg.seq_len), generator=torch.Generator().manual_seed(0))
    lines = [f"torch.profiler over {passes} forward passes (after 3 warm-up), batch {cfg.batch}, seq {cfg.seq_len}, "
             f"{cfg.latency.threads} thread(s), torch.inference_mode. Written by `{toolkit.command()}`.", ""]
    with num_threads(cfg.latency.threads), torch.inference_mode():
        for name in PROFILED:
            model = build_model(toolkit.target(DESIGNS[name], args)).eval()
            for _ in range(3):
                model(input_ids=ids)
            with torch.profiler.profile() as prof:
                for _ in range(passes):
                    model(input_ids=ids)
            ops = prof.key_averages()
            ms = {e.key: e.self_cpu_time_total / passes / 1e3 for e in ops}  # self CPU ms per pass
            total = sum(ms.values())
            matmul = sum(t for key, t in ms.items() if key.split("::")[-1] in MATMUL_KERNELS)
            lines += [f"{name} ({DESIGNS[name].pattern()}): {total:.1f} ms per forward (profiled); "
                      f"matmul-class ops {matmul:.1f} ms ({100 * matmul / total:.0f}%), everything else "
                      f"{total - matmul:.1f} ms ({100 * (total - matmul) / total:.0f}%)",
                      f"(table: totals over the {passes} passes)",
                      ops.table(sort_by="self_cpu_time_total", row_limit=top), ""]
    return "\n".join(lines)


def knee(rows) -> str:
    """The design farthest from the chord between the first and last (latency, held-out accuracy)
    points, both axes scaled to [0, 1] (Kneedle, Satopaa et al., 2011): where the curve bends."""
    x = [r["median_ms"] for r in rows]
    y = [r["heldout_mean"] for r in rows]
    sx, sy = (max(x) - min(x)) or 1.0, (max(y) - min(y)) or 1.0
    pts = [((a - x[0]) / sx, (b - y[0]) / sy) for a, b in zip(x, y)]
    ex, ey = pts[-1]
    norm = math.hypot(ex, ey) or 1.0
    dist = [abs(ex * py - ey * px) / norm for px, py in pts]
    return rows[max(range(len(rows)), key=dist.__getitem__)]["design"]


def drops(scores) -> list[dict]:
    """Per G: held-out accuracy vs G=1 and vs the previous G, paired by seed, each with its MDE."""
    out, names = [], list(DESIGNS)
    for prev, name in zip([None, *names[:-1]], names):
        row = {"design": name}
        for label, base in (("vs_dense", names[0]), ("vs_previous", prev)):
            if base is None or base == name:
                row |= {f"{label}": "", f"{label}_mde": "", f"{label}_verdict": ""}
                continue
            d = toolkit.compare(scores, name, base)
            row |= {f"{label}": round(d.mean, 2), f"{label}_mde": round(d.mde, 2),
                    f"{label}_verdict": "falls" if d.mean < -d.mde else "rises" if d.mean > d.mde else "within noise"}
        out.append(row)
    return out


def verdict(rows, scores, drop) -> tuple[str, str, str]:
    """(verdict, the knee, the first G below dense by more than the MDE): *reproduced* when the
    knee is G=4; *contradicted* when it is elsewhere and G=4's accuracy differs from the knee's by
    more than the MDE; else *not reproduced*."""
    at = knee(rows)
    first = next((r["design"] for r in drop if r["vs_dense_verdict"] == "falls"), "none")
    if at == "G=4":
        return "reproduced", at, first
    d = toolkit.compare(scores, at, "G=4")
    return ("contradicted" if abs(d.mean) > d.mde else "not reproduced"), at, first


def knee_rule(latency):
    """The verdict's rule (``verdict``) on every G's scores at another budget, the same latencies."""
    def rule(scores) -> tuple[str, float]:
        rows = [{"design": n, "median_ms": latency[n]["median_ms"], "heldout_mean": scores[n].stats()[0]} for n in DESIGNS]
        return verdict(rows, scores, drops(scores))[0], toolkit.mde(scores)
    return rule


def report(args, rows, scores, latency, follow, prof, drop, check, teacher) -> list[str]:
    word, at, first = verdict(rows, scores, drop)
    lines = toolkit.header("How many groups: uniform G on all six projections", args, latency, DESIGNS, rows, scores, HERE)
    lines += ["## Verdict", "",
              "Claim (SqueezeBERT, Sec. 4): G=4 is the group count to choose: more groups cut FLOPs further, but "
              "accuracy falls and latency stops following FLOPs.", "",
              f"- **{word}**: the knee of held-out accuracy against latency is at {at} (the point farthest from the "
              "chord G=1 -> G=16, both axes scaled to [0, 1]).",
              f"- Accuracy first falls below dense by more than the MDE at: {first}.", "",
              *md_table([{**r, **{k: (f"{r[k]:+.2f} (MDE {r[k + '_mde']:.2f}), {r[k + '_verdict']}" if r[k] != "" else "—")
                                          for k in ("vs_dense", "vs_previous")}} for r in drop],
                                {"design": "design", "vs_dense": "held-out pts vs G=1", "vs_previous": "vs the previous G"}), "",
              "## Does latency follow FLOPs?", "",
              "FLOP reduction = MACs(G=1) / MACs(G); *ms if latency followed FLOPs* = median(G=1) / FLOP reduction; "
              "*step* = the change from the previous G (half as many groups).", "",
              *md_table(follow, {
                  "design": "design", "flop_reduction": "FLOP reduction", "speedup": "speedup",
                  "speedup_over_flop_reduction": "speedup / FLOP reduction", "median_ms": "median ms",
                  "ms_if_latency_followed_flops": "ms if latency followed FLOPs", "ms_above_flops_line": "ms above that",
                  "step_flops_cut_pct": "step: FLOPs cut %", "step_latency_cut_pct": "step: latency cut %"}), "",
              "## Where the time goes (G=1 vs G=16; full listing in `profile.txt`)", "",
              *[f"- {line}" for line in prof.splitlines() if line.startswith("G=")], ""]
    word = verdict(rows, scores, drop)[0]
    return lines + toolkit.budget_lines(check, word) + toolkit.teacher_lines(teacher, word, dense="G=1")


def figure(rows, scores, follow):
    fig = make_subplots(rows=1, cols=2, subplot_titles=("speedup vs dense (target scale)", "proxy accuracy"))
    gs = list(GROUPS)
    fig.add_scatter(x=gs, y=[f["flop_reduction"] for f in follow], name="FLOP reduction (ideal)",
                    mode="lines+markers", line_dash="dash", row=1, col=1)
    fig.add_scatter(x=gs, y=[r["speedup"] for r in rows], name="measured speedup", mode="lines+markers", row=1, col=1)
    for which in ("heldout", "dev"):
        fig.add_trace(toolkit.errorbars(gs, [scores[r["design"]].stats(which) for r in rows],
                                        f"{which} accuracy (bars: seed min-max)"), row=1, col=2)
    fig.update_xaxes(type="log", tickvals=gs, title_text="groups G (all six projections)")
    fig.update_yaxes(title_text="x faster than G=1", row=1, col=1)
    fig.update_yaxes(title_text="accuracy %", row=1, col=2)
    fig.update_layout(title="Group count: FLOPs, latency and accuracy")
    return fig


def main() -> None:
    args = toolkit.parse(toolkit.parser(__doc__))
    toolkit.scores_only(DESIGNS, args, HERE, DESIGNS)  # every G at the checked budget too: the knee needs the curve
    latency = toolkit.timed(DESIGNS, args, HERE)  # timing and profiling first, on a quiet machine
    prof = (HERE / "profile.txt").read_text().removesuffix("\n") if args.render else profile(args)
    scores = toolkit.stored_scores(DESIGNS, args, HERE)
    rows = toolkit.rows(DESIGNS, scores, latency, toolkit.costs(DESIGNS, args))
    follow, drop = following(rows), drops(scores)
    word, at, first = verdict(rows, scores, drop)
    check = toolkit.at_budget(DESIGNS, args, HERE, knee_rule(latency))  # every G: the knee needs the whole curve
    teacher = toolkit.dense_as_teacher(scores, "G=1", toolkit.teacher_scores(args, HERE), lambda s: knee_rule(latency)(s)[0],
                                       task=toolkit.config(args).task.name)
    summary = toolkit.summary(word, toolkit.mde(scores), args, scores,
                              claim="G=4 is the knee of accuracy against latency", knee=at, first_below_dense=first,
                              drops={r["design"]: r["vs_dense"] for r in drop if r["vs_dense"] != ""}, verdict_at_4x=check,
                              dense_as_teacher=teacher)
    toolkit.write(HERE, args, rows, report(args, rows, scores, latency, follow, prof, drop, check, teacher),
                  figure(rows, scores, follow),
                  "group_count.png", summary=summary, extra={"profile.txt": prof + "\n", "drops.csv": csv_text(drop)})


if __name__ == "__main__":
    main()

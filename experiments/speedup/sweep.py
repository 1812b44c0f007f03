"""``--sweep``: does the speedup hold over sequence length and threads? The four models
interleaved (torch) at each (threads, seq) cell, against the FLOP ratio at that length."""

from __future__ import annotations

from arch_search import ArchSpec, closed_form_macs, compare_latency
from arch_search.tables import csv_text
from experiments import toolkit
from experiments.speedup.models import HERE, latency_protocol

SWEEP_SEQS, SWEEP_THREADS, SWEEP_ROUNDS = (32, 64, 128, 256, 512), (1, 2), 30


def run(models, args, spec_bert: ArchSpec, spec_sq: ArchSpec) -> None:
    """The four models interleaved (torch) at each (threads, seq): one ``compare_latency`` call
    per cell; writes sweep.md, sweep.csv and sweep.png beside this file (prints under --quick)."""
    seqs = (16, 32) if args.quick else SWEEP_SEQS
    rows = []
    for threads in SWEEP_THREADS:
        for seq in seqs:
            cmp = compare_latency(models, latency_protocol(args).replace(seq_len=seq, threads=threads),
                                  baseline="ours BERT-base")
            macs = closed_form_macs(spec_bert, seq) / closed_form_macs(spec_sq, seq)
            lat = cmp.latencies
            row = {"threads": threads, "seq": seq, **{f"{n} ms": round(lat[n].median_ms, 2) for n in models},
                   "ours speedup": round(cmp.ratio("ours BERT-base", "ours SqueezeBERT"), 3),
                   "HF speedup": round(cmp.ratio("HF BertModel", "HF SqueezeBertModel"), 3),
                   "ours SQ vs HF SQ": round(cmp.ratio("HF SqueezeBertModel", "ours SqueezeBERT"), 3),
                   "FLOP ratio": round(macs, 3), "max CV": round(max(v.cv for v in lat.values()), 3)}
            rows.append(row)
            print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    env = next(iter(cmp.latencies.values())).env
    table = csv_text(rows)
    cmd = toolkit.command()
    lines = [
        "# Speedup sweep: sequence length x threads", "",
        f"Command: `{cmd}` (from the repository root)", "",
        f"Machine: {env.cpu}, {env.cores} cores, {env.machine}, torch {env.torch}, python {env.python}", "",
        f"Protocol: batch 1, {args.layers} layers, torch, `torch.inference_mode`; per (threads, seq) cell the four models "
        f"interleaved in one `compare_latency` call, {args.warmup} warm-up passes then {args.rounds} rounds; medians. "
        "Speedup = median(BERT-base) / median(SqueezeBERT); FLOP ratio = encoder MACs BERT-base / SqueezeBERT at "
        "that seq (closed form, equal to fvcore's). Paper: 4.3x measured on a Pixel 3 at batch 1, seq 128; FLOP ratio "
        "22.5 / 7.42 = 3.03x at seq 128.", "",
        "| threads | seq | " + " | ".join(f"{n} ms" for n in models) + " | ours speedup | HF speedup | ours SQ vs HF SQ | FLOP ratio | max CV |",
        "| ---: | ---: |" + " ---: |" * (len(models) + 5),
    ]
    for r in rows:
        lines.append(f"| {r['threads']} | {r['seq']} | " + " | ".join(f"{r[n + ' ms']:.1f}" for n in models)
                     + f" | {r['ours speedup']:.2f}x | {r['HF speedup']:.2f}x | {r['ours SQ vs HF SQ']:.2f}x | "
                     f"{r['FLOP ratio']:.2f}x | {r['max CV']:.3f} |")
    import plotly.graph_objects as go  # only the sweep draws (the GPU machine runs the rest without plotly)

    fig = go.Figure()
    for threads in SWEEP_THREADS:
        cells = [r for r in rows if r["threads"] == threads]
        for key, dash in (("ours speedup", "solid"), ("HF speedup", "dot")):
            fig.add_scatter(x=[r["seq"] for r in cells], y=[r[key] for r in cells], name=f"{key}, {threads} thread(s)",
                            mode="lines+markers", line=dict(dash=dash))
    fig.add_scatter(x=[r["seq"] for r in rows if r["threads"] == 1], y=[r["FLOP ratio"] for r in rows if r["threads"] == 1],
                    name="FLOP ratio", mode="lines", line=dict(color="gray", dash="dash"))
    fig.update_layout(title="SqueezeBERT vs BERT-base speedup by sequence length (batch 1, CPU)", xaxis_type="log",
                      xaxis_title="sequence length", yaxis_title="speedup (median BERT-base / median SqueezeBERT)")
    if args.quick:
        toolkit.show({"sweep.md": "\n".join(lines) + "\n", "sweep.csv": table})
        print(f"--- sweep.png: {len(fig.data)} traces (not written under --quick) ---")
        return
    (HERE / "sweep.md").write_text("\n".join(lines) + "\n")
    (HERE / "sweep.csv").write_text(table)
    fig.write_image(HERE / "sweep.png", width=1100, height=600)
    print(f"wrote sweep.md, sweep.csv, sweep.png in {HERE}")

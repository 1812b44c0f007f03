"""``--device cuda``: does grouping keep its speedup on a GPU? Dense vs the SqueezeBERT pattern,
ours and HF's, at batch 1 and 32, fp32 and bf16, each pass timed by CUDA events; ``--compile``:
ours ``torch.compile``'d too."""

from __future__ import annotations

import torch
from arch_search import ArchSpec, closed_form_macs, compare_latency
from experiments import toolkit
from experiments.speedup.models import PAIRS, emit, latency_protocol

GPU_BATCHES = (1, 32)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's modes (reduce-overhead: CUDA graphs)


def run(models, args, spec_bert: ArchSpec, spec_sq: ArchSpec, parity: dict[str, float]) -> None:
    """Dense vs SqueezeBERT pattern, ours and HF's, on a CUDA GPU (``latency.device=cuda``: each
    pass timed by CUDA events). Per batch of ``GPU_BATCHES``: the four models at fp32 and their
    bfloat16 copies (with ``--compile``, ours ``torch.compile``'d at each precision too), all
    interleaved in one ``compare_latency`` call; medians. Writes results_cuda.md and
    summary_cuda.json beside this file (prints under --quick); the CPU's files are not touched."""
    from arch_search.measure.precision import bf16_copy

    variants = {f"{n} {p}": m if p == "fp32" else bf16_copy(m) for p in ("fp32", "bf16") for n, m in models.items()}
    pairs = {who: (pair, "") for who, pair in PAIRS.items()}
    if args.compile:
        args.warmup = max(args.warmup, 3)  # the compile (and CUDA graphs' recording) happen in the untimed passes
        variants |= {f"{n} {p} compiled": compiled(variants[f"{n} {p}"], args.compile)
                     for p in ("fp32", "bf16") for n in PAIRS["ours"]}
        pairs["ours compiled"] = (PAIRS["ours"], " compiled")
    rows, env = [], None
    for batch in GPU_BATCHES:
        cmp = compare_latency(variants, latency_protocol(args).replace(batch=batch, device="cuda"))
        lat, env = cmp.latencies, next(iter(cmp.latencies.values())).env
        for precision in ("fp32", "bf16"):
            for who, ((dense, squeeze), suffix) in pairs.items():
                d, q = (lat[f"{n} {precision}{suffix}"] for n in (dense, squeeze))
                fp32 = [lat[f"{n} fp32{suffix}"].median_ms for n in (dense, squeeze)]
                row = {"batch": batch, "precision": precision, "models": who, "dense_ms": round(d.median_ms, 3),
                       "squeezebert_ms": round(q.median_ms, 3), "speedup": round(d.median_ms / q.median_ms, 3),
                       "dense_vs_fp32": round(fp32[0] / d.median_ms, 3),
                       "squeezebert_vs_fp32": round(fp32[1] / q.median_ms, 3), "max_cv": round(max(d.cv, q.cv), 3)}
                if suffix:  # compiled against eager, same run
                    eager = [lat[f"{n} {precision}"].median_ms for n in (dense, squeeze)]
                    row |= {"dense_vs_eager": round(eager[0] / d.median_ms, 3),
                            "squeezebert_vs_eager": round(eager[1] / q.median_ms, 3)}
                rows.append(row)
    flop_ratio = closed_form_macs(spec_bert, args.seq_len) / closed_form_macs(spec_sq, args.seq_len)
    summary = {"machine": str(env), "gpu": env.device, "command": toolkit.command(),
               "protocol": {"batches": list(GPU_BATCHES), "layers": args.layers, "seq_len": args.seq_len,
                            "threads": args.threads, "warmup": args.warmup, "rounds": args.rounds,
                            "timer": "CUDA events", "compile": args.compile},
               "flop_ratio": round(flop_ratio, 3), "parity_max_abs": parity, "rows": rows}
    compiled = (f", and ours `torch.compile`'d (mode `{args.compile}`, static shapes; compiled in the warm-up) "
                "at each precision") if args.compile else ""
    lines = [
        "# Speedup on a GPU: SqueezeBERT pattern vs BERT-base", "",
        f"Command: `{toolkit.command()}` (from the repository root)", "",
        f"Machine: {env}", "",
        f"Protocol: seq {args.seq_len}, {args.layers} layers, `torch.inference_mode`, on the GPU "
        f"(`latency.device=cuda`). Per batch ({', '.join(map(str, GPU_BATCHES))}): the four models at fp32 and "
        f"their bfloat16 copies{compiled}, all {len(variants)} interleaved in one `compare_latency` call, "
        f"{args.warmup} warm-up passes then {args.rounds} rounds; each pass timed by CUDA events between two "
        "`torch.cuda.synchronize()` (kernels and launch gaps); medians. Speedup = dense median / SqueezeBERT-pattern "
        "median within one run; `x fp32` = the fp32 median over this precision's (same run). Ours carry HF's "
        "weights (`from_hf`; max abs diff of the last hidden state vs HF on the CPU: "
        + ", ".join(f"{k} {v:.1e}" for k, v in parity.items())
        + f"). FLOP ratio (closed form, any batch): {flop_ratio:.2f}x.", "",
        "| batch | precision | models | dense ms | SqueezeBERT ms | SqueezeBERT speedup | dense x fp32 | SqueezeBERT x fp32 | max CV |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {r['batch']} | {r['precision']} | {r['models']} | {r['dense_ms']:.2f} | {r['squeezebert_ms']:.2f} | "
          f"{r['speedup']:.2f}x | {r['dense_vs_fp32']:.2f}x | {r['squeezebert_vs_fp32']:.2f}x | {r['max_cv']:.3f} |"
          for r in rows], "",
    ]
    if args.compile:
        lines += ["## torch.compile against eager (ours, same runs)", "",
                  "| batch | precision | dense x eager | SqueezeBERT x eager |", "| ---: | --- | ---: | ---: |",
                  *[f"| {r['batch']} | {r['precision']} | {r['dense_vs_eager']:.2f}x | {r['squeezebert_vs_eager']:.2f}x |"
                    for r in rows if "dense_vs_eager" in r], ""]
    emit(args, lines, summary, "results_cuda.md", "summary_cuda.json")


def compiled(model: torch.nn.Module, mode: str) -> torch.nn.Module:
    """``torch.compile(model, mode=mode, dynamic=False)``: one graph per batch, compiled on the first
    (untimed) pass. Its limit of graphs per function is raised: every compiled variant shares the
    encoder's code (2 models x 2 precisions x 2 batches)."""
    import torch._dynamo

    config = torch._dynamo.config
    limit = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"
    setattr(config, limit, max(getattr(config, limit), 64))
    return torch.compile(model, mode=mode, dynamic=False)

"""``--profile``: where each model's time goes: torch's profiler by op, the GEMM kernels' rates at
the benchmark's shapes, onnxruntime's kernel time by op type. Printed (``profile.txt`` is this
output, redirected)."""

from __future__ import annotations

import statistics
import tempfile
from functools import partial
from pathlib import Path

import torch
from arch_search.measure.latency import Env, time_calls
from arch_search.nn.onnx_export import ort_session
from experiments.speedup.models import latency_protocol, token_ids

def run(models, args, passes: int = 5) -> None:
    """Where each model's time goes: torch's self CPU time per forward pass, by op (top 8);
    the GEMM kernels' rates at this benchmark's shapes; onnxruntime's kernel time by op type."""
    ids = token_ids(args.seq_len)
    torch.set_num_threads(args.threads)
    print(f"# Machine: {Env.current(args.threads)}\n# batch 1, seq {args.seq_len}, {args.layers} layers\n\n## torch")
    with torch.inference_mode():
        for name, model in models.items():
            for _ in range(args.warmup):
                model(input_ids=ids)
            with torch.profiler.profile() as prof:
                for _ in range(passes):
                    model(input_ids=ids)
            events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
            total = sum(e.self_cpu_time_total for e in events) / passes / 1e3
            print(f"\n{name}: {total:.1f} ms per forward (profiled)")
            for e in events[:8]:
                print(f"  {e.key:<50} {e.self_cpu_time_total / passes / 1e3:8.2f} ms  {e.count // passes:5d} calls")
    gemm_rates(args)
    ort_profile(models, args, passes)


def gemm_rates(args, rounds: int = 50) -> None:
    """fp32 GFLOP/s of aten's ``F.linear`` (MKL's sgemm in this build) and oneDNN's linear
    (``arch_search.nn.model.onednn_linear``, what fp32 inference runs) at the projections' shapes:
    (seq x C_in) @ (C_in x C_out), dense and one group of 4, interleaved, medians."""
    import torch.nn.functional as F

    from arch_search.nn.model import onednn_linear

    T = args.seq_len
    shapes = {"dense 768 -> 768": (768, 768), "dense 768 -> 3072": (768, 3072), "dense 3072 -> 768": (3072, 768),
              "1 of 4 groups 192 -> 192": (192, 192), "1 of 4 groups 192 -> 768": (192, 768),
              "1 of 4 groups 768 -> 192": (768, 192)}
    calls, flops = {}, {}
    g = torch.Generator().manual_seed(0)
    for name, (cin, cout) in shapes.items():
        x, w, b = torch.randn(1, T, cin, generator=g), torch.randn(cout, cin, generator=g), torch.randn(cout, generator=g)
        for kernel, linear in (("aten F.linear", F.linear), ("oneDNN", onednn_linear)):
            if linear is not None:
                calls[f"{name}, {kernel}"] = partial(linear, x, w, b)
                flops[f"{name}, {kernel}"] = 2 * T * cin * cout
    samples = time_calls(calls, latency_protocol(args).replace(rounds=rounds))
    print(f"\n## fp32 GEMM kernels, (1, {T}, C_in) @ (C_in, C_out) + bias, {args.threads} thread(s), {rounds} "
          "interleaved rounds, medians\n")
    for name, ms in samples.items():
        median = statistics.median(ms)
        print(f"  {name:<42} {median:7.3f} ms  {flops[name] / median / 1e6:6.1f} GFLOP/s")


def ort_profile(models, args, passes: int) -> None:
    """onnxruntime's kernel time per op type per forward pass (its own profiler), each model's
    ONNX graph as ``latency.backend=onnxruntime`` runs it."""
    import json
    from collections import Counter

    from arch_search.nn.onnx_export import export_onnx

    feed = {"input_ids": token_ids(args.seq_len).numpy()}
    print("\n## onnxruntime (kernel time by op type, its profiler)")
    with tempfile.TemporaryDirectory(prefix="speedup-profile-") as tmp:
        for i, (name, model) in enumerate(models.items()):
            path = export_onnx(model, Path(tmp) / f"{i}.onnx", inputs=("input_ids",))
            session = ort_session(path, args.threads, profile=Path(tmp) / f"{i}")
            for _ in range(args.warmup + passes):
                session.run(None, feed)
            events = json.loads(Path(session.end_profiling()).read_text())
            runs = [e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]
            start = runs[args.warmup]["ts"]  # the warm-up runs are left out
            time, count = Counter(), Counter()
            for e in events:
                if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start:
                    time[e["args"]["op_name"]] += e["dur"] / passes / 1e3
                    count[e["args"]["op_name"]] += 1
            print(f"\n{name}: {sum(time.values()):.1f} ms per forward in kernels")
            for op, ms in time.most_common(8):
                print(f"  {op:<30} {ms:8.2f} ms  {count[op] // passes:5d} calls")

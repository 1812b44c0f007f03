"""``--precision``: does grouping keep its speedup at lower precision? Dense vs the SqueezeBERT
pattern, ours and HF's, at fp32 and bf16 (torch) and fp32, int8 dynamic and int8 static
(onnxruntime); then what each precision does to a fine-tuned classifier (``precision_accuracy``)."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

from arch_search import compare_latency
from arch_search.measure.latency import Env, time_calls
from arch_search.nn.onnx_export import ort_session
from experiments import toolkit
from experiments.speedup.models import PAIRS, emit, latency_protocol
from experiments.speedup import precision_accuracy

STATIC_CALIBRATION = 8  # seeded random (1, seq) inputs that calibrate the timed static graphs


def run(models, args) -> None:
    """Dense vs SqueezeBERT pattern, ours and HF's, at each precision. torch: fp32 and bf16
    copies of the four models, all eight interleaved in one run; onnxruntime: the four graphs
    at fp32, quantised to int8 dynamically, and quantised statically, one interleaved run each.
    Then what each lower precision does to a fine-tuned SST-2 classifier (``precision_accuracy.accuracy``).
    Writes precision.md and precision.json."""
    from arch_search.measure.precision import bf16_copy

    protocol = latency_protocol(args)
    torch_models = {**{f"{n} fp32": m for n, m in models.items()}, **{f"{n} bf16": bf16_copy(m) for n, m in models.items()}}
    runs = {"torch": compare_latency(torch_models, protocol)}
    for precision in ("fp32", "int8"):
        cmp = compare_latency(models, protocol.replace(backend="onnxruntime", precision=precision))
        runs[f"onnxruntime {precision}"] = cmp
    runs["onnxruntime int8 static"] = static_int8_latency(models, args)
    cells = [("torch", "fp32", "torch", " fp32"), ("torch", "bf16", "torch", " bf16"),
             ("onnxruntime", "fp32", "onnxruntime fp32", ""), ("onnxruntime", "int8", "onnxruntime int8", ""),
             ("onnxruntime", "int8 static", "onnxruntime int8 static", "")]
    rows = []
    for backend, precision, which, suffix in cells:
        lat = runs[which].latencies
        for who, (dense, squeeze) in PAIRS.items():
            d, q = lat[dense + suffix].median_ms, lat[squeeze + suffix].median_ms
            rows.append({"backend": backend, "precision": precision, "models": who, "dense_ms": round(d, 2),
                         "squeezebert_ms": round(q, 2), "speedup": round(d / q, 3),
                         "max_cv": round(max(lat[dense + suffix].cv, lat[squeeze + suffix].cv), 3)})
    fp32 = {(r["backend"], r["models"]): r for r in rows if r["precision"] == "fp32"}
    for r in rows:  # how much the precision speeds each model up (within one run for torch; across two for ORT)
        base = fp32[(r["backend"], r["models"])]
        r["dense_vs_fp32"] = round(base["dense_ms"] / r["dense_ms"], 3)
        r["squeezebert_vs_fp32"] = round(base["squeezebert_ms"] / r["squeezebert_ms"], 3)
    accuracy = precision_accuracy.accuracy(args)
    env = runs["torch"].latencies["ours BERT-base fp32"].env
    summary = {"machine": str(env), "command": toolkit.command(), "rows": rows, "accuracy": accuracy,
               "protocol": {"batch": 1, "layers": args.layers, "seq_len": protocol.seq_len, "threads": protocol.threads,
                            "warmup": protocol.warmup, "rounds": protocol.rounds}}
    a = accuracy
    lines = [
        "# Does grouping keep its speedup at lower precision?", "",
        f"Command: `{toolkit.command()}` (from the repository root)", "",
        f"Machine: {env.cpu}, {env.cores} cores, {env.machine}, torch {env.torch}, "
        f"{runs['onnxruntime int8'].latencies['ours BERT-base'].env.backend}, python {env.python}", "",
        f"Protocol: batch 1, seq {args.seq_len}, {args.layers} layers, {args.threads} thread(s), {args.warmup} warm-up "
        f"passes then {args.rounds} rounds, medians. torch: the four models at fp32 and their bfloat16 copies, all "
        "eight interleaved in one run (`torch.inference_mode`). onnxruntime: the four ONNX graphs at fp32; the "
        "same graphs after `onnxruntime.quantization.quantize_dynamic` (int8 weights per channel, activations "
        "quantised at run time: `latency.precision=int8`); and after `quantize_static` (QDQ, activation ranges "
        f"calibrated once, min/max over {STATIC_CALIBRATION} seeded random inputs of the timed shape: speed does not "
        "depend on the ranges), one interleaved run each. Speedup = dense median / SqueezeBERT-pattern median "
        "within one run; `x fp32` = the fp32 median over this precision's (torch: same run; onnxruntime: across "
        "runs, indicative).", "",
        "| runtime | precision | models | dense ms | SqueezeBERT ms | SqueezeBERT speedup | dense x fp32 | SqueezeBERT x fp32 | max CV |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        *[f"| {r['backend']} | {r['precision']} | {r['models']} | {r['dense_ms']:.1f} | {r['squeezebert_ms']:.1f} | "
          f"{r['speedup']:.2f}x | {r['dense_vs_fp32']:.2f}x | {r['squeezebert_vs_fp32']:.2f}x | {r['max_cv']:.3f} |"
          for r in rows], "",
        "## What each precision does to a fine-tuned SST-2 classifier", "",
        f"Models at MiniLM-L6 dims, each fine-tuned on SST-2 train ({a['steps']} steps, the finetune proxy's "
        f"recipe, seeds {a['seeds']}) from all-MiniLM-L6-v2: the dense checkpoint and its SqueezeBERT pattern "
        f"(block-diagonal inheritance). Each fine-tuned model then classifies all {a['dev_rows']} SST-2 dev "
        "sentences at fp32 (torch), bf16 (torch), int8 dynamic and int8 static (onnxruntime; static calibrated on "
        f"{a['calibration_rows']} SST-2 train sentences). Paired on the same sentences: `flips` = fp32 right -> "
        "wrong / wrong -> right; `diff` = accuracy - fp32 accuracy, with its standard error from the flips "
        "(McNemar); a diff is told apart from zero when |diff| > 2 SE. rel. L2 = ||h_low - h_fp32|| / ||h_fp32|| "
        "of the last hidden state over real tokens.", "",
        "| model | seed | precision | dev acc % | agree with fp32 % | flips | diff (pts) | SE (pts) | > 2 SE | rel. L2 |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
        *[f"| {r['model']} | {r['seed']} | {r['precision']} | {100 * r['accuracy']:.2f} | {100 * r['agreement']:.2f} | "
          f"{r['flips_lost']} / {r['flips_gained']} | {100 * r['diff']:+.2f} | {100 * r['se']:.2f} | "
          f"{'yes' if r['significant'] else 'no'} | {r['rel_l2']:.4f} |" for r in a["rows"]], "",
        *precision_accuracy.summary_lines(a), "",
    ]
    emit(args, lines, summary, "precision.md", "precision.json")


def static_int8_latency(models, args):
    """The four models' ONNX graphs quantised statically (``quantize_int8(..., calibration)``),
    timed interleaved with the benchmark's protocol and inputs."""
    from arch_search.measure.latency import Comparison, Latency
    from arch_search.measure.latency import _ids as protocol_ids
    from arch_search.nn.onnx_export import export_onnx
    from arch_search.measure.precision import quantize_int8

    calls = {}
    with tempfile.TemporaryDirectory(prefix="static-int8-") as tmp:  # a session keeps its own copy
        for i, (name, model) in enumerate(models.items()):
            fp32 = export_onnx(model, Path(tmp) / f"{i}.onnx", inputs=("input_ids",))
            feeds = [{"input_ids": protocol_ids(model, args.seq_len, 1, seed)} for seed in range(1, STATIC_CALIBRATION + 1)]
            session = ort_session(quantize_int8(fp32, Path(tmp) / f"{i}.static.onnx", feeds), args.threads)
            calls[name] = partial(session.run, None, {"input_ids": protocol_ids(model, args.seq_len, 1, 0).numpy()})
    samples = time_calls(calls, latency_protocol(args))
    env = Env.current(args.threads, "onnxruntime", "int8")
    return Comparison({n: Latency.from_samples(s, env) for n, s in samples.items()}, next(iter(models)))

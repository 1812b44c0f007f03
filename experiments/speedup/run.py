"""SqueezeBERT's headline claim on a CPU: grouped position-wise layers make BERT faster.

Measures, interleaved in one run (A B C D A B C D ...), 1 thread, batch 1, seq 128:
ours BERT-base, ours SqueezeBERT, HF ``BertModel`` and HF ``SqueezeBertModel``, where ours
carry the HF models' (randomly initialised) weights through ``from_hf``; then the same four
exported to ONNX (opset 17, dynamic axes) and run by onnxruntime, interleaved in a second
run. Writes ``results.md`` beside this file (or ``--out``) and prints a final line with the
ratios.

    python experiments/speedup/run.py               # the committed results.md
    python experiments/speedup/run.py --sweep       # sweep.md/.csv/.png: seq 32-512 x 1, 2 threads
    python experiments/speedup/run.py --quick       # smoke run: 2 layers, tiny rounds, no file
    python experiments/speedup/run.py --sweep --quick
    python experiments/speedup/run.py --precision   # precision.md/.json: fp32 / bf16 (torch) / int8 (ORT),
                                                    # and a fine-tuned SST-2 classifier at each
    python experiments/speedup/run.py --precision --quick
    python experiments/speedup/run.py --device cuda # results_cuda.md, summary_cuda.json: on a GPU, batch 1
                                                    # and 32, fp32 and bf16 (--compile: ours torch.compile'd too)
    python experiments/speedup/run.py --device cuda --quick
"""

# One module a question beside this entry point (experiments/speedup/__init__.py lists them).
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arch_search.measure.runtime import DeviceUnavailable, check_cuda
from experiments.speedup import compare, gpu, precision, profiling, sweep
from experiments.speedup.gpu import COMPILE_MODES, GPU_BATCHES
from experiments.speedup.models import HERE, build, parity
from experiments.speedup.sweep import SWEEP_ROUNDS, SWEEP_SEQS, SWEEP_THREADS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=100, help="timed forward passes per model")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 layers, seq 32, 3 rounds; writes nothing")
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--profile", action="store_true", help="print where each model's time goes (torch.profiler), then exit")
    ap.add_argument("--sweep", action="store_true",
                    help=f"torch latency over seq {SWEEP_SEQS} x threads {SWEEP_THREADS} (default {SWEEP_ROUNDS} rounds)")
    ap.add_argument("--precision", action="store_true",
                    help="dense vs SqueezeBERT pattern at fp32, bf16 (torch) and int8 dynamic / static "
                         "(onnxruntime), and what each precision does to fine-tuned SST-2 classifiers")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help=f"cuda: the four models on the GPU at batch {GPU_BATCHES}, fp32 and bf16, timed by CUDA "
                         "events (results_cuda.md, summary_cuda.json); cpu: the modes above")
    ap.add_argument("--compile", nargs="?", const="default", choices=COMPILE_MODES,
                    help="with --device cuda: ours torch.compile'd too, in this mode (default: default)")
    args = ap.parse_args()
    if (args.sweep or args.precision) and args.rounds == ap.get_default("rounds"):
        args.rounds = SWEEP_ROUNDS
    if args.quick:
        args.rounds, args.warmup, args.seq_len, args.layers = 3, 1, 32, 2
    if args.device == "cuda":
        if args.sweep or args.precision or args.profile:
            ap.error("--device cuda is a mode of its own, not one of --sweep, --precision, --profile")
        try:
            check_cuda("--device cuda", instead="--device cpu")  # one error line, before any model is built
        except DeviceUnavailable as e:
            raise SystemExit(f"error: {e}") from None
    elif args.compile:
        ap.error("--compile is for --device cuda")

    spec_bert, spec_sq, ours, hf = build(args.layers)
    parities = parity(ours, hf, args.seq_len)
    models = {**ours, **hf}
    if args.profile:
        return profiling.run(models, args)
    if args.sweep:
        return sweep.run(models, args, spec_bert, spec_sq)
    if args.precision:
        return precision.run(models, args)
    if args.device == "cuda":
        return gpu.run(models, args, spec_bert, spec_sq, parities)
    return compare.run(models, args, spec_bert, spec_sq, parities)


if __name__ == "__main__":
    sys.exit(main())

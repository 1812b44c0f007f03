"""Did a change to the model file change its speed? ``arch_search/nn/model.py`` as of a commit
(A) against the working tree's (B), on one machine, in one interleaved run.

Machines differ by 2x (experiments/speedup/README.md), so a refactor of the model file is
judged here, not by comparing a new ``results.md`` with an old one: the same BERT-base and
SqueezeBERT weights load into both versions of the file, their outputs must be bit-identical,
and all four models are timed interleaved (A B A B ..., ``compare_latency``: batch 1, seq 128,
1 thread, ``torch.inference_mode``). Writes ``model_ab.md`` and ``model_ab.json`` beside this
file (``--quick``: 2 layers, 3 rounds, prints them).

    python experiments/speedup/model_ab.py --before 7d818b1^   # issue 36, item 4's refactor
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from arch_search import ArchSpec
from arch_search.measure.latency import LatencyProtocol, compare_latency
from arch_search.nn import model as current
from arch_search.tables import md_table
from experiments import toolkit

HERE = Path(__file__).resolve().parent
MODEL_FILE = "arch_search/nn/model.py"


def model_at(commit: str):
    """The model module as ``MODEL_FILE`` was at ``commit`` (imported from a temporary copy)."""
    source = subprocess.run(["git", "show", f"{commit}:{MODEL_FILE}"], cwd=toolkit.REPO, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "model_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("model_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="the commit whose model file is A (e.g. 7d818b1^)")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="2 layers, 3 rounds; prints, writes nothing")
    args = ap.parse_args()
    before = model_at(args.before)
    commit = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=toolkit.REPO, check=True,
                            capture_output=True, text=True).stdout.strip()
    layers, rounds = (2, 3) if args.quick else (12, args.rounds)
    protocol = LatencyProtocol(seq_len=128, threads=1, warmup=1 if args.quick else 5, rounds=rounds)
    ids = torch.randint(0, 30522, (1, 128), generator=torch.Generator().manual_seed(1))
    models, identical = {}, {}
    for preset in ("bert_base", "squeezebert"):
        spec = ArchSpec.preset(preset).with_scale(layers=layers)
        torch.manual_seed(0)
        b = current.Encoder(spec).eval()
        a = before.Encoder(spec).eval()
        a.load_state_dict(b.state_dict())
        with torch.inference_mode():
            identical[preset] = torch.equal(a(ids).last_hidden_state, b(ids).last_hidden_state)
        models[f"A {preset}"], models[f"B {preset}"] = a, b
    cmp = compare_latency(models, protocol)
    rows = []
    for preset in ("bert_base", "squeezebert"):
        la, lb = cmp.latencies[f"A {preset}"], cmp.latencies[f"B {preset}"]
        rows.append({"design": preset, "a_ms": round(la.median_ms, 1), "b_ms": round(lb.median_ms, 1),
                     "b_over_a": round(lb.median_ms / la.median_ms, 3), "a_cv": round(la.cv, 3), "b_cv": round(lb.cv, 3),
                     "bit_identical": identical[preset]})
    env = cmp.latencies["A bert_base"].env
    speedup = {k: round(cmp.ratio(f"{k} bert_base", f"{k} squeezebert"), 3) for k in ("A", "B")}
    summary = {"before": commit, "after": toolkit.code_commit(), "machine": str(env), "rounds": rounds, "layers": layers,
               "designs": rows, "squeezebert_speedup": speedup}
    lines = [f"# The model file before ({commit}) and after ({summary['after']}), interleaved", "",
             f"Command: `python experiments/speedup/model_ab.py --before {args.before}`; machine: {env}.", "",
             f"Batch 1, seq 128, {layers} layers, 1 thread, `torch.inference_mode`, {protocol.warmup} warm-up, "
             f"{rounds} rounds of the four models interleaved (A: `{MODEL_FILE}` at {commit}; B: at "
             f"{summary['after']}); the same weights in both; B / A is the ratio of medians (1.0: no change).", "",
             *md_table(rows, {"design": "design", "a_ms": "A median ms", "b_ms": "B median ms", "b_over_a": "B / A",
                              "a_cv": "A CV", "b_cv": "B CV", "bit_identical": "outputs bit-identical"}), "",
             f"SqueezeBERT over BERT-base: A {speedup['A']:.2f}x, B {speedup['B']:.2f}x."]
    files = {"model_ab.md": "\n".join(lines) + "\n", "model_ab.json": json.dumps(summary, indent=1) + "\n"}
    if args.quick:
        toolkit.show(files)
        return
    for name, text in files.items():
        (HERE / name).write_text(text)
    print(files["model_ab.md"])
    if not all(identical.values()):
        sys.exit("outputs differ between A and B")


if __name__ == "__main__":
    main()

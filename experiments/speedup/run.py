"""SqueezeBERT's headline claim on a CPU: grouped position-wise layers make BERT faster.

Measures, interleaved in one run (A B C D A B C D ...), 1 thread, batch 1, seq 128:
ours BERT-base, ours SqueezeBERT, HF ``BertModel`` and HF ``SqueezeBertModel``, where ours
carry the HF models' (randomly initialised) weights through ``from_hf``. Writes
``results.md`` beside this file (or ``--out``) and prints a final line with the ratios.

    python experiments/speedup/run.py               # the committed results.md
    python experiments/speedup/run.py --quick       # smoke run: tiny rounds, no file
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from arch_search import ArchSpec, build_model, closed_form_macs, compare_latency, count_cost, from_hf, to_hf

HERE = Path(__file__).resolve().parent
PAPER_GFLOPS = {"BERT-base": 22.5, "SqueezeBERT": 7.42}  # Iandola et al., 2020, Table 2 (seq 128)
TARGETS = {  # name: (slower, faster, target ratio)
    "ours SqueezeBERT vs ours BERT-base": ("ours BERT-base", "ours SqueezeBERT", 2.8),
    "ours SqueezeBERT vs HF SqueezeBertModel": ("HF SqueezeBertModel", "ours SqueezeBERT", 1.3),
    "ours BERT-base vs HF BertModel": ("HF BertModel", "ours BERT-base", 0.95),
}


def hf_models(spec_bert: ArchSpec, spec_sq: ArchSpec) -> dict[str, torch.nn.Module]:
    """HF BertModel and SqueezeBertModel of these specs (BERT's random init, seed 0)."""
    torch.manual_seed(0)
    return {
        "HF BertModel": to_hf(build_model(spec_bert)).eval(),
        "HF SqueezeBertModel": to_hf(build_model(spec_sq)).eval(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=100, help="timed forward passes per model")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--quick", action="store_true", help="smoke run at seq 32, 3 rounds; writes nothing")
    ap.add_argument("--out", type=Path, default=HERE / "results.md")
    ap.add_argument("--profile", action="store_true", help="print where each model's time goes (torch.profiler), then exit")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.warmup, args.seq_len = 3, 1, 32

    spec_bert, spec_sq = ArchSpec.preset("bert_base"), ArchSpec.preset("squeezebert")
    hf = hf_models(spec_bert, spec_sq)
    ours = {"ours BERT-base": from_hf(hf["HF BertModel"])[0], "ours SqueezeBERT": from_hf(hf["HF SqueezeBertModel"])[0]}
    for name, hf_name in (("ours BERT-base", "HF BertModel"), ("ours SqueezeBERT", "HF SqueezeBertModel")):
        assert from_hf(hf[hf_name])[1] == (spec_bert if "BERT-base" in name else spec_sq)
    parity = _parity(ours, hf, args.seq_len)
    if args.profile:
        return _profile({**ours, **hf}, args)

    models = {**ours, **hf}
    cmp = compare_latency(
        models, baseline="ours BERT-base", seq_len=args.seq_len, threads=args.threads,
        warmup=args.warmup, rounds=args.rounds,
    )
    ratios = {name: cmp.ratio(slow, fast) for name, (slow, fast, _) in TARGETS.items()}
    report = _report(args, cmp, ratios, parity, spec_bert, spec_sq)
    if not args.quick:
        args.out.write_text(report)
        print(f"wrote {args.out}")
    print(report if args.quick else "")
    print("ratios: " + "; ".join(f"{k} {v:.2f}x (target {TARGETS[k][2]}x)" for k, v in ratios.items()))


def _profile(models, args, passes: int = 5) -> None:
    """Self CPU time per forward pass, by op, for each model (top 8 ops)."""
    ids = torch.randint(0, 30522, (1, args.seq_len), generator=torch.Generator().manual_seed(1))
    torch.set_num_threads(args.threads)
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


def _parity(ours, hf, seq_len: int) -> dict[str, float]:
    ids = torch.randint(0, 30522, (1, seq_len), generator=torch.Generator().manual_seed(1))
    out = {}
    with torch.inference_mode():
        for name, hf_name in (("ours BERT-base", "HF BertModel"), ("ours SqueezeBERT", "HF SqueezeBertModel")):
            a = ours[name].eval()(ids).last_hidden_state
            b = hf[hf_name](input_ids=ids).last_hidden_state
            out[name] = (a - b).abs().max().item()
    return out


def _report(args, cmp, ratios, parity, spec_bert, spec_sq) -> str:
    env = next(iter(cmp.latencies.values())).env
    cmd = " ".join(["python experiments/speedup/run.py", *sys.argv[1:]])
    lines = [
        "# Speedup: SqueezeBERT vs BERT-base on this CPU",
        "",
        f"Command: `{cmd}` (from the repository root)",
        "",
        f"Machine: {env}",
        "",
        f"Protocol: batch 1, seq {args.seq_len}, {args.threads} thread(s), `torch.inference_mode`, "
        f"{args.warmup} warm-up passes, then {args.rounds} rounds of one forward pass per model, "
        "interleaved (A B C D A B C D ...). Ours carry the HF models' weights via `from_hf` "
        f"(max abs diff of last hidden state vs HF: "
        + ", ".join(f"{k} {v:.1e}" for k, v in parity.items())
        + ").",
        "",
        "| model | median ms | p10 ms | p90 ms | CV | speedup vs ours BERT-base |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, lat in cmp.latencies.items():
        lines.append(
            f"| {name} | {lat.median_ms:.1f} | {lat.p10_ms:.1f} | {lat.p90_ms:.1f} | {lat.cv:.3f} | {cmp.speedup[name]:.2f}x |"
        )
    lines += ["", "## Targets", "", "| ratio (of medians) | measured | target | met |", "| --- | ---: | ---: | --- |"]
    for name, value in ratios.items():
        target = TARGETS[name][2]
        lines.append(f"| {name} | {value:.2f}x | >= {target}x | {'yes' if value >= target else '**no**'} |")
    hf_ratio = cmp.ratio("HF BertModel", "HF SqueezeBertModel")
    macs = {n: closed_form_macs(s, args.seq_len) for n, s in (("BERT-base", spec_bert), ("SqueezeBERT", spec_sq))}
    flop_ratio = macs["BERT-base"] / macs["SqueezeBERT"]
    lines += [
        "",
        f"HF's own SqueezeBertModel vs HF BertModel here: {hf_ratio:.2f}x. The FLOP ratio is "
        f"{flop_ratio:.2f}x, so with ours BERT-base no slower than HF's, ours SqueezeBERT can be at most "
        f"about {flop_ratio:.2f} / {hf_ratio:.2f} = {flop_ratio / hf_ratio:.2f}x faster than HF's SqueezeBertModel "
        "unless it beats the FLOP ratio. Where the time goes: `profile.txt` beside this file "
        "(`--profile`), read in `README.md`.",
        "",
        f"## FLOPs at seq {args.seq_len}, batch 1 (encoder; fvcore, checked in closed form)",
        "",
        "| model | params | GMACs | GFLOPs (2 x MACs) | paper GFLOPs |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, spec in (("BERT-base", spec_bert), ("SqueezeBERT", spec_sq)):
        c = count_cost(spec, seq_len=args.seq_len)
        assert c.macs == macs[name]
        paper = PAPER_GFLOPS[name] if args.seq_len == 128 else "-"
        lines.append(f"| {name} | {c.params / 1e6:.1f}M | {c.gmacs:.3f} | {c.gflops:.2f} | {paper} |")
    lines += ["", f"FLOP ratio {flop_ratio:.2f}x (paper: 22.5 / 7.42 = 3.03x; measured on a Pixel 3: 4.3x).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

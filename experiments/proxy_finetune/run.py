"""Finetune proxy on SST-2 from the pretrained MiniLM checkpoint: dense vs SqueezeBERT pattern.

The dense pattern inherits the checkpoint exactly; the SqueezeBERT pattern (q, k, v, FFN in,
FFN out at g=4) inherits its block-diagonal slices. Both are fine-tuned with the same budget;
accuracy is reported on the SST-2 *dev* split (and on the held-out train slice the search
sees). Writes results.md and results.csv beside this file.

    python experiments/proxy_finetune/run.py                  # the committed results
    python experiments/proxy_finetune/run.py --quick          # smoke run (CI): 5 steps, prints the files, writes nothing
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from arch_search import ArchSpec
from arch_search.measure.latency import Env
from arch_search.proxies import FinetuneProxy, ProxySetup
from arch_search.tables import csv_text, write_csv
from experiments import toolkit

HERE = Path(__file__).resolve().parent
DESIGNS = {"dense (MiniLM-L6)": "bert_base", "SqueezeBERT pattern (g=4,4,4,1,4,4)": "squeezebert"}
HF_REFERENCE = {"dense (MiniLM-L6)": 0.846, "SqueezeBERT pattern (g=4,4,4,1,4,4)": 0.762}  # the issue: plain HF, 300 steps
TARGET_ACC, TARGET_MINUTES = 0.88, 15.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--checkpoint", default=toolkit.checkpoint())
    ap.add_argument("--data-dir", default=toolkit.glue_dir())
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.steps = 5

    setup = ProxySetup(
        task="sst2", init="pretrained", checkpoint=args.checkpoint, max_len=args.max_len, seed=args.seed, data_dir=args.data_dir,
        heldout=200 if args.quick else 2000,
        heldout_disjoint=False,  # as when results.md was made: a random slice (SST-2 phrases can leak, see README)
    )
    proxy = FinetuneProxy(
        setup, steps=args.steps, batch_size=args.batch_size, lr=args.lr, eval_every=max(1, args.steps // 5),
        threads=args.threads, progress=not args.quick,
    )
    rows = []
    for name, preset in DESIGNS.items():
        r = proxy.evaluate(ArchSpec.preset(preset))
        rows.append({
            "design": name, "steps": args.steps, "train_minutes": round(r.details["train_seconds"] / 60, 2),
            "dev_accuracy": round(r.dev["accuracy"], 4), "heldout_accuracy": round(r.score, 4),
            "hf_reference_300_steps": HF_REFERENCE[name],
        })
        print(rows[-1], flush=True)
    if args.quick:
        toolkit.show({"results.csv": csv_text(rows), "results.md": report(args, rows)})  # printed, not written
        return
    write_csv(HERE / "results.csv", rows)
    (HERE / "results.md").write_text(report(args, rows))
    dense = rows[0]
    print(
        f"dense dev accuracy {dense['dev_accuracy']:.4f} in {dense['train_minutes']} min "
        f"(target >= {TARGET_ACC} within {TARGET_MINUTES} min); inheritance gap "
        f"{100 * (rows[0]['dev_accuracy'] - rows[1]['dev_accuracy']):.1f} points (HF reference: 8.4)"
    )


def report(args, rows) -> str:
    dense = rows[0]
    met = dense["dev_accuracy"] >= TARGET_ACC and dense["train_minutes"] <= TARGET_MINUTES
    lines = [
        "# Finetune proxy: SST-2 from all-MiniLM-L6-v2",
        "",
        f"Command: `{toolkit.command()}` (from the repository root)",
        "",
        f"Machine: {Env.current(args.threads)}",
        "",
        f"Set-up: proxy scale = the checkpoint's dims (6 layers, hidden 384, 12 heads, FFN 1536); "
        f"{args.steps} steps, batch {args.batch_size}, max length {args.max_len}, AdamW lr {args.lr:g} "
        f"(10% warm-up, linear decay), dropout 0.1, seed {args.seed}, {args.threads} threads; length-bucketed "
        "batches with dynamic padding. Trained on SST-2 train minus a seeded held-out slice of 2,000 rows. "
        "**Accuracy is on the SST-2 dev split (872 rows)**; the held-out column is the score a search sees.",
        "",
        "| design | steps | train minutes | dev accuracy | held-out accuracy | plain HF, 300 steps (issue) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['design']} | {r['steps']} | {r['train_minutes']} | {r['dev_accuracy']:.4f} | "
            f"{r['heldout_accuracy']:.4f} | {r['hf_reference_300_steps']} |"
        )
    gap = 100 * (rows[0]["dev_accuracy"] - rows[1]["dev_accuracy"])
    lines += [
        "",
        f"Target: dense >= {TARGET_ACC:.0%} dev accuracy within {TARGET_MINUTES:.0f} minutes of training: "
        f"{'met' if met else '**not met**'} ({dense['dev_accuracy']:.2%} in {dense['train_minutes']} min).",
        f"Inheritance gap (dense - SqueezeBERT pattern, dev): {gap:.1f} points (plain HF at 300 steps: 8.4).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()

"""Supernet and zero-cost proxies on SST-2 against standalone fine-tuning.

1. Train the supernet over `space=squeezebert`'s choices (groups {1,2,4,8,16} per projection
   type) from all-MiniLM-L6-v2 with sandwich sampling; time it (target <= 30 min).
2. Score every design below through the supernet (target <= 10 s each) and with the
   zero-cost proxy (target <= 5 s each).
3. Fine-tune each design alone (same init, same data) and compare: the dense and SqueezeBERT
   patterns for as many steps as the supernet trained (target: supernet within 2 points),
   every design for ``--finetune-steps`` for the rank fidelity (Kendall tau, target >= 0.5).
Accuracy is SST-2 *dev*. Rows are appended to designs.csv as they finish (a crash loses
none); results.md is written from designs.csv at the end.

    python experiments/proxy_supernet/run.py            # the committed results
    python experiments/proxy_supernet/run.py --quick    # smoke run (CI): tiny budgets, writes nothing
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

from arch_search import ArchSpec
from arch_search.latency import Env
from arch_search.proxies import FinetuneProxy, ProxySetup, SupernetProxy, ZeroCostProxy
from arch_search.results import kendall_tau

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = Path(os.environ.get("ARCH_SEARCH_SHARED", REPO.parent / "shared"))

# (q, k, v, post_attention, ffn_in, ffn_out): diverse points of space=squeezebert
DESIGNS = {
    "dense": (1, 1, 1, 1, 1, 1),
    "squeezebert": (4, 4, 4, 1, 4, 4),
    "all-2": (2, 2, 2, 2, 2, 2),
    "all-4": (4, 4, 4, 4, 4, 4),
    "all-8": (8, 8, 8, 8, 8, 8),
    "all-16": (16, 16, 16, 16, 16, 16),
    "qkv16-ffn2": (16, 16, 16, 1, 2, 2),
    "attn-dense-ffn8": (1, 1, 1, 1, 8, 8),
    "mixed-a": (2, 8, 4, 2, 16, 1),
    "mixed-b": (8, 8, 8, 4, 1, 4),
}
PROJ = ("q", "k", "v", "post_attention", "ffn_in", "ffn_out")
FIELDS = ["design", "groups", "supernet_dev", "supernet_heldout", "supernet_seconds", "zero_cost_snip",
          "zero_cost_synflow", "zero_cost_grad_norm", "zero_cost_seconds", "finetune_steps", "finetune_dev",
          "finetune_heldout", "finetune_minutes", "same_budget_dev"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--supernet-steps", type=int, default=1200)
    ap.add_argument("--finetune-steps", type=int, default=400, help="budget of each standalone finetune for the tau")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", default=str(SHARED / "models" / "all-MiniLM-L6-v2"))
    ap.add_argument("--data-dir", default=os.environ.get("GLUE_DIR", str(SHARED / "glue")))
    ap.add_argument("--cache-dir", default=str(REPO / ".cache" / "arch_search"))
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    designs = DESIGNS
    if args.quick:
        args.supernet_steps, args.finetune_steps = 2, 2
        designs = dict(list(DESIGNS.items())[:3])

    setup = ProxySetup(task="sst2", init="pretrained", checkpoint=args.checkpoint, data_dir=args.data_dir, cache_dir=args.cache_dir,
                       heldout=200 if args.quick else 2000,
                       heldout_disjoint=False)  # as when results.md was made: a random slice (see README)
    supernet = SupernetProxy(setup, steps=args.supernet_steps, lr=args.lr, threads=args.threads, progress=not args.quick)
    zero_cost = ZeroCostProxy(setup, threads=args.threads, batch_size=32)

    t0 = time.perf_counter()
    supernet.supernet  # trains (or loads from the cache)
    supernet_minutes = (time.perf_counter() - t0) / 60
    print(f"supernet ready in {supernet_minutes:.1f} min ({supernet.cache_path})", flush=True)

    out = HERE / "designs.csv"
    done = {} if args.quick or not out.is_file() else {r["design"]: r for r in csv.DictReader(open(out))}
    for name, groups in designs.items():
        if name in done:
            continue
        spec = ArchSpec.preset("bert_base").replace(groups=dict(zip(PROJ, groups)))
        s = supernet.evaluate(spec)
        z = zero_cost.evaluate(spec)
        row = {"design": name, "groups": ",".join(map(str, groups)), "supernet_dev": s.dev["accuracy"],
               "supernet_heldout": s.score, "supernet_seconds": s.details["score_seconds"],
               "zero_cost_snip": z.details["scores"]["snip"], "zero_cost_synflow": z.details["scores"]["synflow"],
               "zero_cost_grad_norm": z.details["scores"]["grad_norm"], "zero_cost_seconds": z.details["seconds"]}
        f = FinetuneProxy(setup, steps=args.finetune_steps, lr=args.lr, threads=args.threads, progress=not args.quick,
                          eval_every=10**9).evaluate(spec)
        row.update(finetune_steps=args.finetune_steps, finetune_dev=f.dev["accuracy"], finetune_heldout=f.score,
                   finetune_minutes=round(f.details["train_seconds"] / 60, 2), same_budget_dev="")
        if name in ("dense", "squeezebert"):  # as many steps as the supernet trained
            same = FinetuneProxy(setup, steps=args.supernet_steps, lr=args.lr, threads=args.threads,
                                 progress=not args.quick, eval_every=10**9).evaluate(spec)
            row["same_budget_dev"] = same.dev["accuracy"]
        print(row, flush=True)
        if not args.quick:
            new = not out.is_file()
            with open(out, "a", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(row)
        done[name] = row
    if not args.quick:
        (HERE / "results.md").write_text(report(args, list(done.values()), supernet_minutes, supernet.cache_path))
        print((HERE / "results.md").read_text())


def report(args, rows, supernet_minutes, path) -> str:
    f = lambda r, k: float(r[k])  # noqa: E731
    ft = [f(r, "finetune_dev") for r in rows]
    taus = {k: kendall_tau([f(r, k) for r in rows], ft) for k in
            ("supernet_dev", "supernet_heldout", "zero_cost_snip", "zero_cost_synflow", "zero_cost_grad_norm")}
    cmd = " ".join(["python experiments/proxy_supernet/run.py", *sys.argv[1:]])
    lines = [
        "# Supernet and zero-cost proxies vs standalone fine-tuning (SST-2)", "",
        f"Command: `{cmd}` (from the repository root)", "",
        f"Machine: {Env.current(args.threads)}", "",
        f"Supernet: groups {{1,2,4,8,16}} per projection type, sandwich (dense, all-16, 1 random) for "
        f"{args.supernet_steps} steps from all-MiniLM-L6-v2, lr {args.lr:g}, batch 32, max len 64. "
        f"Ready in {supernet_minutes:.1f} min (0 when loaded from the cache; the training time is in the "
        f"cached file's metadata). Standalone fine-tunes: same init and data, {args.finetune_steps} steps each "
        f"(and {args.supernet_steps} for dense and SqueezeBERT). Accuracies on the SST-2 dev split.", "",
        "| design | groups q,k,v,post,in,out | supernet dev | finetune dev | same-budget finetune dev | "
        "supernet s | zero-cost snip | synflow | zero-cost s |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        same = f"{f(r, 'same_budget_dev'):.4f}" if r["same_budget_dev"] not in ("", None) else "-"
        lines.append(
            f"| {r['design']} | {r['groups']} | {f(r, 'supernet_dev'):.4f} | {f(r, 'finetune_dev'):.4f} | {same} | "
            f"{f(r, 'supernet_seconds'):.1f} | {f(r, 'zero_cost_snip'):.3g} | {f(r, 'zero_cost_synflow'):.3g} | "
            f"{f(r, 'zero_cost_seconds'):.1f} |"
        )
    lines += ["", f"Kendall tau vs standalone finetune dev accuracy over {len(rows)} designs:", ""]
    lines += [f"- {k}: {v:.3f}" for k, v in taus.items()]
    gaps = [(r["design"], 100 * (f(r, "supernet_dev") - f(r, "same_budget_dev"))) for r in rows if r["same_budget_dev"] not in ("", None)]
    lines += ["", "Supernet vs same-budget standalone finetune (target within 2 points): "
              + ", ".join(f"{d} {g:+.1f} points" for d, g in gaps), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

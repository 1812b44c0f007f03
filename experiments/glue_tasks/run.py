"""GLUE tasks: the dense and SqueezeBERT patterns fine-tuned on every GLUE task on disk.

SqueezeBERT (Iandola et al., 2020) reports GLUE close to BERT-base's with groups
(4,4,4,1,4,4). Here both patterns sit at MiniLM-L6 scale (6 layers, hidden 384, 12 heads,
FFN 1536) and start from the pretrained all-MiniLM-L6-v2 checkpoint: the dense pattern inherits
it exactly, the SqueezeBERT pattern its block-diagonal slices (``arch_search.nn.inherit``; no
pretraining of the grouped design, which the paper did for 62k LAMB steps). Each (task, design)
is fine-tuned on the whole train split with the same recipe and scored with GLUE's metrics on
dev; the paper's GLUE numbers (test set) stand beside ours. Also: the two patterns' latency at
this scale.

    python experiments/glue_tasks/run.py            # results.md, results.csv, glue_tasks.png
    python experiments/glue_tasks/run.py --quick    # smoke run (CI): 2 steps per task, writes nothing
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import plotly.graph_objects as go
from hydra.utils import instantiate

from arch_search.app import lessons  # noqa: E402  (the experiments' shared helpers)

from arch_search import ArchSpec, build_model  # noqa: E402
from arch_search.tasks.glue import get_task  # noqa: E402

from arch_search.proxies import FinetuneProxy, ProxySetup  # noqa: E402
from arch_search.proxies.setup import MINILM_DIMS  # noqa: E402

HERE = Path(__file__).resolve().parent
TASKS = ("cola", "sst2", "mrpc", "stsb", "rte", "wnli")  # every GLUE task with train + dev in ../shared/glue
DESIGNS = {"dense": ArchSpec.preset("bert_base"), "squeezebert": ArchSpec.preset("squeezebert")}
# The metric each paper reports per task (GLUE's): CoLA Matthews corr., MRPC F1, STS-B Spearman, else accuracy.
METRIC = {"cola": "matthews_correlation", "sst2": "accuracy", "mrpc": "f1", "stsb": "spearman",
          "rte": "accuracy", "wnli": "accuracy"}
# GLUE *test* set, x100. SqueezeBERT: Iandola et al. (2020), the scores listed for the paper on
# Papers with Code (its STS-B and WNLI entries were not in the sources reachable offline: None).
# BERT-base: Devlin et al. (2019), Table 1 (WNLI excluded there).
PAPER_SQUEEZEBERT = {"cola": 46.5, "sst2": 91.4, "mrpc": 87.8, "stsb": None, "rte": 73.2, "wnli": None}
PAPER_BERT_BASE = {"cola": 52.1, "sst2": 93.5, "mrpc": 88.9, "stsb": 85.8, "rte": 66.4, "wnli": None}
ALL_METRICS = ("accuracy", "f1", "matthews_correlation", "pearson", "spearman")
QUICK_STEPS, QUICK_MAX_LEN = 2, 16


def steps_for(n_train: int, args) -> int:
    """``--epochs`` over the train split, at most ``--max-steps`` (SST-2's 67k rows)."""
    if args.quick:
        return QUICK_STEPS
    return min(args.max_steps, math.ceil(args.epochs * n_train / args.batch_size))


def finetune(task: str, seed: int, args) -> list[dict]:
    """Both designs on one task and seed: one row each, every GLUE metric of dev in %."""
    setup = ProxySetup(
        task=task, init="pretrained", checkpoint=args.checkpoint, max_len=QUICK_MAX_LEN if args.quick else args.max_len,
        heldout=0, seed=seed, data_dir=args.data_dir,  # heldout=0: train on all of train, report dev
    )
    steps = steps_for(len(setup.data.train), args)
    proxy = FinetuneProxy(setup, steps=steps, batch_size=args.batch_size, lr=args.lr, eval_every=steps,
                          threads=args.threads, progress=False)
    rows = []
    for name, spec in DESIGNS.items():
        r = proxy.evaluate(spec)
        dev = {k: round(100 * v, 2) for k, v in r.dev.items()}
        rows.append({"task": task, "design": name, "seed": seed, "train_rows": len(setup.data.train),
                     "dev_rows": len(setup.data.dev), "steps": steps, "epochs": round(steps * args.batch_size / len(setup.data.train), 2),
                     "train_minutes": round(r.details["train_seconds"] / 60, 2), "metric": METRIC[task],
                     "score": dev[METRIC[task]], **{f"dev_{k}": dev.get(k, "") for k in ALL_METRICS}})
        print(f"{task:<5} seed {seed} {name:<11} {METRIC[task]} {rows[-1]['score']:6.2f}  {dev}  "
              f"({steps} steps, {rows[-1]['train_minutes']} min)", flush=True)
    return rows


def summary(rows: list[dict], tasks: list[str]) -> list[dict]:
    """Per task: mean over seeds of each design's score, the paired difference, the papers'."""
    out = []
    for task in tasks:
        score = {d: [r["score"] for r in rows if r["task"] == task and r["design"] == d] for d in DESIGNS}
        diff = [s - d for s, d in zip(score["squeezebert"], score["dense"])]
        paper_sq, paper_bert = PAPER_SQUEEZEBERT[task], PAPER_BERT_BASE[task]
        first = next(r for r in rows if r["task"] == task)
        out.append({
            "task": get_task(task).dir_name, "metric": METRIC[task], "train_rows": first["train_rows"],
            "dev_rows": first["dev_rows"], "steps": first["steps"], "epochs": first["epochs"],
            "dense": round(statistics.fmean(score["dense"]), 2), "squeezebert": round(statistics.fmean(score["squeezebert"]), 2),
            "diff": round(statistics.fmean(diff), 2), "diff_min": round(min(diff), 2), "diff_max": round(max(diff), 2),
            "paper_squeezebert_test": paper_sq if paper_sq is not None else "",
            "paper_bert_base_test": paper_bert if paper_bert is not None else "",
            "paper_diff": round(paper_sq - paper_bert, 1) if paper_sq is not None and paper_bert is not None else "",
        })
    return out


def latency(args):
    """Dense vs SqueezeBERT pattern at MiniLM scale, interleaved (run.yaml's latency protocol)."""
    cfg = lessons.config(args)
    dims = lessons.QUICK_TARGET if args.quick else MINILM_DIMS
    models = {name: build_model(spec.with_scale(**dims)) for name, spec in DESIGNS.items()}
    return instantiate(cfg.latency, rounds=args.rounds).compare(models)


def report(args, rows: list[dict], table: list[dict], cmp) -> list[str]:
    d, s = cmp.latencies["dense"], cmp.latencies["squeezebert"]
    cfg = lessons.config(args)
    shown = []
    for t in table:
        diff = f"{t['diff']:+.1f}" + (f" ({t['diff_min']:+.1f} to {t['diff_max']:+.1f})" if len(args.seeds) > 1 else "")
        shown.append({**t, "diff": diff, "paper_squeezebert_test": _number(t["paper_squeezebert_test"]),
                      "paper_bert_base_test": _number(t["paper_bert_base_test"]),
                      "paper_diff": f"{t['paper_diff']:+.1f}" if t["paper_diff"] != "" else "—"})
    avg = {k: statistics.fmean(t[k] for t in table) for k in ("dense", "squeezebert", "diff")}
    both = [t for t in table if t["paper_diff"] != ""]
    seeds = ", ".join(map(str, args.seeds))
    return [
        "# glue_tasks: dense vs SqueezeBERT pattern on every GLUE task on disk", "",
        f"Command: `{lessons.command()}` (from the repository root; GLUE from `GLUE_DIR`, default `../shared/glue`)", "",
        f"Machine: {d.env}", "",
        "**Set-up (ours)**: both patterns at MiniLM-L6 scale (6 layers, hidden 384, 12 heads, FFN 1536), initialised from "
        "the pretrained `all-MiniLM-L6-v2` checkpoint (`../shared/models`): dense inherits it exactly, the SqueezeBERT "
        "pattern (groups q4 k4 v4 post1 in4 out4) inherits the block-diagonal slices of each dense weight. Fine-tuned on "
        f"the **whole train split** of each task, {args.epochs:g} epochs capped at {args.max_steps} steps, batch "
        f"{args.batch_size}, AdamW lr {args.lr:g} (10% warm-up, linear decay, weight decay 0.01), dropout 0.1, max length "
        f"{args.max_len}, {args.threads} thread(s); the same recipe for every task and design (no per-task tuning). "
        f"Scores are GLUE's metrics on the **dev** split, x100; seed(s) {seeds}"
        + (" (mean over seeds; the difference is paired by seed, min to max)." if len(args.seeds) > 1 else "."), "",
        "**Paper**: GLUE **test** set. SqueezeBERT: Iandola et al. (2020), pretrained from scratch (MLM + SOP, LAMB, "
        "62k steps at batch 8192) and fine-tuned per task; the scores are those listed for the paper on Papers with Code "
        "(STS-B and WNLI were not in the sources reachable offline). BERT-base: Devlin et al. (2019), Table 1.", "",
        "## Scores", "",
        *lessons.md_table(shown, {
            "task": "task", "metric": "metric", "train_rows": "train rows", "steps": "steps", "epochs": "epochs",
            "dense": "ours dense", "squeezebert": "ours SqueezeBERT pattern", "diff": "ours: SQ - dense",
            "paper_squeezebert_test": "paper SqueezeBERT (test)", "paper_bert_base_test": "paper BERT-base (test)",
            "paper_diff": "paper: SQ - BERT-base"}),
        "",
        f"Average over the {len(table)} tasks: dense {avg['dense']:.1f}, SqueezeBERT pattern {avg['squeezebert']:.1f} "
        f"({avg['diff']:+.1f} points). The paper's SqueezeBERT - BERT-base over the {len(both)} tasks both report: "
        f"{statistics.fmean(t['paper_diff'] for t in both):+.1f} points." if both else "", "",
        "## Latency at this scale", "",
        f"Batch {cfg.batch}, seq {cfg.seq_len}, {cfg.latency.threads} thread(s), {args.rounds} interleaved "
        f"rounds: dense {d.median_ms:.2f} ms (p10-p90 {d.p10_ms:.2f}-{d.p90_ms:.2f}), SqueezeBERT pattern "
        f"{s.median_ms:.2f} ms ({s.p10_ms:.2f}-{s.p90_ms:.2f}): **{cmp.speedup['squeezebert']:.2f}x**.", "",
        "## Per run", "",
        *lessons.md_table(rows, {k: k for k in ("task", "design", "seed", "steps", "train_minutes", "score")}), "",
    ]


def _number(v: float | str) -> str:
    """A paper's score, or a dash where the paper (or our source for it) has none."""
    return f"{v:.1f}" if v != "" else "—"


def figure(table: list[dict]) -> go.Figure:
    names = [t["task"] for t in table]
    fig = go.Figure()
    for key, label in (("dense", "ours: dense (MiniLM-L6, dev)"), ("squeezebert", "ours: SqueezeBERT pattern (dev)"),
                       ("paper_bert_base_test", "paper: BERT-base (test)"), ("paper_squeezebert_test", "paper: SqueezeBERT (test)")):
        fig.add_bar(x=names, y=[t[key] if t[key] != "" else None for t in table], name=label)
    fig.update_layout(title="GLUE: dense vs SqueezeBERT pattern (ours: inherited from MiniLM-L6, dev; paper: pretrained, test)",
                      yaxis_title="GLUE metric x100 (CoLA MCC, MRPC F1, STS-B Spearman, else accuracy)", barmode="group")
    return fig


def main() -> None:
    ap = lessons.parser(__doc__)
    ap.set_defaults(seeds=[0], rounds=30)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--epochs", type=float, default=3.0)
    ap.add_argument("--max-steps", type=int, default=800)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="training threads")
    ap.add_argument("--checkpoint", default=str(lessons.SHARED / "models" / "all-MiniLM-L6-v2"))
    args = lessons.parse(ap)
    cmp = latency(args)  # first, while nothing else runs
    print(f"latency at MiniLM scale: {cmp.speedup['squeezebert']:.2f}x", flush=True)
    rows = [r for seed in args.seeds for task in args.tasks for r in finetune(task, seed, args)]
    table = summary(rows, args.tasks)
    lessons.write(HERE, args, table, report(args, rows, table, cmp), figure(table), "glue_tasks.png",
                  extra={"runs.csv": lessons.csv_text(rows)})


if __name__ == "__main__":
    main()

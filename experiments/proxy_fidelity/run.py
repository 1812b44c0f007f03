"""Which cheap accuracy proxy ranks designs like a longer fine-tune?

Ten diverse grouping designs (BERT-base pattern; dense, SqueezeBERT, uniform g, mixed) are
scored by the search's default proxy (from-scratch fine-tune, composed from conf/run.yaml),
by the same fine-tune 3x longer (the reference), by zero-cost scores at init (snip,
grad_norm, synflow) and by a weight-sharing supernet trained once over the space's group
choices from the same random init. Per proxy: Kendall tau against the reference (mean over
seeds) on the held-out sentences and on dev, and the seconds it takes per design.

    python experiments/proxy_fidelity/run.py            # results.md, results.csv, proxy_fidelity.png
    python experiments/proxy_fidelity/run.py --quick    # smoke run (CI): writes nothing
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import plotly.graph_objects as go
from hydra.utils import instantiate

from arch_search import ArchSpec
from arch_search.design.spec import PROJECTIONS
from arch_search.proxies import SupernetProxy, ZeroCostProxy
from arch_search.stats import kendall_tau
from arch_search.tables import csv_text, md_table
from experiments import toolkit

HERE = Path(__file__).resolve().parent
LONGER = 3  # the reference fine-tunes this many times the search's steps
BASE = ArchSpec.preset("bert_base")
PATTERNS = {  # groups of (q, k, v, post-attention, FFN in, FFN out), every layer alike
    "dense": (1, 1, 1, 1, 1, 1), "squeezebert": (4, 4, 4, 1, 4, 4), "all-2": (2,) * 6, "all-4": (4,) * 6,
    "all-8": (8,) * 6, "all-16": (16,) * 6, "qkv16-ffn2": (16, 16, 16, 1, 2, 2), "attn-dense-ffn8": (1, 1, 1, 1, 8, 8),
    "mixed-a": (2, 8, 4, 2, 16, 1), "mixed-b": (8, 8, 8, 4, 1, 4),
}
DESIGNS = {name: BASE.replace(groups=dict(zip(PROJECTIONS, g))) for name, g in PATTERNS.items()}
ZERO_COST = ("snip", "grad_norm", "synflow")


def cheap_scores(args) -> tuple[dict[str, dict[str, float]], dict[str, float], float]:
    """Zero-cost and supernet scores of every design (seed 0), seconds per design for each,
    and the supernet's one-off training time."""
    cfg = toolkit.config(args, seed=args.seeds[0], proxy=toolkit.SCRATCH)
    setup = instantiate(cfg.proxy_setup)
    zero = ZeroCostProxy(setup, batch_size=32, threads=cfg.proxy.threads)
    # the plain supernet this experiment measured (issue 3's recipe, from the scratch setup): no teacher,
    # permutation or distillation, one random design a step, scored by held-out accuracy
    supernet = SupernetProxy(setup, teacher=False, permute=False, distill=False, random_designs=1, score="metric",
                             steps=LONGER * cfg.proxy.steps, lr=cfg.proxy.lr, batch_size=cfg.proxy.batch_size,
                             threads=cfg.proxy.threads, progress=False)
    t0 = time.perf_counter()
    supernet.supernet  # trained once (or loaded from the cache), timed apart from scoring
    train_s = time.perf_counter() - t0
    scores: dict[str, dict[str, float]] = {}
    seconds = {"zero-cost": [], "supernet": []}
    for name, spec in DESIGNS.items():
        t = time.perf_counter()
        z = zero.evaluate(spec).details["scores"]
        seconds["zero-cost"].append(time.perf_counter() - t)
        t = time.perf_counter()
        s = supernet.evaluate(spec)
        seconds["supernet"].append(time.perf_counter() - t)
        scores[name] = {**{k: z[k] for k in ZERO_COST}, "supernet": s.score, "supernet_dev": s.dev[s.metric]}
        print(f"{name:<16} " + "  ".join(f"{k} {v:.4g}" for k, v in scores[name].items()), flush=True)
    return scores, {k: statistics.fmean(v) for k, v in seconds.items()}, train_s


def main() -> None:
    args = toolkit.parse(toolkit.parser(__doc__))
    steps = toolkit.config(args, proxy=toolkit.SCRATCH).proxy.steps
    short, long = toolkit.score_designs(DESIGNS, args), toolkit.score_designs(DESIGNS, args, steps=LONGER * steps)
    cheap, seconds, supernet_train_s = cheap_scores(args)
    reference = {n: statistics.fmean(long[n].heldout) for n in DESIGNS}
    reference_dev = {n: statistics.fmean(long[n].dev) for n in DESIGNS}
    proxies = {
        "finetune (search default)": ({n: statistics.fmean(short[n].heldout) for n in DESIGNS}, statistics.fmean(
            s for n in DESIGNS for s in short[n].seconds)),
        "supernet": ({n: cheap[n]["supernet"] for n in DESIGNS}, seconds["supernet"]),
        **{f"zero-cost {k}": ({n: cheap[n][k] for n in DESIGNS}, seconds["zero-cost"]) for k in ZERO_COST},
    }
    names = list(DESIGNS)
    table = []
    for proxy, (score, secs) in proxies.items():
        x = [score[n] for n in names]
        table.append({
            "proxy": proxy,
            "tau_vs_long_heldout": round(kendall_tau(x, [reference[n] for n in names]), 3),
            "tau_vs_long_dev": round(kendall_tau(x, [reference_dev[n] for n in names]), 3),
            "seconds_per_design": round(secs, 2),
        })
    rows = [{"design": n, "groups": DESIGNS[n].pattern(), "long_heldout": round(100 * reference[n], 2),
             "long_dev": round(100 * reference_dev[n], 2), **{p: round(s[n], 5) for p, (s, _) in proxies.items()}}
            for n in names]
    report = [
        "# proxy_fidelity: which cheap proxy ranks designs like a longer fine-tune?", "",
        f"Command: `{toolkit.command()}` (from the repository root)", "",
        f"Reference: the search's default proxy fine-tuned {LONGER}x longer, mean over seeds "
        f"{', '.join(map(str, args.seeds))}; the short fine-tune is the same proxy at the search's budget. "
        f"Zero-cost scores and the supernet (trained once over groups {{1,2,4,8,16}} from the same random init, "
        f"{LONGER}x the search's steps, {supernet_train_s:.0f} s) use seed {args.seeds[0]}.", "",
        "| proxy | Kendall tau vs long (held-out) | vs long (dev) | s / design |", "| --- | ---: | ---: | ---: |",
        *[f"| {r['proxy']} | {r['tau_vs_long_heldout']:+.3f} | {r['tau_vs_long_dev']:+.3f} | {r['seconds_per_design']} |"
          for r in table],
        "", "## Scores per design", "", *md_table(rows, {k: k for k in rows[0]}),
    ]
    fig = go.Figure([go.Bar(x=[r["proxy"] for r in table], y=[r["tau_vs_long_heldout"] for r in table], name="held-out"),
                     go.Bar(x=[r["proxy"] for r in table], y=[r["tau_vs_long_dev"] for r in table], name="dev")])
    fig.update_layout(title=f"Kendall tau of each proxy vs a {LONGER}x longer fine-tune ({len(names)} designs)",
                      yaxis_title="Kendall tau", barmode="group")
    toolkit.write(HERE, args, rows, report, fig, "proxy_fidelity.png", extra={"taus.csv": csv_text(table)})


if __name__ == "__main__":
    main()

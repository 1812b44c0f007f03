"""The lessons' command line and their config: ``conf/run.yaml`` composed with Hydra as
``python -m arch_search run`` composes it (the lessons' proxy ``COMPRESSED``, or ``SCRATCH``), with
--quick's tiny budget; the key that names what makes two scores comparable (``proxy_key``).
Accuracy is measured at the proxy scale (the checkpoint's dims), latency and FLOPs at the target
scale (the design's own dims; ``target``), as in the search (``../shared/DESIGN.md``, "Two
scales")."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from arch_search import ArchSpec
from arch_search.resources import conf_dir
from arch_search.study.fingerprint import scored_settings
from experiments.toolkit.paths import REPO, checkpoint, glue_dir

SEEDS = (0, 1, 2)
# The lessons' proxy (issue 23): the per-design compressed proxy (conf/proxy/compressed.yaml) at
# its default budget on the pretrained setup, one teacher and one held-out split (setup seed 0);
# ``seed`` moves only the per-design training, so every seed scores every design on the same
# batches and rows (common random numbers) and differences between designs are paired.
COMPRESSED = ("proxy_setup=pretrained", "proxy=compressed", "proxy_setup.seed=0")
# The from-scratch fine-tune (the run's default before the distilled supernet; seed SNR ~1): the
# proxy of the lessons' earlier results and of proxy_fidelity; its seed moves the held-out split too.
SCRATCH = ("proxy=finetune_scratch", "proxy_setup=scratch", "proxy_setup.seed={seed}")
# --quick: a smoke run of the whole script in seconds (nothing is written)
QUICK_OVERRIDES = {
    COMPRESSED: ("task=wnli", "proxy.teacher_steps=2", "proxy.calibration=8", "proxy.distill_steps=2", "proxy.steps=2",
                 "proxy.batch_size=8", "proxy.permute=false", "proxy.refit=false", "proxy_setup.heldout=60", "proxy_setup.max_len=16", "seq_len=16", "latency.warmup=0"),
    SCRATCH: ("proxy.steps=2", "proxy_setup.heldout=100", "proxy_setup.max_len=16",
              "proxy_setup.scale={hidden:64,layers:1,heads:4,intermediate:128}", "seq_len=16", "latency.warmup=0"),
}
QUICK_TARGET = {"hidden": 64, "layers": 2, "heads": 4, "intermediate": 256}  # tiny target dims to time


def parser(doc: str) -> argparse.ArgumentParser:
    """The command line every lesson shares (a script may add its own options)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="proxy seeds (run.yaml's `seed`)")
    ap.add_argument("--rounds", type=int, default=50, help="interleaved timed rounds per design (latency.rounds)")
    ap.add_argument("--data-dir", default=glue_dir(), help="GLUE TSV folders")
    ap.add_argument("--cache-dir", default=str(REPO / ".cache" / "arch_search"), help="teachers, tokenizers")
    ap.add_argument("--proxy-threads", type=int, default=None,
                    help="training threads (proxy.threads; default: the proxy's). 1 keeps a shared machine's other "
                         "core free: 2 OpenMP threads beside another busy process stall at barriers")
    ap.add_argument("--render", action="store_true",
                    help="only write the report from the rows already stored (scores.csv, latency.csv): no training, no timing")
    ap.add_argument("--scores-only", action="store_true",
                    help="only score what scores.csv lacks (no timing, no report): a second core can score while the "
                         "first runs another lesson; a later plain run times on a quiet machine and writes the report")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny budget, 2 seeds, tiny target; writes nothing")
    return ap


def parse(ap: argparse.ArgumentParser) -> argparse.Namespace:
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.rounds = args.seeds[:2], 2  # two seeds: the paired noise needs them
    return args


def config(args: argparse.Namespace, seed: int = 0, proxy: tuple[str, ...] = COMPRESSED, task: str | None = None,
           extra: Sequence[str] = (), budget: int = 1) -> DictConfig:
    """``conf/run.yaml`` as ``python -m arch_search run seed=<seed> <proxy> ~confirm`` composes
    it (``proxy``: ``COMPRESSED``, the lessons' proxy, or ``SCRATCH``), on ``task`` (default:
    run.yaml's, SST-2; under --quick WNLI) with the ``extra`` overrides; ``budget``: that many
    times the compressed proxy's healing budget (its distillation and fine-tune steps, after
    every override; the teacher stays the same)."""
    overrides = [
        f"seed={seed}", *(o.format(seed=seed) for o in proxy), "~confirm",
        f"task.data_dir={args.data_dir}", f"cache_dir={args.cache_dir}", f"proxy_setup.checkpoint={checkpoint()}",
        f"latency.rounds={args.rounds}", "proxy.progress=false", *([f"task={task}"] if task else []), *extra,
    ]
    if args.proxy_threads is not None:
        overrides.append(f"proxy.threads={args.proxy_threads}")
    if args.quick:
        overrides += [o for o in QUICK_OVERRIDES[proxy] if not (task and o.startswith("task="))]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="run", overrides=overrides)
    if budget != 1:
        if proxy != COMPRESSED:
            raise ValueError("budget multiplies the compressed proxy's healing steps: use proxy=COMPRESSED")
        cfg.proxy.distill_steps, cfg.proxy.steps = budget * cfg.proxy.distill_steps, budget * cfg.proxy.steps
    return cfg


def target(spec: ArchSpec, args: argparse.Namespace) -> ArchSpec:
    """The design at the scale it is timed and costed at (tiny under --quick)."""
    return spec.with_scale(**QUICK_TARGET) if args.quick else spec


def proxy_key(cfg: DictConfig) -> str:
    """12 hex digits naming what makes two scores comparable: the task and the proxy's and its
    setup's scored settings (``scored_settings``, as a study's fingerprint has them)."""
    blob = json.dumps({"task": cfg.task.name, "proxy": scored_settings(cfg.proxy, kind=cfg.proxy._target_),
                       "setup": scored_settings(cfg.proxy_setup)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]

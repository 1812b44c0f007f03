"""The experiments' config: ``conf/run.yaml`` composed with Hydra as ``python -m arch_search run``
composes it (``compose_run``; a proxy on its setup with overrides: ``proxy_run``, e.g. the
lessons' proxy ``COMPRESSED``, ``SUPERNET`` or ``SCRATCH``), the lessons' command line and their
config with --quick's tiny budget (``config``), and the key that names what makes two scores
comparable (``proxy_key``).
Accuracy is measured at the proxy scale (the checkpoint's dims), latency and FLOPs at the target
scale (the design's own dims; ``target``), as in the search (``../shared/DESIGN.md``, "Two
scales")."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

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
# The distilled supernet, the default search's proxy, on the lessons' setup (one teacher and held-out split).
SUPERNET = ("proxy_setup=pretrained", "proxy=supernet", "proxy_setup.seed=0")
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


def compose_run(overrides: Sequence[str]) -> DictConfig:
    """``conf/run.yaml`` as ``python -m arch_search run <overrides>`` composes it."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="run", overrides=list(overrides))


def proxy_run(proxy: tuple[str, ...], seed: int, cache_dir: str, data_dir: str | None = None, task: str | None = None,
              extra: Sequence[str] = (), budget: int = 1) -> DictConfig:
    """``conf/run.yaml`` as ``python -m arch_search run seed=<seed> <proxy> ~confirm`` composes
    it (``proxy``: ``COMPRESSED``, ``SUPERNET`` or ``SCRATCH``), on ``task`` (default: run.yaml's,
    SST-2) with GLUE from ``data_dir`` (default ``glue_dir()``), the checkpoint (``checkpoint()``),
    ``cache_dir``, no progress bars, and the ``extra`` overrides last; ``budget``: that many times
    the compressed proxy's healing budget (its distillation and fine-tune steps, after every
    override; the teacher stays the same). ``instantiate(cfg.proxy)`` builds the proxy as ``run``
    builds it."""
    cfg = compose_run([
        f"seed={seed}", *(o.format(seed=seed) for o in proxy), "~confirm",
        f"task.data_dir={data_dir or glue_dir()}", f"cache_dir={cache_dir}", f"proxy_setup.checkpoint={checkpoint()}",
        "proxy.progress=false", *([f"task={task}"] if task else []), *extra,
    ])
    if budget != 1:
        if proxy != COMPRESSED:
            raise ValueError("budget multiplies the compressed proxy's healing steps: use proxy=COMPRESSED")
        cfg.proxy.distill_steps, cfg.proxy.steps = budget * cfg.proxy.distill_steps, budget * cfg.proxy.steps
    return cfg


def proxy_settings(name: str) -> dict:
    """conf/proxy/<name>.yaml's settings as ``run proxy=<name>`` resolves them on its default task,
    without the setup and the seed (the run's)."""
    cfg = compose_run(["proxy_setup=pretrained", f"proxy={name}"])
    settings = OmegaConf.to_container(cfg.proxy, resolve=True)
    return {k: v for k, v in settings.items() if k not in ("_target_", "setup", "seed")}


def config(args: argparse.Namespace, seed: int = 0, proxy: tuple[str, ...] = COMPRESSED, task: str | None = None,
           extra: Sequence[str] = (), budget: int = 1) -> DictConfig:
    """A lesson's ``proxy_run`` from its command line (``parser``): GLUE, cache, latency rounds
    and the proxy's threads from ``args``, on ``task`` (default: run.yaml's, SST-2; under --quick
    WNLI with --quick's tiny budget) with the ``extra`` overrides and ``budget``."""
    overrides = [f"latency.rounds={args.rounds}", *extra]
    if args.proxy_threads is not None:
        overrides.append(f"proxy.threads={args.proxy_threads}")
    if args.quick:
        overrides += [o for o in QUICK_OVERRIDES[proxy] if not (task and o.startswith("task="))]
    return proxy_run(proxy, seed, args.cache_dir, args.data_dir, task, overrides, budget)


def target(spec: ArchSpec, args: argparse.Namespace) -> ArchSpec:
    """The design at the scale it is timed and costed at (tiny under --quick)."""
    return spec.with_scale(**QUICK_TARGET) if args.quick else spec


def proxy_key(cfg: DictConfig) -> str:
    """12 hex digits naming what makes two scores comparable: the task and the proxy's and its
    setup's scored settings (``scored_settings``, as a study's fingerprint has them)."""
    blob = json.dumps({"task": cfg.task.name, "proxy": scored_settings(cfg.proxy, kind=cfg.proxy._target_),
                       "setup": scored_settings(cfg.proxy_setup)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]

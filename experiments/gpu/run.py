"""On a GPU (issue 24): what the proxies, the search and the speedup lesson do on CUDA, in one
prepared script for a lent GPU machine (README.md here: what to carry, the one command).

    python experiments/gpu/run.py --out $OUT                                 # on the GPU machine: ~8 minutes on an H100
    python experiments/gpu/run.py --quick --device cpu --out "$(mktemp -d)"  # smoke run of every step (CI)

Steps, most wanted first; ``<out>/gpu.json`` is rewritten as each one ends, so a run cut short
keeps what finished, and a step is skipped once ``--budget`` seconds have passed:

1. ``env``: the GPU, torch and CUDA versions.
2. ``tests``: the tests marked ``gpu`` (``pytest -m gpu``): a real GPU, nothing faked.
3. ``proxy``: the lessons' compressed proxy (``toolkit.COMPRESSED``: conf/proxy/compressed.yaml at
   its default budget, SST-2) on the device. The task teacher's fine-tune is timed first (on the
   device, cached); then SqueezeBERT at each seed in bf16 autocast and again in fp32, and all six at
   G=4 and FFN-in at G=16 at the first seed: seconds per design.
4. ``speedup``: ``experiments/speedup/run.py --device <device>`` (its files copied to ``<out>``).
5. ``supernet``: the distilled supernet's training (conf/proxy/supernet.yaml, the default search's
   proxy) on the device, seconds.
6. ``search``: a 16-trial default search with ``latency.device=<device>`` (``python -m arch_search
   run``; it reuses the teacher and the supernet above): seconds, and its front.
7. ``cpu``: SqueezeBERT at the same seeds on this machine's CPU with the same teacher, paired by seed
   with step 3: device - CPU held-out accuracy against its minimum detectable effect says whether
   the device changes what a score means (it is not in the study fingerprint: this is the check).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra.utils import instantiate

from arch_search import ArchSpec
from arch_search.cache import atomic_path
from experiments import toolkit

HERE = Path(__file__).resolve().parent
BASE = ArchSpec.preset("bert_base")
SQUEEZEBERT = "SqueezeBERT"
DESIGNS = {SQUEEZEBERT: ArchSpec.preset("squeezebert"), "all-4": BASE.replace(groups=4),
           "ffn_in 16": BASE.replace(groups={"ffn_in": 16})}


def env(args) -> dict:
    gpu = torch.cuda.is_available()
    return {"device": args.device, "gpu": torch.cuda.get_device_name() if gpu else None, "cuda": torch.version.cuda,
            "torch": torch.__version__, "python": sys.version.split()[0], "bf16": gpu and torch.cuda.is_bf16_supported(),
            "cpu_cores": os.cpu_count(), "checkpoint": toolkit.relative(toolkit.checkpoint())}


def tests(args) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "tests/"]
    done = subprocess.run(cmd, cwd=toolkit.REPO, capture_output=True, text=True)
    return {"returncode": done.returncode, "summary": (done.stdout.strip().splitlines() or [""])[-1]}


_SCORED: dict[tuple, dict[str, toolkit.Scores]] = {}  # --quick stores no rows: the cpu step reuses these


def scored(args, here: str, designs: dict[str, ArchSpec], extra: list[str], seeds=None) -> dict[str, toolkit.Scores]:
    """``designs`` x seeds through the lessons' proxy with ``extra``, stored in ``<work>/<here>/scores.csv``
    (resumable; its own folder, so no row of another set-up is taken for it) and copied to ``<out>``."""
    folder = Path(args.work) / here
    folder.mkdir(parents=True, exist_ok=True)
    run = argparse.Namespace(**{**vars(args), "seeds": seeds or args.seeds})
    key = (here, tuple(designs), tuple(run.seeds))
    if key not in _SCORED:
        _SCORED[key] = toolkit.stored_scores(designs, run, folder, extra=extra)
    scores = _SCORED[key]
    if (folder / "scores.csv").is_file():
        shutil.copy(folder / "scores.csv", Path(args.out) / f"scores_{here}.csv")
    return scores


def as_json(scores: dict[str, toolkit.Scores]) -> dict:
    return {name: {"seeds": list(s.seeds), "heldout": list(s.heldout), "dev": list(s.dev), "seconds": list(s.seconds)}
            for name, s in scores.items()}


def proxy(args) -> dict:
    on = [f"proxy_setup.device={args.device}"]
    cfg = toolkit.config(args, args.seeds[0], extra=on)
    t0 = time.perf_counter()
    instantiate(cfg.proxy).teacher  # fine-tuned on the device and cached: every score below reuses it
    out = {"teacher_seconds": round(time.perf_counter() - t0, 1), "teacher_steps": cfg.proxy.teacher_steps}
    squeeze = {SQUEEZEBERT: DESIGNS[SQUEEZEBERT]}
    others = {k: v for k, v in DESIGNS.items() if k != SQUEEZEBERT}
    out["bf16"] = as_json({**scored(args, "bf16", squeeze, [*on, "proxy_setup.bf16=true"]),
                           **scored(args, "bf16", others, [*on, "proxy_setup.bf16=true"], args.seeds[:1])})
    out["fp32"] = as_json(scored(args, "fp32", squeeze, [*on, "proxy_setup.bf16=false"]))
    return out


def cpu(args) -> dict:
    """SqueezeBERT on the CPU (all cores), paired by seed with the device's bf16 and fp32 scores."""
    threads = [f"proxy.threads={os.cpu_count()}"]
    squeeze = {SQUEEZEBERT: DESIGNS[SQUEEZEBERT]}
    on_cpu = scored(args, "cpu", squeeze, ["proxy_setup.device=cpu", *threads])[SQUEEZEBERT]
    out = {"cpu": as_json({SQUEEZEBERT: on_cpu})}
    for precision in ("bf16", "fp32"):
        on_device = scored(args, precision, squeeze, [f"proxy_setup.device={args.device}",
                                                       f"proxy_setup.bf16={precision == 'bf16'}"])[SQUEEZEBERT]
        pair = {"device": on_device, "cpu": on_cpu}  # stored rows: nothing is scored again
        d, mde = toolkit.compare(pair, "device", "cpu"), toolkit.mde(pair)
        out[f"{precision} - cpu"] = {"points": round(d.mean, 2), "mde_points": round(mde, 2),
                                     "exceeds_noise": abs(d.mean) > mde}
    return out


def speedup(args) -> dict:
    cmd = [sys.executable, str(HERE.parent / "speedup" / "run.py"), "--device", args.device, *(["--quick"] if args.quick else [])]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=toolkit.REPO, check=True)
    copied = [f.name for f in sorted(HERE.parent.glob("speedup/*_cuda.*"))]
    for name in copied:
        shutil.copy(HERE.parent / "speedup" / name, Path(args.out) / f"speedup_{name}")
    return {"seconds": round(time.perf_counter() - t0, 1), "files": copied}


def supernet(args) -> dict:
    quick = ["task=wnli", "proxy.steps=2", "proxy.teacher_steps=2", "proxy.batch_size=8", "proxy_setup.heldout=60",
             "proxy_setup.max_len=16"] if args.quick else []
    as_run = argparse.Namespace(**{**vars(args), "quick": False})  # lessons' quick overrides are the compressed proxy's
    cfg = toolkit.config(as_run, args.seeds[0], proxy=toolkit.SUPERNET, extra=[f"proxy_setup.device={args.device}", *quick])
    proxy_ = instantiate(cfg.proxy)
    proxy_.teacher.model  # the teacher (cached by step 3) apart from the timing
    t0 = time.perf_counter()
    proxy_.supernet
    return {"train_seconds": round(time.perf_counter() - t0, 1), "steps": cfg.proxy.steps}


def search(args) -> dict:
    run_dir = Path(args.work) / "search"
    quick = ["proxy=zero_cost", "~confirm", "task=wnli", "proxy_setup.heldout=60", "seq_len=16", "latency.rounds=2",
             "latency.warmup=0"] if args.quick else []
    cmd = [sys.executable, "-m", "arch_search", "run", "space=squeezebert", f"search.n_trials={2 if args.quick else 16}",
           f"latency.device={args.device}", f"proxy_setup.device={args.device}", f"task.data_dir={args.data_dir}",
           f"cache_dir={args.cache_dir}", f"proxy_setup.checkpoint={toolkit.checkpoint()}", "search.progress=false",
           f"hydra.run.dir={run_dir}", *quick]
    seconds = toolkit.run_logged(cmd, run_dir, os.environ)
    log = (run_dir / "log.txt").read_text().replace(str(Path(args.work)), "<work>")
    (Path(args.out) / "search_log.txt").write_text(toolkit.relative(log))  # committed: names no folder of the machine
    with open(run_dir / "pareto.csv") as f:
        front = list(csv.DictReader(f))
    return {"seconds": round(seconds, 1), "trials": 2 if args.quick else 16, "front": front}


STEPS = {"env": env, "tests": tests, "proxy": proxy, "speedup": speedup, "supernet": supernet, "search": search, "cpu": cpu}


def main() -> None:
    ap = toolkit.parser(__doc__)
    ap.add_argument("--out", required=True, help="what comes back: gpu.json, scores_*.csv, search_log.txt, speedup_*")
    ap.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "arch_search_gpu"),
                    help="scores, the search's run directory (resumable; default: arch_search_gpu in the temporary directory)")
    ap.add_argument("--device", default="cuda", help="cuda (cpu: the smoke run)")
    ap.add_argument("--skip", nargs="*", default=[], choices=list(STEPS), help="steps to leave out")
    ap.add_argument("--budget", type=float, default=480, help="seconds after which no further step starts")
    args = toolkit.parse(ap)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    report, start = Path(args.out) / "gpu.json", time.perf_counter()
    results = json.loads(report.read_text()) if report.is_file() else {}
    for name, step in STEPS.items():
        if name in args.skip or name in results:
            continue
        if time.perf_counter() - start > args.budget:
            print(f"== {name}: skipped, past the {args.budget:.0f} s budget", flush=True)
            continue
        t0 = time.perf_counter()
        print(f"== {name}", flush=True)
        results[name] = {**step(args), "step_seconds": round(time.perf_counter() - t0, 1)}
        with atomic_path(report) as tmp:
            tmp.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps(results[name]), flush=True)


if __name__ == "__main__":
    main()

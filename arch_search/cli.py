"""``python -m arch_search <command> [hydra overrides]`` -- the only module that sees the config.

``run`` and ``evaluate`` compose ``conf/config.yaml`` with Hydra (so ``arch=squeezebert``,
``arch.groups.ffn_in=8`` or ``latency.threads=2`` work, and a bad override is Hydra's error,
exit code 1), instantiate typed objects from it and call the library. ``export``, ``report``
and ``dashboard`` read an existing run and take plain arguments, not overrides.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from arch_search.cost import count_cost
from arch_search.latency import Comparison
from arch_search.model import build_model
from arch_search.proxies import ProxyResult
from arch_search.resources import conf_dir
from arch_search.spec import ArchSpec

COMMANDS: dict[str, str] = {
    "run": "the multi-objective search over a space (e.g. `run space=squeezebert`, `run search=quick`)",
    "evaluate": "costs and measured latency of one design vs its dense reference "
    "(e.g. `evaluate arch=squeezebert arch.groups.ffn_in=8 latency.threads=2`)",
    "export": "a trial of a run as spec YAML, HF checkpoint or ONNX "
    "(e.g. `export outputs/2026-11-25/12-00-00 trial=3 format=hf [out=DIR]`)",
    "report": "HTML + PNG report of a study: `report <run dir | storage URL> [--study NAME] [--out DIR]`",
    "dashboard": "optuna-dashboard on a study: `dashboard <run dir | storage URL> [--host H] [--port P]`",
}
CONFIG_OF = {"run": "run", "evaluate": "config"}  # the primary config each command composes (Hydra)


def usage() -> str:
    lines = ["usage: python -m arch_search <command> [hydra overrides]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    lines += ["", f"configs: {conf_dir()}  (add --cfg job to print the composed config)"]
    return "\n".join(lines)


def _spec(cfg: DictConfig) -> ArchSpec:
    try:
        return instantiate(cfg.arch, _convert_="all")
    except InstantiationException as e:  # ArchSpec's ValueError, e.g. groups that do not divide
        raise SystemExit(f"error: invalid arch: {e.__cause__ or e}") from None


def evaluate(cfg: DictConfig) -> Comparison:
    """Print params, GMACs, GFLOPs and latency of ``cfg.arch`` beside its dense reference."""
    spec = _spec(cfg)
    dense = spec.replace(groups={}, shuffle=False)
    designs = {"candidate": spec} if spec.is_dense else {"dense reference": dense, "candidate": spec}
    costs = {name: count_cost(s, seq_len=cfg.seq_len, batch=cfg.batch) for name, s in designs.items()}
    compare = instantiate(cfg.latency)
    comparison = compare({name: build_model(s) for name, s in designs.items()}, baseline=next(iter(designs)))
    print(format_table(designs, costs, comparison))
    if cfg.get("proxy") is not None:
        print()
        print(format_proxy(instantiate(cfg.proxy).evaluate(spec), cfg.task.name))
    return comparison


def run(cfg: DictConfig) -> None:
    """Search ``cfg.search.space`` with Optuna; print the Pareto front, write trials.csv,
    pareto.csv and study.json to the run directory (where the SQLite study lives too)."""
    from hydra.core.hydra_config import HydraConfig

    from arch_search.lut import lut_for
    from arch_search.search import Constraints, Search, format_pareto
    from arch_search.space import SearchSpace, SpaceError
    from arch_search.tracking import WandbTracker

    try:
        space = SearchSpace.load(cfg.search.space, proxy_scale=cfg.proxy_setup.scale)
    except SpaceError as e:
        raise SystemExit(f"error: {e}") from None
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    predict = None
    if cfg.search.latency_mode == "lut" and cfg.latency.get("backend", "torch") != "torch":
        raise SystemExit("error: search.latency_mode=lut prices designs from torch timings; "
                         "use latency.backend=torch with it (or latency_mode=measured)")
    if cfg.search.latency_mode == "lut":
        lat = cfg.latency
        lut = lut_for(space.covering_specs(), space.random_specs(cfg.search.lut_heldout, cfg.seed), cfg.cache_dir,
                      cfg.seq_len, cfg.batch, lat.threads, lat.warmup, lat.rounds)
        predict = lut.latency
    elif cfg.search.latency_mode != "measured":
        raise SystemExit(f"error: search.latency_mode must be measured or lut, got {cfg.search.latency_mode!r}")
    study_name = cfg.search.study_name or space.name
    tracker = instantiate(cfg.logger)
    if isinstance(tracker, WandbTracker):  # the run config goes beside each trial's spec
        tracker.config = {"run": OmegaConf.to_container(cfg, resolve=False)}
    search = Search(
        space=space,
        proxy=_proxy_for(space, cfg),
        measure=instantiate(cfg.latency),
        study_name=study_name,
        storage=instantiate(cfg.storage),
        sampler=instantiate(cfg.search.sampler, seed=cfg.seed + cfg.search.worker),
        seq_len=cfg.seq_len,
        batch=cfg.batch,
        constraints=Constraints(**cfg.search.constraints),
        tracker=tracker,
        predict=predict,
        weights_dir=run_dir / "weights",
    )
    print(f"space {space.name}: {space.size:,} designs; study {study_name!r} in {run_dir}")
    t0 = time.perf_counter()
    search.run(cfg.search.n_trials, progress=cfg.search.progress)
    remeasured = search.remeasure(search.pareto())  # whatever the latency mode
    pareto = search.rows(search.pareto(), remeasured)
    search.write(run_dir, remeasured)
    tracker.finish(search.study, pareto)
    print(f"\nPareto front ({time.perf_counter() - t0:.0f} s; accuracy: {cfg.task.name} held-out slice of train; "
          "latency re-measured at the end, interleaved):")
    print(format_pareto(pareto))
    print(f"\nwrote {run_dir}/trials.csv, pareto.csv, study.json")


def _proxy_for(space, cfg: DictConfig):
    """The configured proxy; a supernet is trained over exactly the space's choices, and a
    space that changes dims (which a grouping supernet cannot cover) falls back to finetune."""
    from arch_search.proxies import FinetuneProxy, SupernetProxy

    proxy = instantiate(cfg.proxy)
    if not isinstance(proxy, SupernetProxy):
        return proxy
    if space.changes_dims:
        print(f"note: space {space.name} changes dims; the supernet covers groups and shuffle at fixed dims: "
              "falling back to proxy=finetune (its default settings)")
        return FinetuneProxy(proxy.setup)
    groups = sorted({g for choices in space.groups.values() for g in choices})
    return instantiate(cfg.proxy, groups=groups, shuffle=True in space.shuffle, per_layer=space.per_layer)


def format_proxy(result: ProxyResult, task: str) -> str:
    """The proxy's score (on the held-out slice of train: what a search sees) and dev metrics."""
    d = result.details
    how = f" ({d['init']} init, {d['steps']} steps)" if "steps" in d else ""
    lines = [f"accuracy proxy: {d['proxy']} on {task}{how}"]
    lines.append(f"  score (search signal, held-out slice of train): {result.metric} {result.score:.4f}")
    if result.dev:
        lines.append("  dev (reported numbers): " + ", ".join(f"{k} {v:.4f}" for k, v in result.dev.items()))
    if "scores" in d:
        lines.append("  all scores: " + ", ".join(f"{k} {v:.4g}" for k, v in d["scores"].items()))
    return "\n".join(lines)


def format_table(designs: dict[str, ArchSpec], costs: dict, comparison: Comparison) -> str:
    env = next(iter(comparison.latencies.values())).env
    head = f"{'design':<16} {'spec':<44} {'params':>8} {'GMACs':>7} {'GFLOPs':>7} {'median ms':>10} {'p10-p90 ms':>15} {'CV':>6} {'speedup':>8}"
    rows = [head, "-" * len(head)]
    for name, spec in designs.items():
        c, lat = costs[name], comparison.latencies[name]
        rows.append(
            f"{name:<16} {spec.summary():<44} {c.params / 1e6:>7.1f}M {c.gmacs:>7.2f} {c.gflops:>7.2f} "
            f"{lat.median_ms:>10.1f} {f'{lat.p10_ms:.1f}-{lat.p90_ms:.1f}':>15} {lat.cv:>6.3f} "
            f"{comparison.speedup[name]:>7.2f}x"
        )
    n = len(next(iter(comparison.latencies.values())).samples_ms)
    c0 = next(iter(costs.values()))
    rows += [
        "",
        f"batch {c0.batch}, seq {c0.seq_len}; GMACs/GFLOPs: encoder matmuls (FLOPs = 2 x MACs); "
        f"speedup vs the dense reference, {n} interleaved rounds",
        f"env: {env}",
    ]
    return "\n".join(rows)


def export(args: list[str]) -> None:
    """``export <run dir> trial=N format=spec|hf|onnx [out=DIR]``."""
    from arch_search.export import export_trial
    from arch_search.runs import RunError

    keys = dict(a.split("=", 1) for a in args[1:] if "=" in a)
    unknown = [a for a in args[1:] if "=" not in a] + sorted(set(keys) - {"trial", "format", "out"})
    if not args or args[0].count("=") or unknown or "trial" not in keys or not keys["trial"].isdigit():
        raise SystemExit("error: usage: python -m arch_search export <run dir> trial=N format=spec|hf|onnx [out=DIR]"
                         + (f" (unexpected: {' '.join(unknown)})" if unknown else ""))
    try:
        out = export_trial(Path(args[0]), int(keys["trial"]), keys.get("format", "spec"), keys.get("out"))
    except RunError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {out.path}")
    for note in out.notes:
        print(f"  {note}")


def report(argv: list[str]) -> None:
    """Write report.html and a PNG per figure for a run directory or a storage URL."""
    from arch_search.report import write_report
    from arch_search.runs import RunError

    parser = argparse.ArgumentParser(prog="python -m arch_search report", description=report.__doc__)
    parser.add_argument("target", help="run directory (with study.db) or Optuna storage URL")
    parser.add_argument("--study", help="study name (default: the run's, or the storage's only study)")
    parser.add_argument("--out", help="output directory (default: the run directory)")
    parser.add_argument("--no-png", dest="png", action="store_false", help="HTML only (PNGs need Chrome/Chromium)")
    args = parser.parse_args(argv)
    try:
        result = write_report(args.target, study=args.study, out=args.out, png=args.png)
    except RunError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {result.html} and {len(result.pngs)} PNGs ({len(result.front)} designs on the front, "
          f"{result.seconds:.1f} s)")


def dashboard(argv: list[str]) -> None:
    """Serve optuna-dashboard on a run directory's study.db or a storage URL."""
    from arch_search.dashboard import serve
    from arch_search.runs import RunError

    parser = argparse.ArgumentParser(prog="python -m arch_search dashboard", description=dashboard.__doc__)
    parser.add_argument("target", help="run directory (with study.db) or Optuna storage URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--study", help="the study whose page to print (the dashboard shows all)")
    args = parser.parse_args(argv)
    try:
        serve(args.target, host=args.host, port=args.port, study=args.study)
    except RunError as e:
        raise SystemExit(f"error: {e}") from None


def _hydra_command(fn: Callable[[DictConfig], object], config_name: str) -> Callable[[], None]:
    return hydra.main(config_path=str(conf_dir()), config_name=config_name, version_base="1.3")(fn)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    command, overrides = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"error: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    if command not in CONFIG_OF:  # plain arguments, no Hydra config
        globals()[command](overrides)
        return
    # `space=X` is short for `search.space=X`
    overrides = [f"search.{o}" if o.startswith("space=") else o for o in overrides]
    sys.argv = [f"arch_search {command}", *overrides]  # Hydra reads its overrides from sys.argv
    _hydra_command(globals()[command], CONFIG_OF[command])()

"""``python -m arch_search <command> [hydra overrides]`` -- the only module that sees the config.

``run`` and ``evaluate`` compose ``conf/config.yaml`` with Hydra (so ``arch=squeezebert``,
``arch.groups.ffn_in=8`` or ``latency.threads=2`` work, and a bad override is Hydra's error,
exit code 1), instantiate typed objects from it and call the library. ``export``, ``report``
and ``dashboard`` read an existing run and take plain arguments, not overrides.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from arch_search.checks import at_least
from arch_search.resources import conf_dir
from arch_search.study.fingerprint import StudyMismatch, scored_settings, study_fingerprint

if TYPE_CHECKING:  # torch comes with these: a command that only reads a run (report, dashboard) never loads it
    from arch_search.measure.latency import Comparison
    from arch_search.proxies import Proxy
    from arch_search.design.spec import ArchSpec

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
    from arch_search.measure.cost import count_cost
    from arch_search.nn.model import build_model
    from arch_search.measure.latency import format_evaluation

    spec = _spec(cfg)
    dense = spec.replace(groups={}, shuffle=False)
    designs = {"candidate": spec} if spec.is_dense else {"dense reference": dense, "candidate": spec}
    protocol = _built("latency", lambda: instantiate(cfg.latency))
    costs = {name: count_cost(s, seq_len=protocol.seq_len, batch=protocol.batch) for name, s in designs.items()}
    proxy = None if cfg.get("proxy") is None else _built("proxy", lambda: instantiate(cfg.proxy))
    if proxy is not None:
        _prepare(proxy)  # data and checkpoint before the timing, so that their errors come first
    comparison = protocol.compare({name: build_model(s) for name, s in designs.items()}, baseline=next(iter(designs)))
    print(format_evaluation(designs, costs, comparison))
    if proxy is not None:
        print()
        print(proxy.evaluate(spec).text(cfg.task.name))
    return comparison


def run(cfg: DictConfig) -> None:
    """Search ``cfg.search.space`` with Optuna; print the Pareto front, write trials.csv,
    pareto.csv and study.json to the run directory (where the SQLite study lives too).
    Everything checkable is checked before the study is created or touched; an error is one
    ``error:`` line, and a run that fails before its study leaves no run directory behind."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        _search(cfg, run_dir)
    except KeyboardInterrupt:
        print("interrupted: finished trials are kept in the study; rerun the same command to resume",
              file=sys.stderr)
        raise SystemExit(130) from None
    finally:
        _remove_if_empty(run_dir)


def _search(cfg: DictConfig, run_dir: Path) -> None:
    from arch_search.study.confirm import Confirmation
    from arch_search.tasks.glue import get_task
    from arch_search.study.storage import shown
    from arch_search.study.search import Constraints, Search
    from arch_search.design.space import SearchSpace, SpaceError
    from arch_search.study.run_dir import RunDir
    from arch_search.study.tracking import WandbTracker

    check_search_settings(cfg)
    try:
        space = SearchSpace.load(cfg.search.space, proxy_scale=cfg.proxy_setup.scale)
    except SpaceError as e:
        raise SystemExit(f"error: {e}") from None
    protocol = _built("latency", lambda: instantiate(cfg.latency))
    latency = _built("search.latency_mode", lambda: instantiate(cfg.search.latency_mode))
    proxy = _built("proxy", lambda: instantiate(cfg.proxy).for_space(space))
    _prepare(proxy, space.base)  # the task's data (and checkpoint) load now, not inside trial 0
    make_sampler = _built("search.sampler", lambda: instantiate(cfg.search.sampler, _partial_=True))
    _built("search.sampler", lambda: make_sampler(seed=cfg.seed))
    tracker = _built("logger", lambda: instantiate(cfg.logger))
    if isinstance(tracker, WandbTracker):  # the run config goes beside each trial's spec, storage URL masked
        config = OmegaConf.to_container(cfg, resolve=False)
        config["storage"]["url"] = shown(str(cfg.storage.url))
        tracker.config = {"run": config}
    storage = _built("storage", lambda: instantiate(cfg.storage))
    study_name = cfg.search.study_name or space.name
    noise = _noise_proxy(proxy, cfg) if cfg.search.proxy_noise else None
    noise_proxy = noise.for_space(space) if noise is not None else None
    confirm_proxies = _built("confirm", lambda: _confirm_proxies(cfg, proxy))
    for confirm_proxy in confirm_proxies.values():
        _prepare(confirm_proxy, space.base)
    try:
        search = Search(
            space=space, proxy=proxy, latency=latency, protocol=protocol, study_name=study_name, storage=storage,
            noise_proxy=noise_proxy, sampler=make_sampler, seed=cfg.seed,
            constraints=Constraints(**cfg.search.constraints), tracker=tracker,
            weights_dir=RunDir(run_dir).weights, fingerprint=study_fingerprint(cfg, protocol),
            repeat_designs=cfg.search.repeat_designs, leveled_start=cfg.search.leveled_start,
            start_bins=cfg.search.start_bins,
        )
        confirmation = Confirmation(
            confirm_proxies, storage=storage, study_name=study_name, bands=cfg.search.confirm_bands, pick=cfg.search.confirm_pick,
            weights_dir=RunDir(run_dir).weights, fingerprint=_confirm_fingerprint(cfg), dev_metric=get_task(cfg.task.name).metric,
            cache_dir=Path(cfg.cache_dir) / "confirmations" if cfg.search.get("confirm_cache") else None,
        ) if confirm_proxies else None
    except StudyMismatch as e:
        raise SystemExit(f"error: {e}") from None
    print(f"space {space.name}: {space.size:,} designs; study {study_name!r} in {run_dir}")
    t0 = time.perf_counter()
    optuna_log, quiet = logging.getLogger(_OPTUNA_TRIAL_LOGGER), _NoTraceback()
    optuna_log.addFilter(quiet)  # Optuna's "Trial N failed" warning, without its traceback
    optuna_root = logging.getLogger("optuna")
    level = optuna_root.level
    optuna_root.setLevel(logging.WARNING)  # its "Trial N finished ..." info: the search prints its own line a trial
    stage = "a trial"
    try:
        search.run(cfg.search.n_trials, progress=cfg.search.progress)
        if confirmation is not None:
            stage = "a confirmation"
            confirmation.run(search.records(), progress=cfg.search.progress)
    except Exception as e:  # a trial's unexpected error: one line here, the traceback in the run directory
        log = RunDir(run_dir).errors_log
        with open(log, "a") as f:
            f.write(traceback.format_exc())
        raise SystemExit(f"error: {stage} failed: {type(e).__name__}: {e} (traceback: {log}; "
                         "rerun the same command to resume)") from None
    finally:
        optuna_log.removeFilter(quiet)
        optuna_root.setLevel(level)
    result = search.finish(run_dir, confirmation)
    print(f"\nPareto front ({time.perf_counter() - t0:.0f} s; score: {cfg.task.name} held-out slice of train; "
          "latency re-measured at the end, interleaved):")
    print(result.text())
    print(f"\nwrote {run_dir}/trials.csv, pareto.csv, {'confirmed.csv, ' if confirmation else ''}study.json")


def _confirm_proxies(cfg: DictConfig, proxy: Any) -> dict[int, Any]:
    """The confirmation proxy (conf/confirm) for each of ``search.confirm_seeds`` seeds (the
    run's seed, the next, ...), all on one setup (``_confirm_setup``); with
    ``confirm.start=supernet``, starting each design from the search proxy's supernet. {} when
    ``~confirm`` or ``search.confirm_bands=0``."""
    if cfg.get("confirm") is None or "_target_" not in cfg.confirm or not cfg.search.confirm_bands:
        return {}  # (~confirm with search=quick leaves quick's budget keys alone in the node)
    shared = cfg.proxy_setup.init == "pretrained" and getattr(proxy, "setup", None) is not None
    setup = proxy.setup if shared else instantiate(_confirm_setup(cfg))
    start = {"supernet": proxy} if cfg.confirm.get("start") == "supernet" else {}
    return {s: instantiate(cfg.confirm, seed=s, setup=setup, **start)
            for s in range(cfg.seed, cfg.seed + cfg.search.confirm_seeds)}


def _confirm_setup(cfg: DictConfig) -> DictConfig:
    """The confirmation's setup: the search proxy's when it is pretrained (one checkpoint, one
    held-out split, one task teacher for both), else conf/confirm's own (pretrained)."""
    return cfg.proxy_setup if cfg.proxy_setup.init == "pretrained" else cfg.confirm.setup


def _confirm_fingerprint(cfg: DictConfig) -> dict[str, Any]:
    """What makes confirmations comparable: the task, the confirmation proxy, its setup."""
    return {"task": cfg.task.name, "confirm": scored_settings(cfg.confirm, kind=cfg.confirm._target_),
            "setup": scored_settings(_confirm_setup(cfg))}


_OPTUNA_TRIAL_LOGGER = "optuna.study._optimize"  # logs a failed trial (Ctrl-C too) with its traceback


class _NoTraceback(logging.Filter):
    """Keep a record, drop its traceback: the CLI reports a failed trial in one ``error:`` line
    (the traceback goes to errors.log) and Ctrl-C in one ``interrupted:`` line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info, record.exc_text = None, None
        return True


def _built(what: str, make: Callable[[], Any]) -> Any:
    """``make()``, with a config error (bad value, missing env var, bad class argument) as one line."""
    try:
        return make()
    except (InstantiationException, OmegaConfBaseException, TypeError, ValueError, OSError) as e:
        message = str(e.__cause__ or e).strip().splitlines()[0]
        raise SystemExit(f"error: {message if message.startswith(what) else f'{what}: {message}'}") from None


def _prepare(proxy: Proxy, base: ArchSpec | None = None) -> None:
    """``proxy.setup.prepare(base)``: a missing folder, a malformed file or a checkpoint the
    space cannot group stops the run in one ``error:`` line, before its study exists."""
    try:
        proxy.setup.prepare(base)
    except (OSError, ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {str(e).strip().splitlines()[0]}") from None


# (key, lowest allowed value) of the numbers only a search needs (a held-out slice to score on,
# trials, confirmations); every other number is checked by the constructor that owns it
# (LatencyProtocol, the proxies, ProxySetup, the latency models: ``arch_search.checks.at_least``)
SEARCH_SETTINGS = (("search.n_trials", 1), ("proxy_setup.heldout", 1), ("search.confirm_bands", 0), ("search.confirm_seeds", 2),
                   ("search.leveled_start", 0), ("search.start_bins", 0))


def check_search_settings(cfg: DictConfig) -> None:
    """Each number of ``SEARCH_SETTINGS`` is an int at or above its lowest value, and
    ``search.confirm_pick`` one of ``confirm.PICKS`` (it is first used after the search); one
    ``error:`` line otherwise, before anything is built."""
    from arch_search.study.confirm import PICKS

    pick = OmegaConf.select(cfg, "search.confirm_pick", default=None)
    if pick is not None and pick not in PICKS:
        raise SystemExit(f"error: search.confirm_pick must be one of {', '.join(PICKS)}, got {pick!r}")
    for key, lowest in SEARCH_SETTINGS:
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None:
            try:
                at_least(key, value, lowest)
            except ValueError as e:
                raise SystemExit(f"error: {e}") from None


def _remove_if_empty(run_dir: Path) -> None:
    """Remove a run directory that holds nothing but Hydra's own files and logs (a run that
    failed before its study existed; its error was printed)."""
    if not run_dir.is_dir():
        return
    if all(p.name == ".hydra" or p.suffix == ".log" for p in run_dir.iterdir()):
        shutil.rmtree(run_dir, ignore_errors=True)


def _noise_proxy(proxy: Proxy, cfg: DictConfig) -> Proxy | None:
    """The run's proxy with the next seed and the same setup (it scores the references again:
    the run's noise; for the supernet, a second supernet trained with the next seed), or None
    for a proxy that takes no seed (``proxy.seed is None``: zero-cost)."""
    if proxy.seed is None:
        return None
    try:
        return instantiate(cfg.proxy, seed=cfg.seed + 1, setup=proxy.setup)
    except (InstantiationException, TypeError, ValueError) as e:
        raise SystemExit(f"error: proxy: {str(e.__cause__ or e).splitlines()[0]}") from None


def export(args: list[str]) -> None:
    """``export <run dir> trial=N format=spec|hf|onnx [out=DIR]``."""
    from arch_search.app.export import export_trial
    from arch_search.study.storage import RunError

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


def _study_parser(command: str, doc: str | None, study_help: str) -> argparse.ArgumentParser:
    """The arguments of a command that reads a study: where it is, and which one."""
    parser = argparse.ArgumentParser(prog=f"python -m arch_search {command}", description=doc)
    parser.add_argument("target", help="run directory (with study.db) or Optuna storage URL")
    parser.add_argument("--study", help=study_help)
    return parser


def report(argv: list[str]) -> None:
    """Write report.html and a PNG per figure for a run directory or a storage URL."""
    from arch_search.app.report import write_report
    from arch_search.study.storage import RunError

    parser = _study_parser("report", report.__doc__, "study name (default: the run's, or the storage's only study)")
    parser.add_argument("--out", help="output directory (default: the run directory)")
    parser.add_argument("--no-png", dest="png", action="store_false", help="HTML only (PNGs need Chrome/Chromium)")
    args = parser.parse_args(argv)
    try:
        result = write_report(args.target, study=args.study, out=args.out, png=args.png)
    except RunError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"wrote {result.html} and {len(result.pngs)} PNGs ({len(result.front)} designs on the front, "
          f"{result.seconds:.1f} s)")
    for note in result.notes:
        print(f"  {note}")


def dashboard(argv: list[str]) -> None:
    """Serve optuna-dashboard on a run directory's study.db or a storage URL."""
    from arch_search.app.dashboard import serve
    from arch_search.study.storage import RunError

    parser = _study_parser("dashboard", dashboard.__doc__, "the study whose page to print (the dashboard shows all)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    try:
        serve(args.target, host=args.host, port=args.port, study=args.study)
    except RunError as e:
        raise SystemExit(f"error: {e}") from None


STORAGE_URL_ENV = "ARCH_SEARCH_STORAGE_URL"  # conf/storage/postgres.yaml reads the URL from here by default


def hide_storage_password(override: str) -> str:
    """``storage.url=<URL with a password>`` becomes ``storage.url=${oc.env:ARCH_SEARCH_STORAGE_URL}``
    with the URL moved to that environment variable (inherited by the launcher's workers), so
    the password reaches no file Hydra writes (.hydra/*.yaml), no W&B config and no message."""
    from sqlalchemy.engine import make_url

    key, _, url = override.partition("=")
    if key.lstrip("+~") != "storage.url" or "://" not in url:
        return override
    try:
        password = make_url(url).password
    except Exception:  # not a URL SQLAlchemy can parse: Optuna will say so
        return override
    if not password:
        return override
    os.environ[STORAGE_URL_ENV] = url
    return f"{key}=${{oc.env:{STORAGE_URL_ENV}}}"


def check_overrides(config_name: str, overrides: list[str]) -> None:
    """Compose the config once before Hydra runs it, so that Hydra's own errors (an unknown
    option, a misspelt key, a bad value) are one ``error:`` line, not Hydra's 7-20 line report.
    A sweep (``a=1,2``) is checked with its first value; Hydra's flags are left to Hydra."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    if any(o.startswith("-") for o in overrides):  # --multirun, --cfg job, ...: Hydra's own reporting
        overrides = [o for o in overrides if not o.startswith("-")]
        if any(o in ("job", "hydra", "all") for o in overrides):
            return
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
        single = [o.input_line if not o.is_sweep_override()
                  else f"{o.get_key_element()}={next(iter(o.sweep_string_iterator()))}" for o in parsed]
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            compose(config_name, overrides=single, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        print(f"error: {_one_line(str(e)) or type(e).__name__}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        GlobalHydra.instance().clear()


def _one_line(hydra_error: str) -> str:
    """Hydra's report as one line: its first line, and the options it lists, if any."""
    lines = [line.strip() for line in hydra_error.splitlines() if line.strip()]
    if not lines:
        return ""
    listed = next((i for i, line in enumerate(lines) if line.startswith("Available options")), None)
    if listed is None:
        return lines[0]
    options = itertools.takewhile(lambda line: not line.startswith("Config search path"), lines[listed + 1:])
    return f"{lines[0]}; options: {', '.join(options)}"


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
        PLAIN[command](overrides)
        return
    overrides = [hide_storage_password(shorthand(o)) for o in overrides]
    check_overrides(CONFIG_OF[command], overrides)
    sys.argv = [f"arch_search {command}", *overrides]  # hydra.main reads its overrides from sys.argv
    _hydra_command(COMPOSED[command], CONFIG_OF[command])()


def shorthand(override: str) -> str:
    """``space=X`` is ``search.space=X``; ``search.latency_mode=X`` picks the config group
    ``search/latency_mode`` (measured | lut)."""
    if override.startswith("space="):
        return f"search.{override}"
    if override.startswith("search.latency_mode="):
        return "search/latency_mode=" + override.split("=", 1)[1]
    return override


COMPOSED: dict[str, Callable[[DictConfig], object]] = {"run": run, "evaluate": evaluate}  # Hydra-composed
PLAIN: dict[str, Callable[[list[str]], None]] = {"export": export, "report": report, "dashboard": dashboard}

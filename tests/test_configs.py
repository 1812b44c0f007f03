"""Every config in conf/ composes and instantiates (lightning-hydra-template's lesson)."""

import os

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class, instantiate

from arch_search import ArchSpec, build_model
from arch_search.measure.latency import Comparison, LatencyProtocol
from arch_search.resources import conf_dir

ARCHS = sorted(p.stem for p in (conf_dir() / "arch").glob("*.yaml"))
LATENCIES = sorted(p.stem for p in (conf_dir() / "latency").glob("*.yaml"))


def compose_with(*overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_each_task_sets_its_max_length_held_out_rows_and_teacher_budget():
    """conf/task/<task>.yaml holds the per-task proxy settings; the setup, both proxies that train
    a teacher and the confirmation read them (RTE: 128 tokens, 500 rows, 620 steps)."""
    for task, (max_len, heldout, steps) in {"sst2": (64, 2000, 1200), "rte": (128, 500, 620), "stsb": (64, 1000, 1200)}.items():
        for proxy in ("compressed", "supernet"):
            cfg = compose_with(f"task={task}", f"proxy={proxy}", "+confirm=compressed")
            assert (cfg.proxy_setup.max_len, cfg.proxy_setup.heldout, cfg.proxy.teacher_steps) == (max_len, heldout, steps)
            assert (cfg.confirm.setup.max_len, cfg.confirm.setup.heldout, cfg.confirm.teacher_steps) == (max_len, heldout, steps)
    cfg = compose_with("task=rte", "proxy=compressed", "proxy_setup.max_len=32")  # an override still wins
    assert cfg.proxy_setup.max_len == 32 and cfg.task.max_len == 128


def test_presets_are_found():
    assert {"bert_base", "squeezebert", "minilm_l6"} <= set(ARCHS)


@pytest.mark.parametrize("name", ARCHS)
def test_every_arch_config_instantiates_to_its_preset(name):
    spec = instantiate(compose_with(f"arch={name}").arch, _convert_="all")
    assert isinstance(spec, ArchSpec) and spec == ArchSpec.preset(name)


@pytest.mark.parametrize("name", LATENCIES)
def test_every_latency_config_measures(name):
    cfg = compose_with(f"latency={name}", "seq_len=8", "latency.rounds=1", "latency.warmup=0")
    protocol = instantiate(cfg.latency)
    tiny = ArchSpec.preset("minilm_l6").with_scale(hidden=32, layers=1, heads=2, intermediate=64)
    result = protocol.compare({"m": build_model(tiny)})
    assert isinstance(result, Comparison) and len(result.latencies["m"].samples_ms) == 1


SAMPLERS = sorted(p.stem for p in (conf_dir() / "search" / "sampler").glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (conf_dir() / "search").glob("*.yaml"))
LOGGERS = sorted(p.stem for p in (conf_dir() / "logger").glob("*.yaml"))


def compose_run(*overrides, return_hydra_config=False):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="run", overrides=list(overrides), return_hydra_config=return_hydra_config)


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_search_and_sampler_config_composes(search, sampler):
    import optuna

    from arch_search.design.space import SearchSpace

    cfg = compose_run(f"search={search}", f"search/sampler={sampler}")
    assert isinstance(instantiate(cfg.search.sampler), optuna.samplers.BaseSampler)
    assert SearchSpace.load(cfg.search.space, proxy_scale=cfg.proxy_setup.scale).size > 0
    assert cfg.proxy._target_.endswith("SupernetProxy") and cfg.confirm._target_.endswith("CompressedProxy")
    assert instantiate(cfg.search.latency_mode).source == "measured"


@pytest.mark.parametrize("mode", ["measured", "lut"])
def test_every_latency_mode_instantiates_a_latency_model(mode, tmp_path):
    from arch_search.measure.latency_model import LUTLatency, MeasuredLatency

    cfg = compose_run(f"search/latency_mode={mode}", f"cache_dir={tmp_path}")
    model = instantiate(cfg.search.latency_mode)
    assert model.source == mode and isinstance(model, {"measured": MeasuredLatency, "lut": LUTLatency}[mode])
    assert model.protocol == LatencyProtocol(seq_len=128, batch=1, threads=1, warmup=5, rounds=30)  # conf/latency's
    if mode == "lut":
        assert (model.heldout_designs, str(model.cache_dir)) == (5, str(tmp_path))
        with pytest.raises(Exception, match="use latency.backend=torch"):
            instantiate(compose_run("search/latency_mode=lut", "latency.backend=onnxruntime").search.latency_mode)


@pytest.mark.parametrize("logger", LOGGERS)
def test_every_logger_config_instantiates(logger, tmp_path):
    from omegaconf import OmegaConf

    cfg = compose_run(f"logger={logger}")
    node = OmegaConf.to_container(cfg.logger, resolve=False)  # dir is the Hydra run dir
    if "dir" in node:
        node["dir"] = str(tmp_path)
    from arch_search.study.tracking import Tracker

    assert isinstance(instantiate(node), Tracker)  # what Search calls: a trial callback and finish(study, rows)


STORAGES = sorted(p.stem for p in (conf_dir() / "storage").glob("*.yaml"))


def test_the_storage_configs_are_sqlite_and_postgres():
    assert STORAGES == ["postgres", "sqlite"]  # a new one needs an instantiation test below


def test_sqlite_storage_config_opens_study_db_in_the_run_directory(tmp_path):
    """The real interpolation: ${hydra:runtime.output_dir}, set as Hydra sets it for a run."""
    import optuna
    from hydra.core.hydra_config import HydraConfig

    from arch_search.study.recovery import Requeue

    cfg = compose_run("storage=sqlite", f"hydra.runtime.output_dir={tmp_path}", return_hydra_config=True)
    hydra, before = HydraConfig.instance(), HydraConfig.instance().cfg
    hydra.set_config(cfg)
    try:
        storage = instantiate(cfg.storage)
    finally:
        hydra.cfg = before
    from arch_search.study.run_dir import RunDir

    assert isinstance(storage, optuna.storages.RDBStorage) and storage.url == f"sqlite:///{RunDir(tmp_path).study_db}"
    assert (tmp_path / "study.db").is_file()
    assert (storage.heartbeat_interval, storage.grace_period) == (60, 120)  # grace: 2 x interval
    assert isinstance(storage.failed_trial_callback, Requeue) and storage.failed_trial_callback.max_retry == 3
    optuna.create_study(study_name="s", storage=storage)
    assert optuna.get_all_study_names(storage=f"sqlite:///{tmp_path}/study.db") == ["s"]


def test_postgres_storage_config_reads_its_url_from_the_environment(monkeypatch):
    """Everything short of opening it (that connects: the next test, with a server)."""
    import inspect

    from arch_search.study.storage import storage_for

    url = "postgresql://arch:pw-in-env@db.example:5432/arch_search"
    monkeypatch.setenv("ARCH_SEARCH_STORAGE_URL", url)
    make = instantiate(compose_run("storage=postgres").storage, _partial_=True)
    assert make.func is storage_for
    assert make.keywords == {"url": url, "heartbeat_interval": 60, "grace_period": None, "max_retry": 3}
    inspect.signature(storage_for).bind(**make.keywords)  # every key is an argument
    monkeypatch.delenv("ARCH_SEARCH_STORAGE_URL")
    with pytest.raises(Exception, match="ARCH_SEARCH_STORAGE_URL"):  # no URL: refused, not a default server
        instantiate(compose_run("storage=postgres").storage, _partial_=True)


def readme_cluster_overrides() -> list[str]:
    """The arguments after `run` of README's SLURM example (its `python -m arch_search run` line)."""
    import shlex

    from tests.conftest import REPO

    section = (REPO / "README.md").read_text().split("### On a SLURM GPU cluster", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    line = next(line for line in block.splitlines() if line.startswith("python -m arch_search run "))
    return shlex.split(line)[4:]  # after `python -m arch_search run`


def test_the_readme_slurm_example_composes_a_gpu_a_worker_on_postgres(monkeypatch):
    """README's cluster command composed as each of its jobs is, on a CPU, launching nothing and
    opening no server: SLURM's launcher with its GPU keys, one worker a job, the shared study's
    storage from the environment."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from arch_search.app.cli import check_overrides, shorthand
    from arch_search.study.storage import storage_for

    args = [shorthand(a) for a in readme_cluster_overrides()]
    assert args[0] == "--multirun" and "hydra/launcher=submitit_slurm" in args
    url = "postgresql://arch:pw-in-env@db-host/arch_search"
    monkeypatch.setenv("ARCH_SEARCH_STORAGE_URL", url)
    check_overrides("run", args)  # the CLI's check before Hydra launches (the first job's values)
    parsed = OverridesParser.create().parse_overrides(args[1:])
    sweeps = {o.get_key_element(): list(o.sweep_string_iterator()) for o in parsed if o.is_sweep_override()}
    assert sweeps == {"search.worker": [str(i) for i in range(8)]}  # 8 jobs, nothing else swept
    job = [o.input_line for o in parsed if not o.is_sweep_override()] + ["search.worker=7"]
    cfg = compose_run(*job, return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert (launcher.partition, launcher.gpus_per_node, launcher.tasks_per_node, launcher.cpus_per_task,
            launcher.mem_gb, launcher.timeout_min) == ("gpu", 1, 1, 8, 32, 720)
    make = instantiate(cfg.storage, _partial_=True)
    assert make.func is storage_for and make.keywords["url"] == url
    assert (cfg.search.study_name, cfg.search.n_trials, cfg.search.worker) == ("sst2_a", 128, 7)
    assert cfg.proxy_setup.device == "auto" and cfg.cache_dir == "/shared/arch_search_cache"


@pytest.mark.postgres
def test_postgres_storage_config_opens_the_server(monkeypatch):
    import optuna

    from arch_search.study.recovery import Requeue

    url = os.environ.get("ARCH_SEARCH_POSTGRES_URL")
    assert url, "set ARCH_SEARCH_POSTGRES_URL=postgresql://user:pass@host/db (see .ci/run, which starts one)"
    monkeypatch.setenv("ARCH_SEARCH_STORAGE_URL", url)
    storage = instantiate(compose_run("storage=postgres").storage)
    assert isinstance(storage, optuna.storages.RDBStorage) and storage.url.startswith("postgresql")
    assert (storage.heartbeat_interval, storage.grace_period) == (60, 120)
    assert isinstance(storage.failed_trial_callback, Requeue)
    assert isinstance(optuna.get_all_study_names(storage=storage), list)  # the server answered


def test_supernet_proxy_sets_itself_up_for_the_space_or_refuses_one_that_changes_dims():
    from arch_search.proxies import SupernetProxy
    from arch_search.design.space import SearchSpace

    proxy = instantiate(compose_run("proxy=supernet", "proxy_setup=pretrained").proxy)
    with pytest.raises(ValueError, match="changes dims; the supernet covers groups and shuffle at fixed dims"):
        proxy.for_space(SearchSpace.load("cv_lessons"))
    per_layer = proxy.for_space(SearchSpace.load("squeezebert_per_layer"))
    assert isinstance(per_layer, SupernetProxy) and per_layer.groups == (1, 2, 4, 8, 16) and per_layer.per_layer
    assert not proxy.per_layer and per_layer.setup is proxy.setup  # a copy: the configured proxy is unchanged


def test_the_confirmation_starts_from_the_search_supernet_when_asked(monkeypatch, tmp_path):
    from arch_search.app.cli import _built, _confirm_proxies

    monkeypatch.setenv("ARCH_SEARCH_CHECKPOINT", "/models/minilm")
    cfg = compose_run("confirm.start=supernet", f"cache_dir={tmp_path}")
    proxy = instantiate(cfg.proxy)
    proxies = _confirm_proxies(cfg, proxy)
    assert sorted(proxies) == [0, 1]
    assert all(p.start == "supernet" and p.start_from is proxy and p.setup is proxy.setup for p in proxies.values())
    default = _confirm_proxies(compose_run(f"cache_dir={tmp_path}"), proxy)
    assert all(p.start == "teacher" and p.start_from is None for p in default.values())
    other = compose_run("confirm.start=supernet", "proxy=finetune", f"cache_dir={tmp_path}")
    with pytest.raises(SystemExit, match="^error: confirm: .*needs proxy=supernet"):
        _built("confirm", lambda: _confirm_proxies(other, instantiate(other.proxy)))


def test_run_defaults_to_the_distilled_supernet_confirmed_by_the_compressed_proxy(monkeypatch):
    monkeypatch.setenv("ARCH_SEARCH_CHECKPOINT", "/models/minilm")
    run = compose_run()
    assert run.proxy._target_.endswith("SupernetProxy") and run.proxy_setup.init == "pretrained"
    assert run.proxy_setup.checkpoint == "/models/minilm" and run.proxy.score == "calibrated_log_likelihood"
    assert run.confirm._target_.endswith("CompressedProxy") and run.confirm.setup == run.proxy_setup  # one setup, shared
    assert (run.search.confirm_bands, run.search.confirm_seeds, run.search.proxy_noise) == (4, 2, False)
    assert run.proxy_setup.heldout_disjoint is True and run.search.n_trials == 64
    assert run.confirm.start == "teacher"  # confirm.start=supernet: from the search's supernet (cli._confirm_proxies)
    seeded = compose_run("seed=3")  # the search's seed moves the sampler and the proxy's seed, not the data split
    assert (seeded.search.sampler.seed, seeded.proxy.seed, seeded.proxy_setup.seed, seeded.confirm.setup.seed) == (3, 3, 0, 0)
    scratch = compose_run("proxy=finetune_scratch", "proxy_setup=scratch")  # the earlier default, still selectable
    assert (scratch.proxy_setup.init, scratch.proxy_setup.checkpoint, scratch.proxy.steps, scratch.proxy.lr) == (
        "scratch", None, 400, 5e-4)
    assert dict(scratch.proxy_setup.scale) == {"hidden": 256, "layers": 4, "heads": 4, "intermediate": 1024}
    evaluate = compose_with("proxy=finetune")
    assert (evaluate.proxy_setup.init, evaluate.proxy.lr) == ("pretrained", 1e-4)
    pretrained_run = compose_run("proxy_setup=pretrained", "proxy=finetune")
    assert pretrained_run.proxy_setup.scale.hidden == 384 and pretrained_run.proxy.steps == 300


# search=quick as it composed when quick.yaml copied every key of default.yaml (pinned): the
# search node in full, and the budgets it cuts in other groups.
QUICK = {
    "search": {
        "space": "squeezebert", "study_name": "quick", "n_trials": 6, "repeat_designs": False, "proxy_noise": False,
        "leveled_start": 16, "start_bins": 7,
        "confirm_bands": 4, "confirm_pick": "front_fastest", "confirm_seeds": 2, "confirm_cache": True,
        "constraints": {"max_latency_ms": None, "max_params": None},
        "latency_mode": {"_target_": "arch_search.measure.latency_model.MeasuredLatency", "protocol": {  # ${latency}, resolved
            "_target_": "arch_search.measure.latency.LatencyProtocol", "seq_len": 128, "batch": 1,
            "threads": 1, "warmup": 1, "rounds": 5, "seed": 0, "backend": "torch", "precision": "fp32",
            "device": "cpu"}, "reference_every": 3},
        "progress": True, "worker": 0,
        "sampler": {"_target_": "optuna.samplers.TPESampler", "seed": 0, "multivariate": True},
    },
    "proxy": {"teacher_steps": 30, "steps": 30, "eval_dev": False},
    "confirm": {"teacher_steps": 30, "calibration": 32, "distill_steps": 10, "steps": 20, "eval_dev": False},
    "proxy_setup": {"heldout": 300},
    "latency": {"rounds": 5, "warmup": 1},
}


def flat(node, prefix=""):
    """{dotted key: leaf value} of a config (interpolations unresolved)."""
    from omegaconf import OmegaConf

    tree = OmegaConf.to_container(node, resolve=False) if not isinstance(node, dict) else node
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out |= flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_quick_search_is_the_default_with_smaller_budgets():
    from omegaconf import OmegaConf

    quick, default = compose_run("search=quick"), compose_run()
    assert OmegaConf.to_container(quick.search, resolve=True) == QUICK["search"]
    for group in ("proxy", "confirm", "proxy_setup", "latency"):
        assert {k: quick[group][k] for k in QUICK[group]} == QUICK[group], group
    a, b = flat(quick), flat(default)
    changed = {k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>")}
    assert changed == {"search.study_name", "search.n_trials", "proxy.teacher_steps", "proxy.steps", "proxy.eval_dev",
                       "confirm.setup.heldout", "confirm.teacher_steps", "confirm.calibration", "confirm.distill_steps",
                       "confirm.steps", "confirm.eval_dev", "proxy_setup.heldout", "latency.rounds",
                       "latency.warmup"}  # the rest is default.yaml's
    tpe = compose_run("search=quick", "search/sampler=tpe", "search.n_trials=2")
    assert tpe.search.sampler._target_ == "optuna.samplers.TPESampler" and tpe.search.n_trials == 2


PROXY_SETUPS = sorted(p.stem for p in (conf_dir() / "proxy_setup").glob("*.yaml"))
PROXY_CONFIGS = sorted(p.stem for p in (conf_dir() / "proxy").glob("*.yaml"))
TASKS = sorted(p.stem for p in (conf_dir() / "task").glob("*.yaml"))


@pytest.mark.parametrize("setup", PROXY_SETUPS)
@pytest.mark.parametrize("name", PROXY_CONFIGS)
def test_every_proxy_and_proxy_setup_config_instantiates(name, setup, tmp_path):
    """Construction only: no data is read and nothing trains (tests/test_proxies.py scores a
    design with each proxy config)."""
    from arch_search.proxies import ProxySetup

    cfg = compose_with(f"proxy={name}", f"proxy_setup={setup}", f"cache_dir={tmp_path}")
    if setup == "scratch" and name in ("compressed", "supernet"):  # they start from the checkpoint's task teacher
        with pytest.raises(Exception, match="use proxy_setup=pretrained"):
            instantiate(cfg.proxy)
        return
    proxy = instantiate(cfg.proxy)
    assert type(proxy) is get_class(cfg.proxy._target_)
    assert isinstance(proxy.setup, ProxySetup) and proxy.setup.init == setup and proxy.setup.cache_dir == str(tmp_path)
    assert (proxy.setup.checkpoint is None) == (setup == "scratch")
    # the Proxy protocol's hooks, which the CLI calls without asking: seed, for_space, setup.prepare
    assert (proxy.seed is None) == (name == "zero_cost") and callable(proxy.setup.prepare)
    if name != "supernet":  # (the supernet's copy for a space: tests/test_configs.py above)
        from arch_search.design.space import SearchSpace

        assert proxy.for_space(SearchSpace.load("squeezebert")) is proxy


@pytest.mark.parametrize("task", TASKS)
def test_every_task_config_names_its_glue_task_and_reaches_the_proxy_setup(task, monkeypatch):
    from arch_search.tasks.glue import get_task

    monkeypatch.setenv("GLUE_DIR", "/data/glue")
    cfg = compose_with(f"task={task}")
    assert get_task(cfg.task.name).name == cfg.task.name == task and cfg.task.data_dir == "/data/glue"
    setup = instantiate(cfg.proxy_setup)
    assert (setup.task, setup.data_dir) == (task, "/data/glue")


@pytest.mark.parametrize("setup", PROXY_SETUPS)
@pytest.mark.parametrize("proxy", PROXY_CONFIGS)
def test_the_fingerprint_holds_every_setting_of_a_config_but_how_it_runs(proxy, setup):
    """What each class declares (``SCORED``) is what the deny-list of run settings left before
    the declarations, for every proxy, setup and the confirmation: a committed study resumed
    with the same settings still matches."""
    from omegaconf import OmegaConf

    from arch_search.study.fingerprint import scored_settings
    from arch_search.study.fingerprint import RUN_SETTINGS

    cfg = compose_run(f"proxy={proxy}", f"proxy_setup={setup}")
    for node in (cfg.proxy, cfg.proxy_setup, cfg.confirm, cfg.confirm.setup):
        assert set(scored_settings(node)) == set(OmegaConf.to_container(node)) - RUN_SETTINGS - {"_target_"}, node._target_


def test_the_lessons_score_key_is_pinned():
    """The lessons' score store (experiments/toolkit) names its rows by the task and the scored
    settings: the SST-2 compressed proxy's key stays the one committed scores.csv rows hold."""
    from arch_search.cache import cache_key
    from arch_search.study.fingerprint import scored_settings

    cfg = compose_run("proxy=compressed", "proxy_setup.seed=0", "seed=0", "~confirm",
                      "proxy_setup.checkpoint=elsewhere/all-MiniLM-L6-v2")
    settings = {"task": cfg.task.name, "proxy": scored_settings(cfg.proxy, kind=cfg.proxy._target_),
                "setup": scored_settings(cfg.proxy_setup)}
    assert cache_key(settings, length=12) == "551c9bc485ea"


def test_a_proxy_class_that_declares_no_scored_settings_counts_every_setting_but_how_it_runs():
    """A user's own proxy (no ``SCORED``; tests/test_run_failures.py runs one) is fingerprinted by
    all its settings but the run-only ones: resuming it with another budget is refused."""
    from omegaconf import OmegaConf

    from arch_search.study.fingerprint import scored_settings

    node = OmegaConf.create({"_target_": "arch_search.measure.latency.LatencyProtocol", "seq_len": 8, "steps": 3,
                             "threads": 2, "progress": True, "checkpoint": "a/b/model"})
    assert scored_settings(node, kind="mine") == {"kind": "mine", "seq_len": 8, "steps": 3, "checkpoint": "model"}


def test_the_fingerprint_names_a_precision_only_when_it_is_not_fp32():
    """A fp32 study's fingerprint has no precision key (as before latency.precision existed); a
    run at bf16 is refused on it (its fingerprint differs in that key only)."""
    from arch_search.study.fingerprint import study_fingerprint as fingerprint
    from arch_search.study.fingerprint import fingerprint_differences

    fp32, bf16 = (fingerprint(cfg, instantiate(cfg.latency)) for cfg in (compose_run(), compose_run("latency.precision=bf16")))
    assert "precision" not in fp32["latency"] and bf16["latency"]["precision"] == "bf16"
    assert fingerprint_differences(fp32, bf16) == ["latency.precision: '(unset)' -> 'bf16'"]


def test_the_fingerprint_names_a_gpu_target_and_refuses_it_on_a_cpu_study(fake_cuda):
    """latency.device=cuda adds the device (and drops the CPU's oneDNN GEMMs): a study timed on the
    CPU is never resumed on a GPU, nor the other way round."""
    from arch_search.study.fingerprint import study_fingerprint as fingerprint
    from arch_search.study.fingerprint import fingerprint_differences

    cpu, gpu = (fingerprint(cfg, instantiate(cfg.latency)) for cfg in (compose_run(), compose_run("latency.device=cuda")))
    assert "device" not in cpu["latency"] and gpu["latency"]["device"] == "cuda"
    assert fingerprint_differences(cpu, gpu) == ["latency.device: '(unset)' -> 'cuda'",
                                                 "latency.gemm: 'onednn' -> '(unset)'"]


def test_the_fingerprint_names_the_gemm_kernels_torch_times_with():
    """Torch latencies since the oneDNN projections differ from those timed on MKL's GEMMs: a
    study made before (no key) is refused by a default run, naming the one difference;
    onnxruntime timings did not change and carry no key."""
    from arch_search.study.fingerprint import study_fingerprint as fingerprint
    from arch_search.study.fingerprint import fingerprint_differences

    now, ort = (fingerprint(cfg, instantiate(cfg.latency)) for cfg in (compose_run(), compose_run("latency.backend=onnxruntime")))
    assert now["latency"]["gemm"] == "onednn" and "gemm" not in ort["latency"]
    before = {**now, "latency": {k: v for k, v in now["latency"].items() if k != "gemm"}}
    assert fingerprint_differences(before, now) == ["latency.gemm: '(unset)' -> 'onednn'"]

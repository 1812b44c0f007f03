"""Every config in conf/ composes and instantiates (lightning-hydra-template's lesson)."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from arch_search import ArchSpec, build_model
from arch_search.latency import Comparison
from arch_search.resources import conf_dir

ARCHS = sorted(p.stem for p in (conf_dir() / "arch").glob("*.yaml"))
LATENCIES = sorted(p.stem for p in (conf_dir() / "latency").glob("*.yaml"))


def compose_with(*overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def test_presets_are_found():
    assert {"bert_base", "squeezebert", "minilm_l6"} <= set(ARCHS)


@pytest.mark.parametrize("name", ARCHS)
def test_every_arch_config_instantiates_to_its_preset(name):
    spec = instantiate(compose_with(f"arch={name}").arch, _convert_="all")
    assert isinstance(spec, ArchSpec) and spec == ArchSpec.preset(name)


@pytest.mark.parametrize("name", LATENCIES)
def test_every_latency_config_measures(name):
    cfg = compose_with(f"latency={name}", "seq_len=8", "latency.rounds=1", "latency.warmup=0")
    measure = instantiate(cfg.latency)
    tiny = ArchSpec.preset("minilm_l6").with_scale(hidden=32, layers=1, heads=2, intermediate=64)
    result = measure({"m": build_model(tiny)})
    assert isinstance(result, Comparison) and len(result.latencies["m"].samples_ms) == 1


SAMPLERS = sorted(p.stem for p in (conf_dir() / "search" / "sampler").glob("*.yaml"))
SEARCHES = sorted(p.stem for p in (conf_dir() / "search").glob("*.yaml"))
LOGGERS = sorted(p.stem for p in (conf_dir() / "logger").glob("*.yaml"))


def compose_run(*overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="run", overrides=list(overrides))


@pytest.mark.parametrize("search", SEARCHES)
@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_search_and_sampler_config_composes(search, sampler):
    import optuna

    from arch_search.space import SearchSpace

    cfg = compose_run(f"search={search}", f"search/sampler={sampler}")
    assert isinstance(instantiate(cfg.search.sampler), optuna.samplers.BaseSampler)
    assert SearchSpace.load(cfg.search.space, proxy_scale=cfg.proxy_setup.scale).size > 0
    assert cfg.proxy._target_.endswith("FinetuneProxy") and cfg.search.latency_mode in ("measured", "lut")


@pytest.mark.parametrize("logger", LOGGERS)
def test_every_logger_config_instantiates(logger, tmp_path):
    from omegaconf import OmegaConf

    cfg = compose_run(f"logger={logger}")
    node = OmegaConf.to_container(cfg.logger, resolve=False)  # dir is the Hydra run dir
    if "dir" in node:
        node["dir"] = str(tmp_path)
    tracker = instantiate(node)
    assert callable(tracker) and hasattr(tracker, "finish")


def test_storage_configs_target_the_heartbeat_storage():
    for name in ("sqlite", "postgres"):
        cfg = compose_run(f"storage={name}")
        assert cfg.storage._target_ == "arch_search.runs.storage_for" and cfg.storage.heartbeat_interval > 0


def test_supernet_proxy_follows_the_space_or_falls_back_to_finetune(capsys):
    from arch_search.cli import _proxy_for
    from arch_search.proxies import FinetuneProxy, SupernetProxy
    from arch_search.space import SearchSpace

    cfg = compose_run("proxy=supernet")
    proxy = _proxy_for(SearchSpace.load("cv_lessons"), cfg)
    assert isinstance(proxy, FinetuneProxy) and "falling back to proxy=finetune" in capsys.readouterr().out
    proxy = _proxy_for(SearchSpace.load("squeezebert_per_layer"), cfg)
    assert isinstance(proxy, SupernetProxy) and proxy.groups == (1, 2, 4, 8, 16) and proxy.per_layer


def test_run_defaults_train_from_scratch_and_evaluate_inherits():
    run = compose_run()
    assert (run.proxy_setup.init, run.proxy_setup.checkpoint, run.proxy.steps, run.proxy.lr) == ("scratch", None, 400, 5e-4)
    assert dict(run.proxy_setup.scale) == {"hidden": 256, "layers": 4, "heads": 4, "intermediate": 1024}
    assert run.proxy_setup.heldout_disjoint is True and run.search.n_trials == 64
    evaluate = compose_with("proxy=finetune")
    assert (evaluate.proxy_setup.init, evaluate.proxy.lr) == ("pretrained", 1e-4)
    pretrained_run = compose_run("proxy_setup=pretrained", "proxy=finetune")
    assert pretrained_run.proxy_setup.scale.hidden == 384 and pretrained_run.proxy.steps == 300


# search=quick as it composed when quick.yaml copied every key of default.yaml (pinned): the
# search node in full, and the budgets it cuts in other groups.
QUICK = {
    "search": {
        "space": "squeezebert", "study_name": "quick", "n_trials": 6, "repeat_designs": False, "proxy_noise": True,
        "constraints": {"max_latency_ms": None, "max_params": None}, "latency_mode": "measured", "lut_heldout": 5,
        "progress": True, "worker": 0,
        "sampler": {"_target_": "optuna.samplers.NSGAIISampler", "seed": 0, "population_size": 10},
    },
    "proxy": {"steps": 80, "eval_every": 1000, "eval_dev": False},
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
    for group in ("proxy", "proxy_setup", "latency"):
        assert {k: quick[group][k] for k in QUICK[group]} == QUICK[group], group
    a, b = flat(quick), flat(default)
    changed = {k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>")}
    assert changed == {"search.study_name", "search.n_trials", "proxy.steps", "proxy.eval_every", "proxy.eval_dev",
                       "proxy_setup.heldout", "latency.rounds", "latency.warmup"}  # the rest is default.yaml's
    tpe = compose_run("search=quick", "search/sampler=tpe", "search.n_trials=2")
    assert tpe.search.sampler._target_ == "optuna.samplers.TPESampler" and tpe.search.n_trials == 2

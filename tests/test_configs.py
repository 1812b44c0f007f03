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

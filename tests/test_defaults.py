"""One source of defaults: conf/ is where a run's numbers live. Every Python default of a class
or function that a config instantiates either equals the value of every config that sets it,
or is absent (the argument is then required: two configs disagree, e.g. finetune vs
finetune_scratch's steps and learning rate)."""

import inspect
from collections import Counter

import pytest
import yaml
from hydra.utils import get_method

from arch_search.resources import conf_dir

# config files with a _target_ (after their defaults list is merged), by group
GROUPS = ("proxy", "proxy_setup", "latency", "search/latency_mode", "storage", "logger")


def composed(group: str, name: str) -> dict:
    """conf/<group>/<name>.yaml with its in-group defaults merged (finetune_scratch <- finetune)."""
    raw = yaml.safe_load((conf_dir() / group / f"{name}.yaml").read_text())
    merged = {}
    for parent in raw.pop("defaults", []):
        if parent != "_self_":
            merged |= composed(group, parent)
    return merged | raw


def configs():
    for group in GROUPS:
        for path in sorted((conf_dir() / group).glob("*.yaml")):
            node = composed(group, path.stem)
            if "_target_" in node:
                yield pytest.param(group, path.stem, node, id=f"{group}/{path.stem}")


def literal(value) -> bool:
    """A value a Python default could equal (not an interpolation; a dict whose values are
    literal too)."""
    if isinstance(value, dict):
        return all(literal(v) for v in value.values())
    return not (isinstance(value, str) and "${" in value)


def test_every_group_has_its_configs():
    """What the two tests below compare: the configs with a ``_target_``, per group."""
    counts = Counter(p.values[0] for p in configs())
    assert counts == {"proxy": 5, "proxy_setup": 2, "latency": 1, "search/latency_mode": 2, "storage": 2, "logger": 2}


@pytest.mark.parametrize(("group", "name", "node"), list(configs()))
def test_python_defaults_equal_the_configs_or_are_absent(group, name, node):
    target = get_method(node["_target_"])
    params = inspect.signature(target).parameters
    unknown = sorted(set(node) - set(params) - {"_target_", "_partial_"})
    assert not unknown, f"{group}/{name}.yaml sets {unknown}, which {node['_target_']} does not take"
    for key, value in node.items():
        if key.startswith("_") or not literal(value):
            continue
        default = params[key].default
        if default is inspect.Parameter.empty:
            continue  # required: the config is the only source
        if isinstance(value, dict) and default is None:
            continue  # None: derived when left out (ProxySetup's scale: MINILM_DIMS, held to the config below)
        if isinstance(default, tuple) and isinstance(value, list):
            default = list(default)
        assert default == value, (f"{node['_target_']}({key}={default!r}) but {group}/{name}.yaml says {value!r}: "
                                  "make them equal or drop the Python default")


def test_two_configs_that_disagree_on_a_key_leave_it_required():
    """Where two configs of one target set a key differently, no Python default can serve
    both: the key must be required (the test above then checks nothing it could miss)."""
    seen: dict[tuple[str, str], set] = {}
    for p in configs():
        group, name, node = p.values
        for key, value in node.items():
            if not key.startswith("_") and literal(value):
                seen.setdefault((node["_target_"], key), set()).add(repr(value))
    disagree = {(target.rsplit(".", 1)[1], key): values for (target, key), values in seen.items() if len(values) > 1}
    assert set(disagree) == {("FinetuneProxy", "steps"), ("FinetuneProxy", "lr"), ("FinetuneProxy", "eval_every"),
                             ("ProxySetup", "init"), ("ProxySetup", "scale")}  # finetune vs finetune_scratch, pretrained vs scratch
    for (target, key), values in seen.items():
        if len(values) > 1:
            default = inspect.signature(get_method(target)).parameters[key].default
            if default is None and all(v.startswith("{") for v in values):
                continue  # a dict derived when left out (ProxySetup's scale), held to its config below
            assert default is inspect.Parameter.empty, f"{target}({key}=...) has a default but configs say {values}"


def test_constants_that_restate_a_config_equal_it():
    """Python values that stand in for a config's when a class is used without Hydra."""
    from arch_search.design.spec import ArchSpec
    from arch_search.proxies.setup import CACHE_DIR, MINILM_DIMS

    root = yaml.safe_load((conf_dir() / "config.yaml").read_text())
    assert CACHE_DIR == root["cache_dir"]
    arch = yaml.safe_load((conf_dir() / "arch" / "minilm_l6.yaml").read_text())
    assert MINILM_DIMS == {d: arch[d] for d in MINILM_DIMS} == {
        d: getattr(ArchSpec.preset("minilm_l6"), d) for d in MINILM_DIMS}
    pretrained = yaml.safe_load((conf_dir() / "proxy_setup" / "pretrained.yaml").read_text())
    assert pretrained["scale"] == MINILM_DIMS  # the pretrained proxy scale is the checkpoint's dims

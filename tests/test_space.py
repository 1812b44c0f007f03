import itertools

import optuna
import pytest

from arch_search import ArchSpec
from arch_search.resources import spaces_dir
from arch_search.design.space import SearchSpace, SpaceError

MINILM = {"hidden": 384, "layers": 6, "heads": 12, "intermediate": 1536}
SPACES = sorted(p.stem for p in spaces_dir().glob("*.yaml"))


def test_the_four_spaces_exist():
    assert {"squeezebert", "squeezebert_per_layer", "cv_lessons", "dense_dims"} <= set(SPACES)


@pytest.mark.parametrize("name", SPACES)
def test_every_space_loads_samples_valid_specs_and_contains_them(name):
    space = SearchSpace.load(name, proxy_scale=MINILM)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        spec = space.sample(trial)
        assert isinstance(spec, ArchSpec) and space.contains(spec)
        again = space.sample(optuna.trial.FixedTrial(space.params_of(spec)))
        assert again == spec
        study.tell(trial, 0.0)


def test_sizes():
    assert SearchSpace.load("squeezebert").size == 15_625
    assert SearchSpace.load("squeezebert_per_layer").size == 5 ** 72
    # per FFN width, the all-dense design counts once, not with and without shuffle
    assert SearchSpace.load("cv_lessons").size == (4 * 4 * 4 * 3 * 4 * 4 * 2 - 1) * 3
    assert SearchSpace.load("dense_dims").size == 3 * 2 * 3 * 4
    assert not SearchSpace.load("squeezebert").changes_dims and SearchSpace.load("dense_dims").changes_dims


def distinct_designs(space: SearchSpace) -> int:
    """Brute force: the distinct ``ArchSpec.hash`` of every parameter combination."""
    hashes = set()
    for layers in space.dims["layers"]:
        keys = [f"{p}.{i}" for p in space.groups for i in range(layers)] if space.per_layer else list(space.groups)
        for *groups, shuffle in itertools.product(*(space.groups[k.split(".")[0]] for k in keys), space.shuffle):
            params = {"dims.layers": layers, **dict(zip(keys, groups)), "shuffle": shuffle}
            hashes.add(space.sample(optuna.trial.FixedTrial(params)).hash)
    return len(hashes)


@pytest.mark.parametrize(
    "per_layer, k, size",
    [
        (False, [1], (2 * 2 * 2 - 1) * 2),  # per depth: 2x2 groups x shuffle, less the all-dense design with shuffle
        (True, [1], (2 * 2 * 2 - 1) + (4 * 4 * 2 - 1)),  # depth 1, depth 2
        (False, [2, 4], 2 * 2 * 2 * 2 * 2),  # no all-dense design: shuffle always counts
        (True, [2, 4], 2**3 * 2 + 2**6 * 2),  # depth 1: 3 projections x 2 choices; depth 2: 6
    ],
)
def test_size_counts_distinct_designs(tmp_path, per_layer, k, size):
    path = tmp_path / "small.yaml"
    path.write_text(
        f"base: minilm_l6\nper_layer: {str(per_layer).lower()}\ngroups: {{q: [1, 2], k: {k}, ffn_in: [1, 4]}}\n"
        "shuffle: [false, true]\ndims: {layers: [1, 2]}\n"
    )
    space = SearchSpace.load(path)
    assert space.size == size == distinct_designs(space)


def test_references_are_dense_and_squeezebert():
    space = SearchSpace.load("squeezebert")
    refs = space.references()
    assert refs["bert_base"] == ArchSpec.preset("bert_base") and refs["squeezebert"] == ArchSpec.preset("squeezebert")
    assert all(space.contains(s) for s in refs.values())
    assert space.params_of(refs["squeezebert"]) == {"q": 4, "k": 4, "v": 4, "post_attention": 1, "ffn_in": 4, "ffn_out": 4, "shuffle": False}
    assert not SearchSpace.load("dense_dims").contains(refs["squeezebert"])


def test_per_layer_parameters():
    space = SearchSpace.load("squeezebert_per_layer")
    params = space.params_of(ArchSpec.preset("squeezebert"))
    assert params["q.0"] == 4 and params["post_attention.11"] == 1 and len(params) == 72 + 1


@pytest.mark.parametrize(
    "body, key, value",
    [
        ("grups: {q: [1]}", "grups", "{'q': [1]}"),
        ("groups: {q: []}", "groups.q", "[]"),
        ("groups: {query: [2]}", "groups.query", "[2]"),
        ("groups: {q: [1, 5]}", "groups.q", "5"),
        ("groups: {ffn_in: [1, 7]}", "groups.ffn_in", "7"),
        ("groups: {q: [1, two]}", "groups.q", "'two'"),
        ("dims: {heads: [5]}", "dims.heads", "5"),
        ("dims: {width: [5]}", "dims.width", "[5]"),
        ("shuffle: [maybe]", "shuffle", "'maybe'"),
        ("base: nope", "base", "'nope'"),
    ],
)
def test_invalid_spaces_name_file_key_and_value(tmp_path, body, key, value):
    path = tmp_path / "mine.yaml"
    path.write_text(body + "\n")
    with pytest.raises(SpaceError) as e:
        SearchSpace.load(path)
    assert str(e.value).startswith(f"{path}: {key}: {value}"), str(e.value)


def test_groups_that_fit_the_target_but_not_the_proxy(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("groups: {q: [1, 256]}\n")  # 256 divides 768, not 384
    SearchSpace.load(path)
    with pytest.raises(SpaceError, match=r"groups.q: 256: does not divide in_channels=384 .*proxy scale"):
        SearchSpace.load(path, proxy_scale=MINILM)


def test_unknown_space_name():
    with pytest.raises(SpaceError, match="no such search space"):
        SearchSpace.load("nope")


def _level(groups: dict) -> int:
    return sum(g > 1 for g in groups.values())


def test_leveled_draws_give_every_complexity_level_the_same_rate(tmp_path):
    """The search's start (``LeveledStart``) draws by level: k ~ uniform{1..6} types grouped,
    each grouped one's count uniform over its counts above 1. A uniform draw per choice leaves
    exactly one type grouped in 6 * 0.8 * 0.2**5 = 0.15% of draws; a level draw in 1/6."""
    import random
    from collections import Counter

    space = SearchSpace.load("squeezebert")
    rng, n = random.Random(0), 6000
    draws = [space.leveled_params(rng) for _ in range(n)]
    assert all(space.contains(space.sample(optuna.trial.FixedTrial(d))) for d in draws[:50])
    levels = Counter(_level({p: d[p] for p in space.groups}) for d in draws)
    assert set(levels) == {1, 2, 3, 4, 5, 6}  # never dense
    assert all(abs(levels[k] / n - 1 / 6) < 0.02 for k in levels)  # sd of a rate ~0.005
    counts = Counter(d["ffn_in"] for d in draws if d["ffn_in"] > 1)
    assert set(counts) == {2, 4, 8, 16} and all(abs(c / sum(counts.values()) - 0.25) < 0.03 for c in counts.values())
    which = Counter(p for d in draws if _level({p: d[p] for p in space.groups}) == 1 for p in space.groups if d[p] > 1)
    assert len(which) == 6 and max(which.values()) / min(which.values()) < 1.4  # which one: uniform
    uniform = [space.random_specs(1, seed=s)[0] for s in range(2000)]
    assert sum(_level({p: g[0] for p, g in s.groups.items()}) == 1 for s in uniform) / 2000 < 0.01

    fixed = tmp_path / "post_dense.yaml"  # a type that cannot be grouped is never counted as a level
    fixed.write_text("base: minilm_l6\nper_layer: true\ngroups: {q: [1, 4], k: [1, 4], v: [1], post_attention: [1],"
                     " ffn_in: [1, 2], ffn_out: [1, 2]}\nshuffle: [false, true]\n")
    small = SearchSpace.load(fixed)
    draws = [small.leveled_params(rng) for _ in range(4000)]
    per_layer = Counter(_level({p: d[f"{p}.{i}"] for p in small.groups}) for d in draws for i in range(6))
    assert set(per_layer) == {1, 2, 3, 4} and all(abs(c / 24000 - 1 / 4) < 0.02 for c in per_layer.values())
    assert all(d[f"v.{i}"] == d[f"post_attention.{i}"] == 1 for d in draws for i in range(6))
    assert abs(sum(d["shuffle"] for d in draws) / 4000 - 0.5) < 0.04
    assert len({tuple(d[f"q.{i}"] for i in range(6)) for d in draws}) > 32  # each layer drawn on its own

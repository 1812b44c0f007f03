import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from arch_search import ArchSpec, build_model
from arch_search.design.space import SearchSpace
from arch_search.proxies import ProxySetup, Supernet, SupernetProxy
from arch_search.proxies import supernet as S
from arch_search.nn.inherit import block_mask
from tests.conftest import SHARED, race, tiny_spec

SQUEEZE_DESIGN = ArchSpec.preset("squeezebert")
from tests.test_inherit import masked_dense
from tests.test_proxies import compose_run


def test_masks_nest_and_match_the_block_pattern():
    for g in (2, 4, 8):
        assert torch.all(block_mask(32, 64, 2 * g, False) <= block_mask(32, 64, g, False))  # g=8 inside g=4
        assert block_mask(32, 64, g, False).sum() == 32 * 64 / g
        assert block_mask(32, 64, g, True).sum() == 32 * 64 / g
    assert torch.equal(block_mask(8, 8, 1, False), torch.ones(8, 8))
    # shuffle: row r belongs to group r % g
    assert block_mask(4, 4, 2, True).tolist() == [[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 1]]


@pytest.mark.parametrize("shuffle", [False, True])
def test_supernet_forward_equals_the_extracted_standalone_design(batch, shuffle):
    torch.manual_seed(0)
    supernet = Supernet(build_model(tiny_spec(), task_head=2).eval())
    design = tiny_spec(groups={"q": 2, "k": 4, "v": 8, "ffn_in": [4, 2], "ffn_out": [2, 8]}, shuffle=shuffle)
    standalone = supernet.extract(design).eval()
    with torch.no_grad():
        via_supernet = supernet(*batch, design=design)
        torch.testing.assert_close(via_supernet.logits, standalone(*batch).logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(via_supernet.logits, masked_dense(supernet.encoder, design)(*batch).logits, atol=1e-5, rtol=1e-5)
        dense = supernet(*batch, design=tiny_spec())
        assert torch.equal(dense.logits, supernet.encoder(*batch).logits)


def test_gradients_reach_only_the_kept_weights(batch):
    torch.manual_seed(0)
    supernet = Supernet(build_model(tiny_spec(), task_head=2))
    design = tiny_spec(groups={"ffn_in": 4})
    supernet(*batch, design=design).logits.sum().backward()
    grad = supernet.encoder.layers[0].ffn_in.weight.grad[0]
    mask = block_mask(64, 32, 4, False)
    assert grad[mask == 0].abs().max() == 0 and grad[mask == 1].abs().max() > 0
    with pytest.raises(ValueError, match="dense"):
        Supernet(build_model(design))


@pytest.fixture
def tiny_proxy(tmp_path):
    def make(**kw):
        setup = ProxySetup(
            task="wnli", init="scratch", scale={"hidden": 32, "layers": 2, "heads": 4, "intermediate": 64},
            max_len=32, heldout=100, vocab_size=400, data_dir=str(SHARED / "glue"), cache_dir=str(tmp_path),
            seed=kw.pop("seed", 0),
        )
        plain = {"teacher": False, "permute": False, "distill": False, "score": "metric"}  # a scratch init: no teacher
        return SupernetProxy(setup, **{"groups": (1, 2, 4), "steps": 3, "batch_size": 8, "threads": 1, "progress": False,
                                       **plain, **kw})

    return make


@pytest.mark.shared
def test_trained_once_cached_and_reused(tiny_proxy, monkeypatch):
    proxy = tiny_proxy()
    sq = ArchSpec.preset("squeezebert")
    first = proxy.evaluate(sq)
    assert proxy.cache_path.is_file() and first.metric == "accuracy" and set(first.dev) == {"accuracy"}
    assert first.details["proxy_spec"]["groups"]["ffn_in"] == 4

    def no_training(self, supernet, teacher=None):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(SupernetProxy, "train", no_training)
    again = tiny_proxy()
    assert again.cache_path == proxy.cache_path
    second = again.evaluate(sq)
    assert (second.score, second.dev) == (first.score, first.dev)
    assert tiny_proxy(seed=1).cache_path != proxy.cache_path  # budget/seed are part of the key
    assert tiny_proxy(steps=4).cache_path != proxy.cache_path
    assert tiny_proxy(sampling="uniform").cache_path != proxy.cache_path  # the sampling rule changes what is trained
    before = proxy.cache_path
    monkeypatch.setattr(S, "CACHE_VERSION", S.CACHE_VERSION + 1)  # a new format: a new key
    assert proxy.cache_path != before


@pytest.mark.shared
def test_workers_needing_the_same_supernet_train_it_once_and_all_get_it(tiny_proxy, monkeypatch, tmp_path):
    trainings = tmp_path / "trainings"

    def slow_train(self, supernet, teacher=None):  # long enough for every other worker to arrive meanwhile
        with open(trainings, "a") as f:
            f.write("trained\n")
        time.sleep(0.3)
        return 0.3

    def slow_save(*args, **kwargs):  # a reader that did not wait would find no file or half of one
        save_file(*args, **kwargs)
        time.sleep(0.05)

    monkeypatch.setattr(SupernetProxy, "train", slow_train)
    monkeypatch.setattr(S, "save_file", slow_save)
    proxy = tiny_proxy()
    dense = proxy.setup.build(ArchSpec.preset("bert_base")).state_dict()  # loads the data once, before forking
    for _ in range(3):
        proxy.cache_path.unlink(missing_ok=True)
        trainings.unlink(missing_ok=True)
        assert race(lambda: proxy.supernet) == [0] * 4
        assert trainings.read_text() == "trained\n"  # one worker trained, three waited and read its file
        assert load_file(str(proxy.cache_path)).keys() == dense.keys()
        assert sorted(p.name for p in proxy.cache_path.parent.iterdir() if p.suffix != ".lock") == [proxy.cache_path.name]


@pytest.mark.shared
def test_sandwich_and_the_space_it_covers(tiny_proxy):
    import random

    proxy = tiny_proxy(random_designs=2)
    largest, smallest, *randoms = proxy.sandwich(random.Random(0))
    assert largest.is_dense and smallest.uniform_groups() == dict.fromkeys(smallest.groups, 4) and len(randoms) == 2
    assert all(proxy.covers(d) for d in (largest, smallest, *randoms))
    with pytest.raises(ValueError, match="outside the supernet's space"):
        proxy.evaluate(ArchSpec.preset("bert_base").replace(groups={"q": 8}))  # 8 not in (1, 2, 4)
    with pytest.raises(ValueError, match="outside the supernet's space"):
        proxy.evaluate(ArchSpec.preset("squeezebert").replace(shuffle=True))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, minilm_dir):
    return ProxySetup(task="wnli", init="pretrained", checkpoint=str(minilm_dir), max_len=24, heldout=60,
                      data_dir=str(SHARED / "glue"), cache_dir=str(tmp_path_factory.mktemp("cache")))


def distilled(setup, **kw):
    return SupernetProxy(setup, **{"groups": (1, 2, 4), "teacher_steps": 2, "steps": 2, "batch_size": 8, "threads": 1,
                                   "progress": False, **kw})


@pytest.mark.slow
@pytest.mark.shared
def test_distilled_supernet_starts_from_the_permuted_teacher_and_scores_four_ways(pretrained):
    proxy = distilled(pretrained, permute=True)  # the full recipe (the default leaves the permutation out)
    start, target = proxy._start()
    teacher = proxy.teacher.model
    assert target is not None and start is not target  # trained weights and a frozen target
    ids = pretrained.data.heldout.input_ids[0]
    x = torch.tensor([ids])
    with torch.no_grad():  # the permuted copy is the teacher's function (the residual stream is reordered)
        torch.testing.assert_close(start.eval()(x).logits, teacher(x).logits, atol=1e-4, rtol=1e-4)
        assert not torch.equal(start.embeddings.word.weight, teacher.embeddings.word.weight)
    r = proxy.evaluate(SQUEEZE_DESIGN)
    held = r.details["heldout"]
    assert r.metric == "calibrated_log_likelihood" and r.score == held["calibrated_log_likelihood"] < 0
    assert held["calibrated_log_likelihood"] >= held["log_likelihood"] - 1e-6  # temperature 1 is among those tried
    assert held["kl"] > 0 and 0 <= held["accuracy"] <= 1 and set(r.dev) == {"accuracy"}
    assert r.details["init"] == "teacher" and r.details["score_seconds"] < 30
    dense = proxy.evaluate(ArchSpec.preset("bert_base"))
    assert dense.details["heldout"]["kl"] < 1e-3  # two steps from the (permuted) teacher: dense is still its function
    by_kl = distilled(pretrained, permute=True, score="kl")
    assert by_kl.cache_path == proxy.cache_path  # the score is not part of what was trained
    assert by_kl.evaluate(SQUEEZE_DESIGN).score == pytest.approx(-held["kl"])
    keys = {distilled(pretrained, **kw).cache_key() for kw in ({}, {"permute": True}, {"distill": False},
                                                               {"sandwich": False}, {"seed": 1}, {"teacher_steps": 3})}
    assert len(keys) == 6  # each changes what is trained


@pytest.mark.slow
@pytest.mark.shared
def test_the_confirmation_can_start_each_design_from_the_supernet(pretrained):
    from arch_search.proxies import CompressedProxy

    sup = distilled(pretrained)
    budget = {"teacher_steps": 2, "steps": 2, "batch_size": 8, "threads": 1, "progress": False}
    proxy = CompressedProxy(pretrained, start="supernet", supernet=sup, **budget)
    design = pretrained.proxy_spec(ArchSpec.preset("bert_base").replace(groups={"ffn_in": 4, "q": 2}))
    student, base, seconds = proxy.compress(design)
    assert set(seconds) == {"extract"} and student.training  # no permute, refit or distil: the supernet's weights
    x = torch.tensor([pretrained.data.heldout.input_ids[0]])
    with torch.no_grad():
        torch.testing.assert_close(student.eval()(x).logits, sup.supernet(x, design=design).logits, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(base(x).logits, sup.teacher.model(x).logits)  # the task teacher, for the logits' KD
    r = proxy.evaluate(design)
    assert r.details["start"] == "supernet" and set(r.details["seconds"]) == {"extract", "finetune"} and r.score < 0
    assert CompressedProxy(pretrained, **budget).compress(design)[2].keys() == {"permute", "refit", "distill"}
    with pytest.raises(ValueError, match="needs proxy=supernet"):
        CompressedProxy(pretrained, start="supernet", **budget)
    with pytest.raises(ValueError, match="start must be teacher or supernet"):
        CompressedProxy(pretrained, start="scratch", supernet=sup, **budget)


def test_distilled_supernet_needs_a_pretrained_setup(tiny_proxy):
    setup = tiny_proxy().setup
    with pytest.raises(ValueError, match="proxy_setup=pretrained"):
        SupernetProxy(setup)
    with pytest.raises(ValueError, match="need the teacher"):
        SupernetProxy(setup, teacher=False, distill=True, permute=False)
    with pytest.raises(ValueError, match="score must be"):
        SupernetProxy(setup, teacher=False, permute=False, distill=False, score="accuracy")


def test_without_the_sandwich_rule_every_design_of_a_step_is_random(tiny_proxy):
    import random

    rng = random.Random(0)
    proxy = tiny_proxy(sandwich=False, random_designs=2)
    steps = [proxy.sandwich(rng) for _ in range(20)]
    assert {len(s) for s in steps} == {4} == {proxy.designs_per_step}  # as many designs per step as the sandwich
    assert not all(s[0].is_dense for s in steps)
    sandwich = tiny_proxy(random_designs=2)
    steps = [sandwich.sandwich(rng) for _ in range(20)]
    assert all(s[0].is_dense and s[1].uniform_groups() == dict.fromkeys(s[1].groups, 4) for s in steps)


def _grouped_types(design: ArchSpec) -> list[int]:
    """How many projection types are grouped in each layer of ``design``."""
    return [sum(g > 1 for g, _ in design.layer(i).values()) for i in range(design.layers)]


@pytest.mark.slow
@pytest.mark.shared
def test_levels_sampling_trains_every_complexity_level_at_the_same_rate(tiny_proxy):
    import random
    from collections import Counter

    proxy = tiny_proxy(groups=(1, 2, 4, 8, 16))
    assert proxy.sampling == "levels"  # the default
    rng, n = random.Random(0), 6000
    draws = [proxy.draw(rng) for _ in range(n)]
    levels = Counter(_grouped_types(d)[0] for d in draws)
    assert set(levels) == {1, 2, 3, 4, 5, 6}  # never dense (the sandwich has it), never nothing drawn
    assert all(abs(levels[k] / n - 1 / 6) < 0.02 for k in levels)  # 1/6 each (sd of a rate ~0.005)
    counts = Counter(g for d in draws for g, _ in d.layer(0).values() if g > 1)
    assert set(counts) == {2, 4, 8, 16} and all(abs(c / sum(counts.values()) - 1 / 4) < 0.02 for c in counts.values())
    by_type = Counter(p for d in draws for p, (g, _) in d.layer(0).items() if g > 1)
    assert all(abs(c / n - 3.5 / 6) < 0.03 for c in by_type.values())  # which types: no type favoured
    assert all(d.uniform_groups() is not None and not d.uses_shuffle for d in draws)  # all layers alike, no shuffle
    uniform = tiny_proxy(groups=(1, 2, 4, 8, 16), sampling="uniform")
    one = sum(_grouped_types(uniform.draw(rng))[0] == 1 for _ in range(n)) / n
    assert one < 0.005  # the former rule: one grouped type in 6 x 4/5 x (1/5)^5 = 0.15% of draws
    assert levels[1] / n > 30 * max(one, 1 / n)
    largest, smallest, *randoms = proxy.sandwich(rng)
    assert largest.is_dense and smallest.uniform_groups() == dict.fromkeys(smallest.groups, 16) and len(randoms) == 2
    with pytest.raises(ValueError, match="sampling must be one of"):
        tiny_proxy(sampling="flops")


@pytest.mark.shared
def test_levels_sampling_per_layer_and_with_shuffle_draws_each_layer_on_its_own(tiny_proxy):
    import random
    from collections import Counter

    proxy = tiny_proxy(per_layer=True, shuffle=True)  # groups (1, 2, 4); the tiny setup has 2 layers
    rng, n = random.Random(1), 3000
    draws = [proxy.draw(rng) for _ in range(n)]
    assert all(proxy.covers(d) for d in draws[:50])
    per_layer = [_grouped_types(d) for d in draws]
    assert Counter(len(x) for x in per_layer) == {2: n}
    both = Counter(tuple(x) for x in per_layer)
    assert len(both) == 36 and all(abs(c / n - 1 / 36) < 0.012 for c in both.values())  # independent, uniform levels
    shuffled = [s for d in draws for i in range(d.layers) for g, s in d.layer(i).values() if g > 1]
    assert abs(sum(shuffled) / len(shuffled) - 0.5) < 0.03  # a coin flip per grouped projection
    assert not any(s for d in draws for i in range(d.layers) for g, s in d.layer(i).values() if g == 1)


def test_the_supernets_cache_key_is_pinned():
    """Cached supernets are named by it: the default run's key (SST-2, the checkpoint by its
    folder name), over the per-layer space, and the plain supernet's on the scratch setup stay."""
    from hydra.utils import instantiate

    proxy = instantiate(compose_run().proxy)
    assert proxy.cache_key() == "17e998eccc067fde"
    assert proxy.for_space(SearchSpace.load("squeezebert_per_layer")).cache_key() == "44fbed028977ef87"
    plain = instantiate(compose_run("proxy_setup=scratch", "proxy_setup.checkpoint=null").proxy, teacher=False, distill=False)
    assert plain.cache_key() == "d9d8d1debd283843"


def test_the_supernets_key_moves_with_each_setting_it_declares_and_no_other():
    """The cache key keeps its layout (the cached files are named by it) and holds every declared
    setting that changes the trained weights: the proxy's ``SCORED`` but ``score``, and the setup's."""
    def key(setup=None, **proxy):
        setup = ProxySetup(**{"task": "sst2", "init": "pretrained", "checkpoint": "models/minilm", **(setup or {})})
        return SupernetProxy(setup, **proxy).cache_key()

    own = {"groups": {"groups": (1, 2)}, "shuffle": {"shuffle": True}, "per_layer": {"per_layer": True},
           "teacher": {"teacher": False, "distill": False}, "permute": {"permute": True}, "distill": {"distill": False},
           "sandwich": {"sandwich": False}, "sampling": {"sampling": "uniform"}, "steps": {"steps": 401},
           "random_designs": {"random_designs": 3}, "batch_size": {"batch_size": 16}, "lr": {"lr": 1e-4},
           "warmup": {"warmup": 0.2}, "weight_decay": {"weight_decay": 0.0}, "kd_weight": {"kd_weight": 0.5},
           "temperature": {"temperature": 1.0}, "hidden_weight": {"hidden_weight": 0.5},
           "teacher_steps": {"teacher_steps": 10}, "teacher_lr": {"teacher_lr": 1e-4}, "seed": {"seed": 5}}
    assert set(own) == set(SupernetProxy.SCORED) - {"score"}
    assert all(key(**kw) != key() for kw in own.values())
    plain = {"teacher": False, "distill": False}  # on a scratch setup too
    setup = {"task": "cola", "init": "scratch", "checkpoint": "models/other",
             "scale": {"hidden": 32, "layers": 2, "heads": 4, "intermediate": 64}, "max_len": 32, "heldout": 100,
             "heldout_disjoint": False, "dropout": 0.0, "seed": 1, "vocab_size": 400}
    assert set(setup) == set(ProxySetup.SCORED)
    assert all(key({k: v}, **plain) != key(**plain) for k, v in setup.items())
    stays = [{"score": "log_likelihood"}, {"eval_dev": False}, {"threads": 1}, {"progress": False}, {"setup": {
        "cache_dir": "c", "data_dir": "d", "device": "cpu", "bf16": False, "checkpoint": "elsewhere/minilm"}}]
    assert all(key(**kw) == key() for kw in stays)

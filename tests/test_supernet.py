import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from arch_search import ArchSpec, build_model
from arch_search.proxies import ProxySetup, Supernet, SupernetProxy
from arch_search.proxies import supernet as S
from arch_search.proxies.supernet import block_mask
from tests.conftest import SHARED, race, tiny_spec
from tests.test_inherit import masked_dense


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
        return SupernetProxy(setup, **{"groups": (1, 2, 4), "steps": 3, "batch_size": 8, "threads": 1, "progress": False, **kw})

    return make


@pytest.mark.shared
def test_trained_once_cached_and_reused(tiny_proxy, monkeypatch):
    proxy = tiny_proxy()
    sq = ArchSpec.preset("squeezebert")
    first = proxy.evaluate(sq)
    assert proxy.cache_path.is_file() and first.metric == "accuracy" and set(first.dev) == {"accuracy"}
    assert first.details["proxy_spec"]["groups"]["ffn_in"] == 4

    def no_training(self, supernet):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(SupernetProxy, "train", no_training)
    again = tiny_proxy()
    assert again.cache_path == proxy.cache_path
    second = again.evaluate(sq)
    assert (second.score, second.dev) == (first.score, first.dev)
    assert tiny_proxy(seed=1).cache_path != proxy.cache_path  # budget/seed are part of the key
    assert tiny_proxy(steps=4).cache_path != proxy.cache_path
    before = proxy.cache_path
    monkeypatch.setattr(S, "CACHE_VERSION", S.CACHE_VERSION + 1)  # a new format: a new key
    assert proxy.cache_path != before


@pytest.mark.shared
def test_workers_training_the_same_supernet_together_all_get_it(tiny_proxy, monkeypatch):
    def slow_save(*args, **kwargs):  # every worker is between writing and renaming at once
        save_file(*args, **kwargs)
        time.sleep(0.05)

    monkeypatch.setattr(SupernetProxy, "train", lambda self, supernet: 0.0)  # the race is in the write
    monkeypatch.setattr(S, "save_file", slow_save)
    proxy = tiny_proxy()
    dense = proxy.setup.build(ArchSpec.preset("bert_base")).state_dict()  # loads the data once, before forking
    for _ in range(5):
        proxy.cache_path.unlink(missing_ok=True)
        assert race(lambda: proxy.supernet) == [0] * 4
        assert load_file(str(proxy.cache_path)).keys() == dense.keys()
        assert list(proxy.cache_path.parent.iterdir()) == [proxy.cache_path]  # no temporary file left


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

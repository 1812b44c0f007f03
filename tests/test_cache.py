import os

import pytest

from arch_search.cache import atomic_path, cache_key
from tests.conftest import race

MIB = 1 << 20


def test_concurrent_writers_leave_one_complete_file(tmp_path):
    target = tmp_path / "entry.bin"

    def write_then_read():
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            for _ in range(64):  # 1 MiB of this worker's byte, in chunks
                f.write(bytes([os.getpid() % 256]) * (MIB // 64))
        data = target.read_bytes()  # whoever's file it is, it is whole
        assert len(data) == MIB and len(set(data)) == 1

    for _ in range(5):
        assert race(write_then_read) == [0] * 4
        assert list(tmp_path.iterdir()) == [target]  # no temporary file left
    plain = tmp_path / "plain"
    plain.touch()
    assert target.stat().st_mode == plain.stat().st_mode  # not mkstemp's 0600


def test_a_write_that_raises_leaves_neither_target_nor_temporary_file(tmp_path):
    target = tmp_path / "new" / "entry.json"
    with pytest.raises(RuntimeError, match="disk full"), atomic_path(target) as tmp:
        tmp.write_text('{"half": ')
        raise RuntimeError("disk full")
    assert list(target.parent.iterdir()) == []
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new, half")
        raise RuntimeError
    assert target.read_text() == "old" and list(target.parent.iterdir()) == [target]  # an existing entry stays


def test_an_entry_a_writer_replaced_gets_the_plain_mode(tmp_path):
    from safetensors.torch import save_file
    import torch

    target = tmp_path / "weights.safetensors"
    with atomic_path(target) as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp))  # writes a new file at tmp (mode 0600)
    plain = tmp_path / "plain"
    plain.touch()
    assert target.stat().st_mode == plain.stat().st_mode


def test_a_cache_key_hashes_the_settings_as_sorted_json_or_in_the_order_given():
    """One recipe for every cache's name (teacher, supernet, latency table, tokenizer,
    confirmation): SHA-256 of the texts (NUL after each), then of the settings' JSON."""
    import hashlib

    settings = {"b": 1, "a": (2, 3)}
    assert cache_key(settings) == hashlib.sha256(b'{"a": [2, 3], "b": 1}').hexdigest()[:16] == "e91782078782ea33"
    assert cache_key(settings, sort_keys=False) == hashlib.sha256(b'{"b": 1, "a": [2, 3]}').hexdigest()[:16]
    assert cache_key(settings, length=12) == cache_key(settings)[:12]
    assert cache_key({}, texts=["x", "y"]) == hashlib.sha256(b"x\0y\0{}").hexdigest()[:16]
    assert cache_key({"a": frozenset({1})}) == cache_key({"a": [1]})  # what JSON lacks, as a list

"""Where the proxies run: device selection, its errors, bf16 autocast, and caches that load on any
device. CUDA is mocked where a test only needs torch to believe in a GPU; the tests that need a
real one are marked ``gpu`` (skipped without CUDA) and fake nothing."""

import contextlib
import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file

from arch_search import ArchSpec
from arch_search.measure.runtime import DeviceUnavailable, bf16_autocast, precision_on, resolve_device
from arch_search.proxies import ProxySetup
from arch_search.proxies.teacher import TaskTeacher
from arch_search.resources import conf_dir
from arch_search.study.fingerprint import scored_settings
from tests.conftest import SHARED
from tests.test_cli import run

SQUEEZE = ArchSpec.preset("squeezebert")


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)


def test_auto_picks_cuda_only_where_there_is_one(no_gpu):
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    with pytest.raises(DeviceUnavailable, match="device 'cuda': torch finds no CUDA GPU on this machine"):
        resolve_device("cuda")
    with pytest.raises(DeviceUnavailable):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match=r"device must be one of \('auto', 'cpu', 'cuda'\)"):
        resolve_device("tpu")


def test_auto_is_cuda_when_torch_finds_a_gpu(a_gpu):
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda:1") == torch.device("cuda:1")
    assert precision_on(torch.device("cuda"), bf16=True) == "bf16"
    assert precision_on(torch.device("cuda"), bf16=False) == "fp32"
    assert isinstance(bf16_autocast(torch.device("cuda")), torch.autocast)
    assert isinstance(bf16_autocast(torch.device("cuda"), enabled=False), contextlib.nullcontext)


def test_the_cpu_always_trains_in_fp32(a_gpu):
    cpu = torch.device("cpu")
    assert precision_on(cpu, bf16=True) == "fp32" and isinstance(bf16_autocast(cpu), contextlib.nullcontext)


def test_a_setup_on_a_missing_gpu_fails_when_built(no_gpu):
    with pytest.raises(DeviceUnavailable):
        ProxySetup(task="sst2", init="scratch", device="cuda")
    setup = ProxySetup(task="sst2", init="scratch")  # the default, auto
    assert setup.device == torch.device("cpu") and setup.precision == "fp32"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("command", ["evaluate", "run"])
def test_cuda_without_a_gpu_is_one_error_line_before_any_study(command, tmp_path):
    out = run(command, "proxy=zero_cost", "proxy_setup.device=cuda", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith("error: proxy: device 'cuda': torch finds no CUDA GPU")
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (tmp_path / "run" / "study.db").exists()


def test_the_device_and_bf16_are_not_in_the_fingerprint():
    fingerprints = []
    for device in ("cpu", "auto"):
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=["proxy=compressed", f"proxy_setup.device={device}",
                                                           f"proxy_setup.bf16={device == 'cpu'}"])
        assert cfg.proxy_setup.device == device
        fingerprints.append(scored_settings(cfg.proxy_setup))
    assert fingerprints[0] == fingerprints[1] and "device" not in fingerprints[0] and "bf16" not in fingerprints[0]


def setup_on(device, minilm_dir, cache_dir):
    return ProxySetup(task="wnli", init="pretrained", checkpoint=str(minilm_dir), max_len=24, heldout=60,
                      data_dir=str(SHARED / "glue"), cache_dir=str(cache_dir), device=device)


def tiny_compressed(setup):
    from arch_search.proxies import CompressedProxy

    return CompressedProxy(setup, teacher_steps=2, calibration=16, distill_steps=2, steps=2, batch_size=8, threads=1,
                           progress=False, eval_dev=False)


@pytest.mark.shared
def test_the_teacher_cache_is_keyed_without_the_device_and_stored_from_the_cpu(minilm_dir, tmp_path):
    a, b = (TaskTeacher(setup_on(d, minilm_dir, tmp_path), steps=2, batch_size=8, threads=1, progress=False)
            for d in ("cpu", "auto"))
    assert a.key() == b.key() and a.path == b.path
    model = a.model
    assert all(p.device.type == "cpu" for p in model.parameters()) and a.on(torch.device("cpu")) is model
    stored = load_file(str(a.path))
    assert all(t.device.type == "cpu" for t in stored.values())


@pytest.mark.slow
@pytest.mark.shared
def test_a_proxy_records_where_it_ran(minilm_dir, tmp_path):
    result = tiny_compressed(setup_on("cpu", minilm_dir, tmp_path)).evaluate(SQUEEZE)
    assert math.isfinite(result.score)
    assert result.details["device"] == "cpu" and result.details["precision"] == "fp32"


@pytest.mark.gpu
@pytest.mark.shared
def test_the_compressed_proxy_on_a_gpu_and_its_teacher_on_the_cpu(minilm_dir, tmp_path):
    """A real GPU: the proxy trains there, and the teacher it cached loads on the CPU, equal."""
    gpu = tiny_compressed(setup_on("cuda", minilm_dir, tmp_path))
    result = gpu.evaluate(SQUEEZE)
    assert math.isfinite(result.score) and result.details["device"].startswith("cuda")
    assert next(result.model.parameters()).device.type == "cuda"
    on_cpu = tiny_compressed(setup_on("cpu", minilm_dir, tmp_path))
    for name, p in on_cpu.teacher.state_dict().items():
        assert torch.equal(p, gpu.teacher.state_dict()[name]), name
    assert math.isfinite(on_cpu.evaluate(SQUEEZE).score)

"""Shared fixtures. Data that lives outside the repository (../shared) is required: a test that
needs it fails loudly when it is missing, it does not skip."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from arch_search import ArchSpec

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ARCH_SEARCH_SHARED", REPO.parent / "shared"))


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests need CUDA: skipped, saying so, where torch finds none (they fake nothing)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch finds none)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture
def fake_cuda(monkeypatch) -> list[str]:
    """torch believes in one GPU, "Fake GPU" with CUDA 12.0, whose timing events give 1.0, 2.0, 3.0,
    ... ms in the order they are read. Returns the log of event records and synchronisations.
    Nothing can run there: a tensor moved to it fails, so a test keeps tensors off it."""
    log: list[str] = []
    elapsed = iter(range(1, 10**6))

    class Event:
        def __init__(self, enable_timing: bool = False):
            assert enable_timing

        def record(self):
            log.append("record")

        def elapsed_time(self, end: Event) -> float:
            return float(next(elapsed))

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Fake GPU")
    monkeypatch.setattr(torch.version, "cuda", "12.0")
    monkeypatch.setattr(torch.cuda, "Event", Event)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: log.append("sync"))
    return log


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    path = SHARED / "models" / "all-MiniLM-L6-v2"
    assert (path / "config.json").is_file(), f"MiniLM checkpoint missing at {path} (set ARCH_SEARCH_SHARED)"
    return path


def tiny_spec(**changes) -> ArchSpec:
    """4 heads of 8 dims, 2 layers: every group count in {1, 2, 4, 8} divides every projection."""
    base = dict(hidden=32, layers=2, heads=4, intermediate=64, vocab=99, max_positions=24, type_vocab=2)
    return ArchSpec(**{**base, **changes})


@pytest.fixture
def batch():
    """(input_ids, attention_mask, token_type_ids) of shape (3, 9), with padding and pairs."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, 99, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    types = torch.zeros(3, 9, dtype=torch.long)
    types[:, 5:] = 1
    return ids, mask, types


def race(fn: Callable[[], object], processes: int = 4) -> list[int]:
    """Exit codes of ``processes`` forked processes that each call ``fn`` once, released
    together by a barrier (0: returned; 1: raised, traceback on stderr)."""
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes)

    def worker():
        barrier.wait()
        fn()

    procs = [ctx.Process(target=worker) for _ in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        if p.exitcode is None:  # hung: end it, the caller sees None
            p.kill()
    return [p.exitcode for p in procs]


def kill_when(cmd: list[str], study_name: str, url: str, ready: Callable[[list], bool], timeout: float = 240) -> list:
    """Start the worker ``cmd``, poll the study ``study_name`` at ``url`` until ``ready(trials)``,
    then SIGKILL the worker; returns the trials seen just before the kill. Fails if the worker
    exits first or makes no progress within ``timeout`` seconds."""
    import optuna

    worker = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    try:
        while True:
            assert time.time() < deadline, "worker made no progress"
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
            time.sleep(0.3)
            try:
                trials = optuna.load_study(study_name=study_name, storage=url).trials
            except KeyError:  # the study does not exist yet
                continue
            if ready(trials):
                break
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()
        return trials
    finally:
        if worker.poll() is None:
            worker.kill()

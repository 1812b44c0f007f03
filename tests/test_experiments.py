"""Each experiment's quick variant runs (a smoke test of the command written in its README)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, SHARED

pytestmark = pytest.mark.slow  # each runs an experiment's --quick variant in a subprocess


@pytest.mark.parametrize(
    "script, args",
    [
        ("experiments/speedup/run.py", ["--quick"]),
        pytest.param("experiments/speedup/run.py", ["--precision", "--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/speedup/run.py", ["--device", "cuda", "--quick"], marks=pytest.mark.gpu),
        pytest.param("experiments/proxy_finetune/run.py", ["--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/proxy_supernet/run.py", ["--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/search_recovers_squeezebert/run.py", ["--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/search_recovers_squeezebert/samplers.py", ["--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/proxy_fidelity/run.py", ["--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/which_layers/run.py", ["--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/group_count/run.py", ["--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/shuffle/run.py", ["--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/glue_tasks/run.py", ["--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/proxy_compressed/run.py", ["--quick"], marks=pytest.mark.shared),
        pytest.param("experiments/samplers/run.py", ["--quick"], marks=pytest.mark.shared),
    ],
)
def test_quick_variant_runs(script, args, tmp_path):
    extra = ["--cache-dir", str(tmp_path)] if any(s in script for s in ("supernet", "fidelity", "compressed")) else []  # trains a supernet or a teacher
    env = {**os.environ, "ARCH_SEARCH_SHARED": str(SHARED)}
    out = subprocess.run([sys.executable, script, *args, *extra], cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip()
    if Path(script).parent.name in AT_4X:  # the lesson's verdict checked at 4x the healing budget (issue 35)
        summary = json.loads(out.stdout.split("--- summary.json ---\n", 1)[1].split("\n--- ", 1)[0])
        check = summary["verdict_at_4x"]
        assert check["verdict"] in ("reproduced", "not reproduced", "contradicted"), check
        assert (check["budget"], check["distill_steps"], check["steps"], check["seeds"]) == (4, 8, 8, [0, 1])  # quick: 2 steps x 4
        assert check["same_designs_at_1x"]["verdict"] in ("reproduced", "not reproduced", "contradicted")
        assert set(check["points"]) == set(check["designs"]) and check["noise_dof"] == len(check["designs"]) - 1


AT_4X = ("which_layers", "group_count", "shuffle", "glue_tasks")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_speedup_on_a_gpu_without_one_is_one_error_line():
    out = subprocess.run([sys.executable, "experiments/speedup/run.py", "--device", "cuda", "--quick"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and not out.stdout
    assert out.stderr.startswith("error: --device cuda: torch finds no CUDA GPU on this machine")
    assert out.stderr.endswith("; use --device cpu\n") and len(out.stderr.splitlines()) == 1, out.stderr


@pytest.mark.shared
def test_the_gpu_script_runs_every_step_on_the_cpu(tmp_path):
    """experiments/gpu/run.py --quick --device cpu: the script a lent GPU runs, each step on tiny
    budgets (but `tests` and `speedup`, which run pytest and the speedup's --quick, tested apart);
    gpu.json holds every step, and a second run resumes (nothing left to do)."""
    import json

    cmd = [sys.executable, "experiments/gpu/run.py", "--quick", "--device", "cpu", "--out", str(tmp_path / "out"),
           "--work", str(tmp_path / "work"), "--cache-dir", str(tmp_path / "cache"), "--skip", "tests", "speedup"]
    env = {**os.environ, "ARCH_SEARCH_SHARED": str(SHARED)}
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert list(results) == ["env", "proxy", "supernet", "search", "cpu"]
    assert results["env"]["device"] == "cpu"
    assert set(results["proxy"]["bf16"]) == {"SqueezeBERT", "all-4", "ffn_in 16"}
    assert len(results["proxy"]["fp32"]["SqueezeBERT"]["seeds"]) == 2 and results["supernet"]["steps"] == 2
    assert len(results["search"]["front"]) >= 1 and (tmp_path / "out" / "search_log.txt").is_file()
    assert set(results["cpu"]) == {"cpu", "bf16 - cpu", "fp32 - cpu", "step_seconds"}
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "== " not in again.stdout  # every step is in gpu.json: none runs again

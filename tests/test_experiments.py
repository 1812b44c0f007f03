"""Each experiment's quick variant runs (a smoke test of the command written in its README)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED

pytestmark = pytest.mark.slow  # each runs an experiment's --quick variant in a subprocess


@pytest.mark.parametrize(
    "script, args",
    [
        ("experiments/speedup/run.py", ["--quick"]),
        pytest.param("experiments/speedup/run.py", ["--precision", "--quick"], marks=pytest.mark.shared),
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

"""Each experiment's quick variant runs (a smoke test of the command written in its README)."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED


@pytest.mark.parametrize(
    "script, args",
    [
        ("experiments/speedup/run.py", ["--quick"]),
        ("experiments/proxy_finetune/run.py", ["--quick"]),
        ("experiments/proxy_supernet/run.py", ["--quick"]),
        ("experiments/search_recovers_squeezebert/run.py", ["--quick"]),
        ("experiments/search_recovers_squeezebert/samplers.py", ["--quick"]),
        ("experiments/proxy_fidelity/run.py", ["--quick"]),
        ("experiments/which_layers/run.py", ["--quick"]),
        ("experiments/group_count/run.py", ["--quick"]),
        ("experiments/shuffle/run.py", ["--quick"]),
        ("experiments/glue_tasks/run.py", ["--quick"]),
        ("experiments/proxy_compressed/run.py", ["--quick"]),
    ],
)
def test_quick_variant_runs(script, args, tmp_path):
    extra = ["--cache-dir", str(tmp_path)] if any(s in script for s in ("supernet", "fidelity", "compressed")) else []  # trains a supernet or a teacher
    env = {**os.environ, "ARCH_SEARCH_SHARED": str(SHARED)}
    out = subprocess.run([sys.executable, script, *args, *extra], cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip()

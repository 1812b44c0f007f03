"""`python -m arch_search ...` as a user runs it (subprocesses, tiny settings)."""

import subprocess
import sys

import pytest

from tests.conftest import REPO


def run(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "arch_search", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_no_command_prints_the_commands(tmp_path):
    out = run(cwd=tmp_path)
    assert out.returncode == 0 and "evaluate" in out.stdout and "usage" in out.stdout
    bad = run("frobnicate", cwd=tmp_path)
    assert bad.returncode == 2 and "unknown command 'frobnicate'" in bad.stderr


@pytest.mark.slow
def test_evaluate_prints_costs_latency_and_speedup(tmp_path):
    out = run(
        "evaluate", "arch=squeezebert", "arch.groups.ffn_in=8", "seq_len=16",
        "latency.rounds=2", "latency.warmup=0", "latency.threads=2", f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    candidate = next(line for line in lines if line.startswith("candidate"))
    dense = next(line for line in lines if line.startswith("dense reference"))
    assert "in8" in candidate and "g[q1 k1 v1 post1 in1 out1]" in dense
    assert candidate.split()[-1].endswith("x") and dense.split()[-1] == "1.00x"
    assert "2 thread(s)" in out.stdout and "seq 16" in out.stdout
    # GMACs column: closed form at seq 16 (BERT-base dims, ffn_in at g=8)
    from arch_search import ArchSpec, closed_form_macs

    spec = ArchSpec.preset("squeezebert").replace(groups={"q": 4, "k": 4, "v": 4, "ffn_in": 8, "ffn_out": 4})
    assert f"{closed_form_macs(spec, 16) / 1e9:.2f}" in candidate


@pytest.mark.parametrize(
    "override, message",
    [
        ("arch=no_such_preset", "Could not find 'arch/no_such_preset'"),
        ("arch.groupz.q=2", "Could not override 'arch.groupz.q'"),
        ("arch.groups.q=5", "groups=5 does not divide in_channels=768"),
    ],
)
def test_bad_preset_or_override_fails_with_a_clear_error(override, message, tmp_path):
    out = run("evaluate", override, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert out.returncode != 0
    assert message in out.stderr + out.stdout


def test_runs_from_the_repository_root_too():
    out = run("--help", cwd=REPO)
    assert out.returncode == 0 and str(REPO / "conf") in out.stdout


@pytest.mark.slow
@pytest.mark.shared
def test_evaluate_with_a_proxy_prints_its_score_and_dev_metric(tmp_path):
    from tests.conftest import SHARED

    out = run(
        "evaluate", "arch=squeezebert", "seq_len=8", "latency.rounds=1", "latency.warmup=0",
        "proxy=finetune", "task=wnli", f"task.data_dir={SHARED / 'glue'}", "proxy_setup.init=scratch",
        "proxy_setup.scale={hidden: 32, layers: 2, heads: 4, intermediate: 64}", "proxy_setup.heldout=100",
        "proxy_setup.vocab_size=400", "proxy.steps=2", "proxy.threads=1", f"cache_dir={tmp_path}/cache",
        f"hydra.run.dir={tmp_path}/run", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "accuracy proxy: finetune on wnli (scratch init, 2 steps)" in out.stdout
    assert "score (search signal, held-out slice of train): accuracy 0." in out.stdout
    assert "dev (reported numbers): accuracy 0." in out.stdout


@pytest.mark.slow
@pytest.mark.shared
def test_run_search_writes_pareto_and_resumes(tmp_path):
    from tests.conftest import SHARED

    space = tmp_path / "tiny.yaml"
    space.write_text("base: minilm_l6\ngroups: {q: [1, 4], k: [1, 4], v: [1, 4], ffn_in: [1, 4], ffn_out: [1, 4]}\n")
    args = [
        "run", f"space={space}", "proxy=zero_cost", "~confirm", "task=wnli", f"task.data_dir={SHARED / 'glue'}",
        "proxy_setup.init=scratch", "proxy_setup.scale={hidden: 32, layers: 2, heads: 4, intermediate: 64}",
        "proxy_setup.heldout=100", "proxy_setup.vocab_size=400", "proxy.batch_size=8", "proxy.threads=1",
        "seq_len=8", "latency.rounds=1", "latency.warmup=0", "search.progress=false",
        f"cache_dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/run",
    ]
    out = run(*args, "search.n_trials=3", "logger=wandb", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert len(list((tmp_path / "run" / "wandb").glob("offline-run-*"))) == 3 + 1  # trials + Pareto
    assert "Pareto front" in out.stdout and "bert_base" in out.stdout
    assert "proxy seed noise: not measured" in out.stdout  # zero-cost scores take no seed
    for name in ("study.db", "trials.csv", "pareto.csv", "study.json"):
        assert (tmp_path / "run" / name).is_file(), name
    assert len((tmp_path / "run" / "trials.csv").read_text().splitlines()) == 1 + 3
    again = run(*args, "search.n_trials=5", cwd=tmp_path)  # continues the study
    assert again.returncode == 0, again.stderr[-3000:]
    assert "remeasured_ms" in (tmp_path / "run" / "pareto.csv").read_text()
    rows = (tmp_path / "run" / "trials.csv").read_text().splitlines()[1:]
    assert len({r.split(",")[-1] for r in rows}) == 5  # five distinct designs (spec_hash), copies aside
    mixed = run(*args, "search.n_trials=6", "search.latency_mode=lut", "proxy.score=grad_norm", cwd=tmp_path)
    assert mixed.returncode == 1 and mixed.stderr.count("\n") == 1, mixed.stderr
    assert "latency.mode: 'measured' -> 'lut'" in mixed.stderr and "proxy.score: 'snip' -> 'grad_norm'" in mixed.stderr
    lut = run(*args, "search.n_trials=3", "search.latency_mode=lut", "search.study_name=with_lut", cwd=tmp_path)
    assert lut.returncode == 0, lut.stderr[-3000:]
    assert "latency LUT:" in lut.stdout and "MAPE" in lut.stdout and "re-measured" in lut.stdout


@pytest.mark.slow
@pytest.mark.shared
def test_a_workers_log_in_a_file_has_one_line_a_trial_and_no_progress_bars(tmp_path):
    """stdout and stderr into one file, as a SLURM job's log: no bar is drawn (a proxy that
    trains step by step, progress on), each trial is one line, the rest a few lines a run."""
    import re

    from tests.conftest import SHARED

    space = tmp_path / "tiny.yaml"
    space.write_text("base: minilm_l6\ngroups: {q: [1, 4], k: [1, 4], v: [1, 4], ffn_in: [1, 4], ffn_out: [1, 4]}\n")
    n = 4
    with open(tmp_path / "log.txt", "w") as log:
        out = subprocess.run([
            sys.executable, "-m", "arch_search", "run", f"space={space}", "proxy=finetune", "proxy.steps=20",
            "~confirm", "task=wnli", f"task.data_dir={SHARED / 'glue'}", "proxy_setup.init=scratch",
            "proxy_setup.scale={hidden: 32, layers: 2, heads: 4, intermediate: 64}", "proxy_setup.heldout=100",
            "proxy_setup.vocab_size=400", "proxy.batch_size=8", "proxy.threads=1", "seq_len=8", "latency.rounds=1",
            "latency.warmup=0", f"search.n_trials={n}", f"cache_dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/run",
        ], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, timeout=300)
    text = (tmp_path / "log.txt").read_text()
    assert out.returncode == 0, text[-3000:]
    assert "\r" not in text and "\x1b[" not in text and "finetune wnli" not in text and "it/s" not in text
    lines = text.splitlines()
    trials = [line for line in lines if re.match(r"trial \d", line)]
    assert [t.split(":")[0] for t in trials] == ["trial 0 (bert_base)", "trial 1 (squeezebert)", "trial 2", "trial 3"]
    assert all(re.search(rf"g\[.*\]  score 0\.\d{{4}}  [\d.]+ ms  [\d.]+ s  \[{i + 1}/{n} evaluations\]$", t)
               for i, t in enumerate(trials)), trials
    assert "finished with values" not in text  # Optuna's own line a trial: the search's replaces it
    assert len(lines) <= n + 12, text  # the trials, the front (up to n rows) and a few lines a run


def test_run_rejects_a_bad_space_before_any_study(tmp_path):
    space = tmp_path / "bad.yaml"
    space.write_text("groups: {q: [1, 5]}\n")
    out = run("run", f"space={space}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert out.returncode != 0
    assert f"{space}: groups.q: 5: does not divide" in out.stderr
    assert not (tmp_path / "run" / "study.db").exists()


def test_run_refuses_a_torch_lut_with_the_onnxruntime_backend(tmp_path):
    out = run("run", "search.latency_mode=lut", "latency.backend=onnxruntime", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert out.returncode != 0 and "use latency.backend=torch" in out.stderr
    assert not (tmp_path / "run" / "study.db").exists()


@pytest.mark.slow
@pytest.mark.shared
def test_workers_fan_out_with_the_submitit_launcher(tmp_path):
    """The SLURM fan-out (hydra/launcher=submitit_slurm) run by submitit's local executor:
    two jobs, one shared study."""
    import optuna

    from arch_search.study.storage import storage_for
    from tests.conftest import SHARED

    space = tmp_path / "tiny.yaml"
    space.write_text("base: minilm_l6\ngroups: {q: [1, 2, 4, 8], k: [1, 2, 4, 8], ffn_in: [1, 2, 4, 8], ffn_out: [1, 2, 4, 8]}\n")
    url = f"sqlite:///{tmp_path}/shared.db"
    out = run(
        "run", "--multirun", "hydra/launcher=submitit_local", "search.worker=0,1", f"space={space}",
        "proxy=zero_cost", "~confirm", "task=wnli", f"task.data_dir={SHARED / 'glue'}", "proxy_setup.init=scratch",
        "proxy_setup.scale={hidden: 32, layers: 2, heads: 4, intermediate: 64}", "proxy_setup.heldout=100",
        "proxy_setup.vocab_size=400", "proxy.batch_size=8", "proxy.threads=1", "seq_len=8", "latency.rounds=1",
        "latency.warmup=0", "search.progress=false", "search.n_trials=6", f"storage.url={url}",
        f"cache_dir={tmp_path}/cache", f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:] + out.stdout[-2000:]
    trials = optuna.load_study(study_name="tiny", storage=storage_for(url)).trials
    assert 6 <= len(trials) <= 7 and all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    assert len(list((tmp_path / "sweep").glob("*/pareto.csv"))) == 2  # each job wrote its view of the study


@pytest.mark.slow
def test_evaluate_at_a_lower_precision_and_a_precision_without_its_runtime(tmp_path):
    common = ("arch=squeezebert", "seq_len=16", "latency.rounds=2", "latency.warmup=0", f"hydra.run.dir={tmp_path}/run")
    out = run("evaluate", *common, "latency.precision=bf16", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "| bf16 |" in out.stdout and "1.00x" in out.stdout  # the env line names the precision
    bad = run("evaluate", *common, "latency.precision=int8", cwd=tmp_path)  # int8 needs onnxruntime
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert "error: latency: precision=int8 runs on latency.backend=onnxruntime" in bad.stderr

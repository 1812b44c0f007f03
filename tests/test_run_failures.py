"""`python -m arch_search run` (and `evaluate`) under bad input and interruption, as a user
meets them: each failure is one `error:` line and no traceback; a run that fails before its
study writes nothing (no run directory, no study.db); an interrupted or failed search keeps its
finished trials and resumes when the same command is run again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.conftest import SHARED

# no network: a data error must not turn into minutes of Hugging Face retries
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "arch_search", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env or ENV)


def tiny_run_args(tmp_path: Path, data_dir: Path = SHARED / "glue") -> list[str]:
    """A `run` of a 32-design space scored by a tiny scratch model on WNLI (no n_trials: each
    test sets its own). The study lives in tmp_path/run/study.db, named `tiny`."""
    space = tmp_path / "tiny.yaml"
    space.write_text("base: minilm_l6\ngroups: {q: [1, 4], k: [1, 4], v: [1, 4], ffn_in: [1, 4], ffn_out: [1, 4]}\n")
    return [
        "run", f"space={space}", "proxy=zero_cost", "~confirm", "task=wnli", f"task.data_dir={data_dir}",
        "proxy_setup.init=scratch", "proxy_setup.scale={hidden: 32, layers: 2, heads: 4, intermediate: 64}",
        "proxy_setup.heldout=100", "proxy_setup.vocab_size=400", "proxy.batch_size=8", "proxy.threads=1",
        "seq_len=8", "latency.rounds=1", "latency.warmup=0", "search.progress=false",
        f"cache_dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/run",
    ]


def assert_one_error_line(out: subprocess.CompletedProcess, *words: str) -> str:
    """Exactly one line of the output starts with `error:`, it holds each of ``words``, and no
    traceback is printed. Returns that line."""
    text = out.stderr + "\n" + out.stdout
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def assert_nothing_written(tmp_path: Path) -> None:
    assert not (tmp_path / "run").exists(), sorted(p.name for p in (tmp_path / "run").iterdir())
    assert not list(tmp_path.rglob("study.db"))


def trials(tmp_path: Path) -> list[optuna.trial.FrozenTrial]:
    storage = f"sqlite:///{tmp_path / 'run' / 'study.db'}"
    return optuna.load_study(study_name="tiny", storage=storage).get_trials(deepcopy=False)


def numbers(trials_: list[optuna.trial.FrozenTrial], state: optuna.trial.TrialState) -> set[int]:
    return {t.number for t in trials_ if t.state == state}


COMPLETE, RUNNING, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.FAIL


# ---- before the study: settings, Hydra, data, storage -----------------------------------------


@pytest.mark.parametrize(
    "command, override, message",
    [
        ("run", "search.n_trials=0", "search.n_trials must be an integer >= 1, got 0"),
        ("run", "search.n_trials=-2", "search.n_trials must be an integer >= 1, got -2"),
        ("run", "search.n_trials=abc", "search.n_trials must be an integer >= 1, got 'abc'"),
        ("run", "search.leveled_start=-1", "search.leveled_start must be an integer >= 0, got -1"),
        ("run", "search.start_bins=-3", "search.start_bins must be an integer >= 0, got -3"),
        ("run", "search.confirm_pick=fastest", "search.confirm_pick must be one of front_fastest, best_score, got 'fastest'"),
        ("run", "proxy.steps=0", "proxy.steps must be an integer >= 1"),
        ("run", "proxy.batch_size=0", "proxy.batch_size must be an integer >= 1, got 0"),
        ("run", "proxy_setup.max_len=1", "proxy_setup.max_len must be an integer >= 2, got 1"),
        ("run", "proxy_setup.heldout=0", "proxy_setup.heldout must be an integer >= 1, got 0"),  # a search scores on it
        ("run", "seq_len=0", "latency.seq_len must be an integer >= 1"),  # the protocol owns them (${seq_len})
        ("run", "batch=-1", "latency.batch must be an integer >= 1, got -1"),
        ("run", "latency.threads=0", "latency.threads must be an integer >= 1"),
        ("run", "latency.rounds=0", "latency.rounds must be an integer >= 1"),
        ("evaluate", "seq_len=0", "latency.seq_len must be an integer >= 1"),
        ("evaluate", "latency.rounds=0", "latency.rounds must be an integer >= 1"),
    ],
)
def test_a_bad_number_is_one_error_line(command, override, message, tmp_path):
    out = cli(command, override, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert out.returncode == 1
    assert assert_one_error_line(out, message).startswith(f"error: {message}")
    if command == "run":  # evaluate makes no promise about its run directory
        assert_nothing_written(tmp_path)


def test_the_latency_model_checks_its_own_settings(tmp_path):
    """search.latency_mode.heldout_designs is checked by LUTLatency's constructor (not by the CLI): one
    error line, before the study exists."""
    out = cli("run", "search/latency_mode=lut", "search.latency_mode.heldout_designs=0", f"hydra.run.dir={tmp_path}/run",
              cwd=tmp_path)
    message = "search.latency_mode.heldout_designs must be an integer >= 1, got 0"
    assert out.returncode == 1 and assert_one_error_line(out, message).startswith(f"error: {message}")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    "override, words",
    [
        ("task=nope", ["Could not find 'task/nope'", "options:", "sst2", "wnli"]),
        ("search.n_trialz=3", ["Could not override 'search.n_trialz'"]),
        ("search/sampler=nope", ["Could not find 'search/sampler/nope'", "nsga2"]),
    ],
)
def test_hydras_errors_are_one_line(override, words, tmp_path):
    out = cli("run", override, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert out.returncode == 1
    assert_one_error_line(out, *words)
    assert_nothing_written(tmp_path)


def planted_glue(tmp_path: Path, damage: str) -> Path:
    """A GLUE folder with WNLI's files, train.tsv damaged: `missing` (no folder at all),
    `columns` (line 5 has a fifth column), `empty` (0 bytes), `header` (a header, no rows)."""
    glue = tmp_path / "glue"
    if damage == "missing":
        return glue
    (glue / "WNLI").mkdir(parents=True)
    for name in ("train.tsv", "dev.tsv"):
        shutil.copy(SHARED / "glue" / "WNLI" / name, glue / "WNLI" / name)
    train = glue / "WNLI" / "train.tsv"
    lines = train.read_text().splitlines(keepends=True)
    if damage == "columns":
        lines[4] = lines[4].rstrip("\n") + "\textra\n"
    elif damage == "empty":
        lines = []
    elif damage == "header":
        lines = lines[:1]
    train.write_text("".join(lines))
    return glue


@pytest.mark.parametrize(
    "damage, words",
    [
        ("missing", ["WNLI/train.tsv: no such file", "data_dir="]),
        pytest.param("columns", ["WNLI/train.tsv:5: expected 4 columns, got 5"], marks=pytest.mark.shared),  # copies WNLI from ../shared
        pytest.param("empty", ["WNLI/train.tsv: empty file"], marks=pytest.mark.shared),
        pytest.param("header", ["WNLI/train.tsv: no examples"], marks=pytest.mark.shared),
    ],
)
def test_a_data_error_stops_the_run_before_trial_0(damage, words, tmp_path):
    glue = planted_glue(tmp_path, damage)
    out = cli(*tiny_run_args(tmp_path, data_dir=glue), "search.n_trials=3", cwd=tmp_path)
    assert out.returncode == 1
    assert_one_error_line(out, str(glue), *words)
    assert "trial 0" not in out.stdout + out.stderr.lower()  # no trial ran (the search's line a trial, Optuna's)
    assert_nothing_written(tmp_path)


@pytest.mark.shared
def test_a_storage_that_cannot_be_opened_is_one_line_without_its_password(tmp_path):
    password = "pw-7f3a9c"
    url = f"postgresql://u:{password}@127.0.0.1:1/x"  # port 1: connection refused
    out = cli(*tiny_run_args(tmp_path), "search.n_trials=3", "storage=postgres", f"storage.url={url}", cwd=tmp_path)
    assert out.returncode == 1
    assert_one_error_line(out, "error: storage:", "127.0.0.1", "port 1")
    assert_nothing_written(tmp_path)
    assert password not in out.stdout + out.stderr
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):
        assert password.encode() not in path.read_bytes(), path


# ---- during the study: Ctrl-C, a failing trial ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.shared
def test_ctrl_c_keeps_finished_trials_and_the_same_command_resumes(tmp_path):
    # finetune for 200 steps: about a second a trial, 32 designs: busy long after trial 0
    slow = ["proxy=finetune", "proxy.steps=200", "proxy.eval_dev=false", "proxy.progress=false"]
    args = [a for a in tiny_run_args(tmp_path) if a != "proxy=zero_cost"] + slow
    # Ctrl-C's default action in the child, whatever this process inherited: a shell without job
    # control starts a background job with SIGINT ignored, and Python then never raises
    # KeyboardInterrupt (a test run launched that way would fail here for the wrong reason)
    proc = subprocess.Popen([sys.executable, "-m", "arch_search", *args, "search.n_trials=50"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        start = time.monotonic()
        deadline, done, polls, unreadable = start + 240, set(), 0, []
        while time.monotonic() < deadline and proc.poll() is None:  # a trial finished, the next one running
            time.sleep(0.2)
            if (tmp_path / "run" / "study.db").exists():
                polls += 1
                try:
                    now = trials(tmp_path)
                except Exception as e:  # the study is being created
                    unreadable.append(type(e).__name__)
                    continue
                done = numbers(now, COMPLETE)
                if done and numbers(now, RUNNING):
                    break
        assert proc.poll() is None and done, "the search ended (or never got going) before Ctrl-C"
        time.sleep(0.3)  # well inside the running trial
        # what a failure below needs to be told apart: a late break (the search ending in the
        # wait) from a Ctrl-C the program did not honour
        seen = (f"Ctrl-C after {time.monotonic() - start:.1f} s, {polls} polls ({len(unreadable)} unreadable: "
                f"{sorted(set(unreadable))}), {len(done)} trials complete")
        assert proc.poll() is None, f"the search ended during the wait; {seen}"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    ignored = [line for line in stderr.splitlines() if line.startswith("Exception ignored")]
    assert proc.returncode == 130, f"{seen}; {ignored}\n{stderr[-3000:]}"
    assert "Traceback" not in stderr + stdout, stderr[-3000:]
    assert "interrupted:" in stderr and "rerun the same command to resume" in stderr
    assert not [line for line in (stderr + "\n" + stdout).splitlines() if line.startswith("error:")]
    assert done <= numbers(trials(tmp_path), COMPLETE)

    again = cli(*args, "search.n_trials=3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    after = trials(tmp_path)
    assert done <= numbers(after, COMPLETE) and not numbers(after, RUNNING)
    references = {t.user_attrs["reference"] for t in after if "reference" in t.user_attrs}
    assert references == {t.user_attrs["reference"] for t in after if "reference" in t.user_attrs and t.state == COMPLETE}


BOOM = '''
import json
import os

from arch_search.proxies import ProxyResult


class Boom:
    """A proxy that raises in every trial while BOOM=1 is set, and scores 0.5 otherwise (the
    Proxy protocol: setup, seed, for_space, evaluate)."""

    seed = None

    def __init__(self, setup=None, **kw):
        self.setup = setup

    def for_space(self, space):
        return self

    def evaluate(self, spec, report=None):
        if os.environ.get("BOOM") == "1":
            raise RuntimeError("boom")
        return ProxyResult(score=0.5, metric="accuracy")
'''


@pytest.mark.slow
@pytest.mark.shared
def test_a_failing_trial_is_one_line_its_traceback_in_errors_log_and_a_rerun_redoes_it(tmp_path):
    (tmp_path / "boom.py").write_text(BOOM)
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    env = {**ENV, "PYTHONPATH": path}
    args = [*tiny_run_args(tmp_path), "proxy._target_=boom.Boom", "search.n_trials=3"]
    log = tmp_path / "run" / "errors.log"

    out = cli(*args, cwd=tmp_path, env={**env, "BOOM": "1"})
    assert out.returncode == 1
    assert_one_error_line(out, "error: a trial failed: RuntimeError: boom", str(log), "rerun the same command")
    assert "Traceback" in log.read_text() and "RuntimeError: boom" in log.read_text()
    failed = [t for t in trials(tmp_path) if t.state == FAIL]
    assert [t.user_attrs.get("reference") for t in failed] == ["bert_base"]  # trial 0: the dense reference

    again = cli(*args, cwd=tmp_path, env=env)  # the same command, the cause gone
    assert again.returncode == 0, again.stderr[-3000:]
    after = trials(tmp_path)
    assert numbers(after, FAIL) == {failed[0].number} and not numbers(after, RUNNING)
    assert [t.number for t in after if t.user_attrs.get("reference") == "bert_base" and t.state == COMPLETE]
    assert (tmp_path / "run" / "pareto.csv").is_file()


def bad_checkpoint(tmp_path: Path, damage: str, minilm: Path) -> Path:
    """A checkpoint folder the distilled supernet cannot use: `missing` (no folder), `not-bert`
    (a GPT-2 config), `tokenizer` (BERT weights, no tokenizer files), `dims` (a BERT of hidden
    360 = 12 heads of 30, which FFN/attention groups of 16 cannot split)."""
    ckpt = tmp_path / "ckpt"
    if damage == "missing":
        return ckpt
    ckpt.mkdir()
    config = json.loads((minilm / "config.json").read_text())
    if damage == "not-bert":
        config = {"model_type": "gpt2", "n_embd": 384, "n_layer": 6, "n_head": 12, "vocab_size": 30522}
    if damage != "tokenizer":
        shutil.copy(minilm / "vocab.txt", ckpt / "vocab.txt")
    (ckpt / "config.json").write_text(json.dumps(config))
    if damage != "dims":
        (ckpt / "model.safetensors").symlink_to(minilm / "model.safetensors")
        return ckpt
    from safetensors.torch import load_file, save_file

    (ckpt / "config.json").write_text(json.dumps(config | {"hidden_size": 360, "intermediate_size": 1440}))
    cut = {384: 360, 1536: 1440}  # MiniLM's weights cut to the new dims: a loadable BERT
    state = load_file(str(minilm / "model.safetensors"))
    save_file({k: v[tuple(slice(0, cut.get(n, n)) for n in v.shape)].contiguous() for k, v in state.items()},
              str(ckpt / "model.safetensors"))
    return ckpt


@pytest.mark.shared
@pytest.mark.parametrize(
    "damage, words",
    [
        ("missing", ["ckpt: no such checkpoint folder"]),
        ("not-bert", ["model_type 'bert' and 'squeezebert', got 'gpt2'"]),
        ("tokenizer", ["ckpt: no tokenizer.json or vocab.txt"]),
        ("dims", ["differs from the checkpoint's dims", "'hidden': 360", "proxy_setup.scale"]),
    ],
)
def test_a_checkpoint_the_default_proxy_cannot_use_is_one_error_line_before_the_study(damage, words, tmp_path, minilm_dir):
    ckpt = bad_checkpoint(tmp_path, damage, minilm_dir)
    out = cli("run", "space=squeezebert", "proxy=supernet", "proxy_setup=pretrained", f"proxy_setup.checkpoint={ckpt}",
              "task=wnli", f"task.data_dir={SHARED / 'glue'}", "proxy_setup.heldout=60", "search.progress=false",
              f"cache_dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert out.returncode == 1
    assert_one_error_line(out, *words)
    assert_nothing_written(tmp_path)
    assert not (tmp_path / "cache" / "teachers").exists()  # nothing trained either


@pytest.mark.shared
def test_a_checkpoint_whose_dims_the_space_cannot_group_is_named_at_its_own_scale(tmp_path, minilm_dir):
    ckpt = bad_checkpoint(tmp_path, "dims", minilm_dir)
    out = cli("run", "space=squeezebert", "proxy=supernet", "proxy_setup=pretrained", f"proxy_setup.checkpoint={ckpt}",
              "proxy_setup.scale={hidden: 360, layers: 6, heads: 12, intermediate: 1440}", "task=wnli",
              f"task.data_dir={SHARED / 'glue'}", f"cache_dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert out.returncode == 1
    assert_one_error_line(out, "groups.q", "does not divide", "360", "proxy scale")
    assert_nothing_written(tmp_path)

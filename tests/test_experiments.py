"""Each experiment's quick variant runs (a smoke test of the command written in its README), and
what it would have written is checked: a --quick run prints each file instead (``toolkit.show``:
a line ``--- <name> ---``, then the text), and each experiment's check below reads them back for
their keys, row counts and value ranges."""

import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, SHARED

pytestmark = pytest.mark.slow  # each runs an experiment's --quick variant in a subprocess


def printed(stdout: str) -> dict[str, str]:
    """{file name: text} of the files a --quick run printed instead of writing (``toolkit.show``);
    a line ``--- <figure>: ... ---`` ends a file's text."""
    files, name = {}, None
    for line in stdout.splitlines(keepends=True):
        if m := re.fullmatch(r"--- (\S+) ---\n?", line):
            name = m.group(1)
            files[name] = ""
        elif line.startswith("--- "):
            name = None
        elif name is not None:
            files[name] += line
    return files


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def fraction(x, n: int) -> bool:
    """``x`` (a string or a number) is an accuracy over ``n`` rows: in [0, 1] and a whole count of
    them (to the 4 decimals a file keeps). A mean over two seeds is a count of 2n."""
    x = float(x)
    return 0 <= x <= 1 and abs(x * n - round(x * n)) <= 5e-5 * n


MODELS = ("ours BERT-base", "ours SqueezeBERT", "HF BertModel", "HF SqueezeBertModel")


def speedup_quick(files: dict[str, str], stdout: str) -> None:
    md = files["results.md"]
    assert "Protocol: batch 1, seq 32, 2 layers, 1 thread(s)" in md
    medians = re.findall(rf"^\| ({'|'.join(MODELS)}) \| ([\d.]+) \|", md, re.M)
    assert [m for m, _ in medians] == [*MODELS, *MODELS]  # torch, then onnxruntime
    assert all(float(ms) > 0 for _, ms in medians)
    parity = re.findall(rf"(?:{'|'.join(MODELS)}) (\d\.\de[-+]\d\d)", md)
    assert len(parity) == 6 and all(float(d) < 1e-4 for d in parity)  # ours vs HF (2); each ONNX graph vs torch (4)
    # encoder MACs at seq 32, 2 layers: closed form, any machine
    assert "| BERT-base | 38.6M | 0.456 | 0.91 | - |" in md and "| SqueezeBERT | 28.9M | 0.145 | 0.29 | - |" in md
    ratios = re.findall(r"([^;]+?) ([\d.]+)x \(target ([\d.]+)x\)", stdout.split("\nratios: ", 1)[1])
    assert [(name.strip(), float(target)) for name, _, target in ratios] == [
        ("ours SqueezeBERT vs ours BERT-base", 2.8), ("ours SqueezeBERT vs HF SqueezeBertModel", 1.3),
        ("ours BERT-base vs HF BertModel", 0.95), ("ours SqueezeBERT (ORT) vs HF SqueezeBertModel (ORT)", 1.0)]
    assert all(float(r) > 0 for _, r, _ in ratios)


def model_ab_quick(files: dict[str, str], stdout: str) -> None:
    summary = json.loads(files["model_ab.json"])  # the model file at HEAD against the working tree's
    assert [r["design"] for r in summary["designs"]] == ["bert_base", "squeezebert"] and summary["layers"] == 2
    assert all(r["bit_identical"] is True and r["a_ms"] > 0 and r["b_ms"] > 0 for r in summary["designs"])
    assert all(r["b_over_a"] == pytest.approx(r["b_ms"] / r["a_ms"], abs=0.01) for r in summary["designs"])
    assert "| bert_base |" in files["model_ab.md"] and summary["rounds"] == 3


def speedup_precision_quick(files: dict[str, str], stdout: str) -> None:
    summary = json.loads(files["precision.json"])
    assert summary["protocol"] == {"batch": 1, "layers": 2, "seq_len": 32, "threads": 1, "warmup": 1, "rounds": 3}
    cells = [(r["backend"], r["precision"], r["models"]) for r in summary["rows"]]
    assert cells == [(b, p, m) for b, ps in (("torch", ("fp32", "bf16")), ("onnxruntime", ("fp32", "int8", "int8 static")))
                     for p in ps for m in ("ours", "HF")]
    for r in summary["rows"]:
        assert r["dense_ms"] > 0 and r["squeezebert_ms"] > 0 and r["speedup"] == pytest.approx(r["dense_ms"] / r["squeezebert_ms"], rel=0.01)
        assert r["precision"] != "fp32" or r["dense_vs_fp32"] == r["squeezebert_vs_fp32"] == 1.0
    acc = summary["accuracy"]
    assert (acc["steps"], acc["seeds"], acc["dev_rows"], acc["calibration_rows"]) == (4, [0], 48, 32)
    assert [(r["model"], r["precision"]) for r in acc["rows"]] == [
        (m, p) for m in ("dense", "SqueezeBERT pattern") for p in ("bf16", "int8", "int8 static")]
    for r in acc["rows"]:
        assert fraction(r["accuracy"], 48) and fraction(r["fp32_accuracy"], 48) and fraction(r["agreement"], 48)
        assert r["diff"] == pytest.approx(r["accuracy"] - r["fp32_accuracy"], abs=1e-3)
        assert r["flips_lost"] + r["flips_gained"] == round(48 * (1 - r["agreement"])) and r["rel_l2"] >= 0
    assert len(re.findall(r"^\| (?:dense|SqueezeBERT pattern) \| 0 \|", files["precision.md"], re.M)) == 6


def speedup_cuda_quick(files: dict[str, str], stdout: str) -> None:
    summary = json.loads(files["summary_cuda.json"])
    assert summary["protocol"]["batches"] == [1, 32] and summary["flop_ratio"] == pytest.approx(3.15, abs=0.01)
    assert [(r["batch"], r["precision"], r["models"]) for r in summary["rows"]] == [
        (b, p, m) for b in (1, 32) for p in ("fp32", "bf16") for m in ("ours", "HF")]
    assert all(r["dense_ms"] > 0 and r["squeezebert_ms"] > 0 for r in summary["rows"])
    assert set(summary["parity_max_abs"]) == {"ours BERT-base", "ours SqueezeBERT"}
    assert all(d < 1e-4 for d in summary["parity_max_abs"].values())


def proxy_finetune_quick(files: dict[str, str], stdout: str) -> None:
    table = rows(files["results.csv"])
    assert [r["design"] for r in table] == ["dense (MiniLM-L6)", "SqueezeBERT pattern (g=4,4,4,1,4,4)"]
    for r in table:
        assert r["steps"] == "5" and float(r["train_minutes"]) > 0
        assert fraction(r["dev_accuracy"], 872) and fraction(r["heldout_accuracy"], 200)  # SST-2 dev; --quick's held-out rows
    assert "| dense (MiniLM-L6) | 5 |" in files["results.md"]


def tau(x) -> bool:
    return x is None or -1 <= x <= 1


def proxy_supernet_quick(files: dict[str, str], stdout: str) -> None:
    summary = json.loads(files["summary.json"])
    assert (summary["task"], summary["designs"], summary["seeds"]) == ("wnli", 3, [0, 1])  # QUICK_PLAN
    assert {v: a["seeds"] for v, a in summary["ablations"].items()} == {"default": [0, 1], "uniform": [0], "permute": [0]}
    assert all(tau(c["tau"]) and c["designs"] == 3 for c in summary["score_choice"].values())
    assert tau(summary["kendall_tau_vs_compressed"]) and tau(summary["kendall_tau_between_supernet_seeds"])
    assert len(summary["train_seconds_each"]) == 2 and all(s > 0 for s in summary["train_seconds_each"])
    assert 0 < summary["seconds_per_design"] <= summary["seconds_per_design_max"]
    assert summary["confirm_from_supernet"]["designs"] == 3 and summary["confirm_from_supernet"]["seeds"] == [0]
    assert "| gold log-likelihood |" in files["results.md"]


def search_recovers_quick(files: dict[str, str], stdout: str) -> None:
    summary = json.loads(files["summary.json"])
    run = summary["runs"]["seed0"]
    assert list(summary["runs"]) == ["seed0"] and run["evaluations"] == 4  # search.n_trials=4
    assert run["confirmed"] >= 2 and run["noise_dof"] >= 1 and run["noise_sd"] > 0  # dense and SqueezeBERT at least
    assert 0 < summary["front_coverage"]["seed0"] <= 1 and all(s > 0 for s in run["confirmed_front_speedups"])
    assert isinstance(run["squeezebert"]["on_front"], bool) and run["timing"]["seconds_per_design"] > 0
    assert "| `seed0` |" in files["results.md"]


def samplers_quick(files: dict[str, str], stdout: str) -> None:
    table = rows(files["samplers.csv"])
    assert [(r["sampler"], r["seed"], r["trials"]) for r in table] == [("nsga2", "0", "4"), ("random", "0", "4")]
    for r in table:
        assert float(r["hypervolume"]) >= float(r["hv_at_half"]) >= 0 and float(r["fastest_ms"]) > 0
        assert fraction(float(r["best_accuracy"]) / 100, 100) and 1 <= int(r["distinct_designs"]) <= 4  # 100 held-out rows
    assert "| nsga2 | 0 | 4 |" in files["samplers.md"]


def proxy_fidelity_quick(files: dict[str, str], stdout: str) -> None:
    designs = rows(files["results.csv"])
    assert [r["design"] for r in designs] == ["dense", "squeezebert", "all-2", "all-4", "all-8", "all-16", "qkv16-ffn2",
                                              "attn-dense-ffn8", "mixed-a", "mixed-b"]
    for r in designs:  # the scratch proxy under --quick: 100 held-out rows, SST-2's 872 dev rows; two seeds' means
        assert fraction(float(r["long_heldout"]) / 100, 200) and fraction(float(r["long_dev"]) / 100, 1744)
        assert fraction(r["finetune (search default)"], 200) and fraction(r["supernet"], 100)
    taus = rows(files["taus.csv"])
    assert [r["proxy"] for r in taus] == ["finetune (search default)", "supernet", "zero-cost snip", "zero-cost grad_norm",
                                          "zero-cost synflow"]
    for r in taus:  # nan: a proxy that scored every design the same (the tiny supernet can)
        assert all(math.isnan(float(r[k])) or -1 <= float(r[k]) <= 1 for k in ("tau_vs_long_heldout", "tau_vs_long_dev"))
        assert float(r["seconds_per_design"]) > 0


VERDICTS = ("reproduced", "not reproduced", "contradicted")


def lesson(files: dict[str, str], designs: list[str]) -> dict:
    """A lesson's files (``toolkit.write``): summary.json's verdict over seeds 0 and 1, with its MDE
    and the paired noise; results.csv a row per design: WNLI's held-out (60 rows) and dev (71 rows)
    accuracy per seed, x100, the score (a mean log-likelihood x100), latency at the tiny target (the
    first design's speedup 1) and its MACs. Returns the summary."""
    summary = json.loads(files["summary.json"])
    assert summary["verdict"] in VERDICTS and summary["seeds"] == [0, 1] and summary["mde_points"] >= 0
    assert summary["noise_dof"] >= 1 and set(summary["noise_sd_points"]) == {"heldout", "dev", "score"}
    table = rows(files["results.csv"])
    assert [r["design"] for r in table] == designs
    for r in table:
        for seed in (0, 1):
            assert fraction(float(r[f"heldout_seed{seed}"]) / 100, 60) and fraction(float(r[f"dev_seed{seed}"]) / 100, 71)
        assert float(r["score_mean"]) < 0 and float(r["median_ms"]) > 0 and int(r["macs"]) > 0
    assert float(table[0]["speedup"]) == 1.0
    return summary


PROJECTION_NAMES = ("q", "k", "v", "post", "in", "out")


def which_layers_quick(files: dict[str, str], stdout: str) -> None:
    summary = lesson(files, ["dense", "all-4", *(f"only {p}" for p in PROJECTION_NAMES),
                             *(f"all but {p}" if p != "post" else "all but post (SqueezeBERT)" for p in PROJECTION_NAMES)])
    effects = rows(files["projections.csv"])
    assert [r["projection"] for r in effects] == ["q", "k", "v", "post_attention", "ffn_in", "ffn_out"]
    assert all(float(r["alone_heldout_mde"]) >= 0 and float(r["keep_heldout_mde"]) >= 0 for r in effects)
    assert 1 <= summary["post_rank_gain_per_ms"] <= 6 and 1 <= summary["post_rank_loss_per_ms_saved"] <= 6
    assert set(summary["post_versus_keeping_dense"]) == {"q", "k", "v"} and summary["keep_post_dense_verdict"] in VERDICTS


GROUP_COUNTS = ["G=1", "G=2", "G=4", "G=8", "G=16"]


def group_count_quick(files: dict[str, str], stdout: str) -> None:
    summary = lesson(files, GROUP_COUNTS)
    assert summary["knee"] in GROUP_COUNTS and summary["first_below_dense"] in (*GROUP_COUNTS[1:], "none")
    assert set(summary["drops"]) == set(GROUP_COUNTS[1:])
    drops = rows(files["drops.csv"])
    assert [r["design"] for r in drops] == GROUP_COUNTS and all(float(r["vs_dense_mde"]) >= 0 for r in drops[1:])
    assert files["profile.txt"].startswith("torch.profiler over 5 forward passes")
    assert re.findall(r"^(G=\d+) \(", files["profile.txt"], re.M) == ["G=1", "G=16"]  # dense against the most grouped


SHUFFLE_PAIRS = ["ffn G=4", "ffn G=8", "ffn G=16", "all-4"]


def shuffle_quick(files: dict[str, str], stdout: str) -> None:
    summary = lesson(files, ["dense", *(d for p in SHUFFLE_PAIRS for d in (p, f"{p} + shuffle"))])
    macs = {r["design"]: r["macs"] for r in rows(files["results.csv"])}
    assert all(macs[p] == macs[f"{p} + shuffle"] for p in SHUFFLE_PAIRS)  # a shuffle costs no FLOPs
    pairs = rows(files["pairs.csv"])
    assert [r["pair"] for r in pairs] == SHUFFLE_PAIRS == list(summary["pairs"])
    for r in pairs:  # on minus off, paired by seed
        assert float(r["shuffle_heldout"]) == pytest.approx(float(r["heldout_on"]) - float(r["heldout_off"]), abs=0.02)
        assert r["verdict_heldout"] in VERDICTS and float(r["shuffle_heldout_mde"]) >= 0


def glue_tasks_quick(files: dict[str, str], stdout: str) -> None:
    summary = json.loads(files["summary.json"])
    assert summary["verdict"] in VERDICTS and summary["seeds"] == [0, 1] and list(summary["tasks"]) == ["RTE", "STS-B"]
    tasks = rows(files["results.csv"])
    assert [(r["task"], r["metric"]) for r in tasks] == [("RTE", "accuracy"), ("STS-B", "pearson")]
    rte, stsb = tasks
    assert fraction(float(rte["dense"]) / 100, 2 * 277) and fraction(float(rte["squeezebert"]) / 100, 2 * 277)  # RTE dev
    assert -100 <= float(stsb["dense"]) <= 100 and -100 <= float(stsb["squeezebert"]) <= 100  # Pearson x100
    assert (rte["paper_gap"], stsb["verdict"]) == ("6.8", "no paper number")  # 73.2 - 66.4; no paper STS-B number
    for r in tasks:
        assert float(r["gap"]) == pytest.approx(float(r["squeezebert"]) - float(r["dense"]), abs=0.02)
        assert r["learned"] in ("True", "False") and float(r["gap_mde"]) >= 0
        assert r["verdict"] in (*VERDICTS, "undecidable by this proxy", "no paper number")
    designs = rows(files["designs.csv"])
    assert [r["design"] for r in designs] == ["rte dense", "rte squeezebert", "stsb dense", "stsb squeezebert"]
    settings = summary["per_task_settings"]  # conf/task/<task>.yaml, under the quick run's overrides (max length 16)
    assert list(settings) == ["rte", "stsb"] and settings["rte"]["teacher_steps"] == 2 and settings["rte"]["max_len"] == 16
    assert settings["rte"]["dev_over_max_len"] > settings["stsb"]["dev_over_max_len"] > 50  # RTE's pairs are longer


def proxy_compressed_quick(files: dict[str, str], stdout: str) -> None:
    summary = json.loads(files["summary.json"])
    assert (summary["task"], summary["designs"], summary["seeds"]) == ("wnli", 2, [0, 1])  # QUICK_PLAN
    assert set(summary["ablation_gap_points"]) == {"default", "no-refit"} and list(summary["teacher_seconds"]) == ["wnli"]
    assert set(summary["distill_curve_gap_points"]) == {"8", "200"}  # distill-8, and the default's 200 steps
    assert summary["seconds_per_design"] > 0 and summary["seconds_per_design_reference"] > 0
    assert all(v["snr"] is None or v["snr"] >= 0 for v in summary["score_choice"].values())
    assert "## wnli: designs at the default budget" in files["results.md"]


def samplers_run_quick(files: dict[str, str], stdout: str) -> None:
    samplers = ["nsga2", "tpe", "tpe-leveled", "tpe-binned", "random"]
    hv = {r["sampler"]: float(r["hv_4"]) for r in rows(files["results.csv"])}
    assert [(r["sampler"], r["seed"], r["designs"]) for r in rows(files["results.csv"])] == [(s, "0", "4") for s in samplers]
    summary = json.loads(files["summary.json"])
    assert summary["verdict"] in VERDICTS and summary["seeds"] == [0] and list(summary["reach"]) == samplers
    assert list(summary["versus_random"]) == samplers[:-1]
    for s, v in summary["versus_random"].items():  # one seed: the difference and ratio of its hypervolumes, no MDE
        assert v["difference"] == pytest.approx(hv[s] - hv["random"], abs=2e-5) and math.isnan(v["mde"])
        assert hv["random"] == 0 or v["ratio"] == pytest.approx(hv[s] / hv["random"], rel=1e-4)
    assert all(r["fastest_speedup"] > 0 and r["mild_designs"] >= 0 for r in summary["reach"].values())


AT_4X = ("which_layers", "group_count", "shuffle", "glue_tasks")


@pytest.mark.parametrize(
    "script, args, check",
    [
        ("experiments/speedup/run.py", ["--quick"], speedup_quick),
        ("experiments/speedup/model_ab.py", ["--before", "HEAD", "--quick"], model_ab_quick),
        pytest.param("experiments/speedup/run.py", ["--precision", "--quick"], speedup_precision_quick, marks=pytest.mark.shared),
        pytest.param("experiments/speedup/run.py", ["--device", "cuda", "--quick"], speedup_cuda_quick, marks=pytest.mark.gpu),
        pytest.param("experiments/proxy_finetune/run.py", ["--quick"], proxy_finetune_quick, marks=pytest.mark.shared),
        pytest.param("experiments/proxy_supernet/run.py", ["--quick"], proxy_supernet_quick, marks=pytest.mark.shared),
        pytest.param("experiments/search_recovers_squeezebert/run.py", ["--quick"], search_recovers_quick, marks=pytest.mark.shared),
        pytest.param("experiments/search_recovers_squeezebert/samplers.py", ["--quick"], samplers_quick, marks=pytest.mark.shared),
        pytest.param("experiments/proxy_fidelity/run.py", ["--quick"], proxy_fidelity_quick, marks=pytest.mark.shared),
        pytest.param("experiments/which_layers/run.py", ["--quick"], which_layers_quick, marks=pytest.mark.shared),
        pytest.param("experiments/group_count/run.py", ["--quick"], group_count_quick, marks=pytest.mark.shared),
        pytest.param("experiments/shuffle/run.py", ["--quick"], shuffle_quick, marks=pytest.mark.shared),
        pytest.param("experiments/glue_tasks/run.py", ["--quick"], glue_tasks_quick, marks=pytest.mark.shared),
        pytest.param("experiments/proxy_compressed/run.py", ["--quick"], proxy_compressed_quick, marks=pytest.mark.shared),
        pytest.param("experiments/samplers/run.py", ["--quick"], samplers_run_quick, marks=pytest.mark.shared),
    ],
    ids=lambda v: v.__name__.removesuffix("_quick") if callable(v) else None,
)
def test_quick_variant_runs(script, args, check, tmp_path):
    extra = ["--cache-dir", str(tmp_path)] if any(s in script for s in ("supernet", "fidelity", "compressed")) else []  # trains a supernet or a teacher
    env = {**os.environ, "ARCH_SEARCH_SHARED": str(SHARED)}
    out = subprocess.run([sys.executable, script, *args, *extra], cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    files = printed(out.stdout)
    check(files, out.stdout)  # what the run would have written
    if Path(script).parent.name in AT_4X:  # the lesson's verdict checked at 4x the healing budget (issue 35)
        at_4x = json.loads(files["summary.json"])["verdict_at_4x"]
        assert at_4x["verdict"] in VERDICTS, at_4x
        assert (at_4x["budget"], at_4x["distill_steps"], at_4x["steps"], at_4x["seeds"]) == (4, 8, 8, [0, 1])  # quick: 2 steps x 4
        assert at_4x["same_designs_at_1x"]["verdict"] in VERDICTS
        assert set(at_4x["points"]) == set(at_4x["designs"]) and at_4x["noise_dof"] == len(at_4x["designs"]) - 1


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
    cmd = [sys.executable, "experiments/gpu/run.py", "--quick", "--device", "cpu", "--out", str(tmp_path / "out"),
           "--work", str(tmp_path / "work"), "--cache-dir", str(tmp_path / "cache"), "--skip", "tests", "speedup"]
    env = {**os.environ, "ARCH_SEARCH_SHARED": str(SHARED)}
    env.pop("ARCH_SEARCH_CHECKPOINT", None)  # the checkpoint in ../shared, as CI has it
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert list(results) == ["env", "proxy", "supernet", "search", "cpu"]
    assert results["env"]["device"] == "cpu"
    assert results["env"]["checkpoint"] == "../shared/models/all-MiniLM-L6-v2"  # committed: no folder of the machine
    assert set(results["proxy"]["bf16"]) == {"SqueezeBERT", "all-4", "ffn_in 16"}
    assert len(results["proxy"]["fp32"]["SqueezeBERT"]["seeds"]) == 2 and results["supernet"]["steps"] == 2
    assert len(results["search"]["front"]) >= 1 and (tmp_path / "out" / "search_log.txt").is_file()
    assert str(tmp_path / "work") not in (tmp_path / "out" / "search_log.txt").read_text()  # --work named <work>
    for name, scores in [*results["proxy"]["bf16"].items(), ("SqueezeBERT fp32", results["proxy"]["fp32"]["SqueezeBERT"])]:
        assert all(fraction(h, 60) for h in scores["heldout"]) and all(s > 0 for s in scores["seconds"]), name  # WNLI, 60 rows
    assert set(results["cpu"]) == {"cpu", "bf16 - cpu", "fp32 - cpu", "step_seconds"}
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0 and "== " not in again.stdout  # every step is in gpu.json: none runs again

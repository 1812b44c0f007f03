"""Trained proxy weights kept for the Pareto front, and `export` to spec / HF / ONNX."""

import shutil

import optuna
import pytest
import torch
from optuna.trial import TrialState

from arch_search import ArchSpec, build_model
from arch_search.measure.latency import LatencyProtocol
from arch_search.app.export import ExportError, export_hf, export_trial, load_exported
from arch_search.study.weights import load_trial_weights, weights_path
from arch_search.proxies import ProxyResult
from arch_search.study.storage import RunError
from arch_search.study.storage import storage_for
from arch_search.study.search import Search
from arch_search.design.space import SearchSpace

SPACE = "base: minilm_l6\ngroups: {q: [1, 4], k: [1, 4], v: [1, 4], post_attention: [1], ffn_in: [1, 4], ffn_out: [1, 4]}\n"
TINY = dict(hidden=32, layers=2, heads=4, intermediate=64, vocab=100)


class TinyModelProxy:
    """Scores by groups (fewer is better) and returns a seeded tiny model of the design, as a
    training proxy returns its trained model."""

    def evaluate(self, spec, report=None):
        torch.manual_seed(len(spec.hash))
        model = build_model(spec.with_scale(**TINY), task_head=2).eval()
        penalty = sum(g for p in spec.groups for g in spec.groups[p]) / 1000
        return ProxyResult(score=0.9 - penalty, metric="accuracy", model=model)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    (run_dir / "tiny.yaml").write_text(SPACE)
    search = Search(
        SearchSpace.load(run_dir / "tiny.yaml"), TinyModelProxy(), LatencyProtocol(seq_len=8, rounds=2, warmup=0),
        "tiny", storage_for(f"sqlite:///{run_dir}/study.db"), optuna.samplers.RandomSampler(seed=0),
        weights_dir=run_dir / "weights",
    )
    search.run(8, progress=False)
    search.write(run_dir)
    return run_dir


def _study(run_dir):
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{run_dir}/study.db")


def test_only_the_front_keeps_its_weights(run_dir):
    study = _study(run_dir)
    front = {t.user_attrs.get("duplicate_of", t.number) for t in study.best_trials}  # Optuna's front; a repeat uses the first's
    kept = {int(p.stem.split("_")[1]) for p in (run_dir / "weights").glob("trial_*.safetensors")}
    assert front and kept == front and len(front) < len(study.trials)  # the best score is always on the front


def test_export_spec(run_dir):
    out = export_trial(run_dir, 1, "spec", run_dir / "x_spec")
    assert ArchSpec.from_yaml(out.path) == ArchSpec.preset("minilm_l6").replace(
        groups={"q": 4, "k": 4, "v": 4, "post_attention": 1, "ffn_in": 4, "ffn_out": 4}
    ) == ArchSpec.from_yaml(_study(run_dir).trials[1].user_attrs["spec"])


def test_export_hf_of_front_trials_loads_in_transformers_with_equal_outputs(run_dir):
    import transformers as tf

    ids = torch.randint(0, TINY["vocab"], (2, 11), generator=torch.Generator().manual_seed(0))
    front = _study(run_dir).best_trials  # its size varies with the timings; the best score is always on it
    assert front
    for t in front:
        out = export_trial(run_dir, t.number, "hf", run_dir / f"hf_{t.number}")
        assert out.trained and "trained proxy model" in out.notes[0]
        spec = ArchSpec.from_yaml(t.user_attrs["spec"])
        hf = tf.AutoModelForSequenceClassification.from_pretrained(out.path).eval()
        assert hf.config.model_type == ("bert" if spec.is_dense else "squeezebert")
        ours, _ = load_trial_weights(weights_path(run_dir / "weights", t.user_attrs.get("duplicate_of", t.number)))
        with torch.inference_mode():
            diff = (hf(ids).logits - ours(ids).logits).abs().max().item()
        assert diff <= 1e-4


def test_a_trial_off_the_front_exports_untrained(run_dir):
    study = _study(run_dir)
    off = next(t for t in study.trials if t.number not in {b.number for b in study.best_trials} and t.values)
    out = export_trial(run_dir, off.number, "hf", run_dir / "untrained")
    assert not out.trained and out.notes[0].startswith("UNTRAINED")
    assert (out.path / "config.json").is_file()


def test_designs_hf_cannot_express_export_as_safetensors_and_spec(tmp_path):
    spec = ArchSpec.preset("minilm_l6").with_scale(**TINY).replace(groups={"ffn_in": 4}, shuffle={"ffn_in": True})
    model = build_model(spec, task_head=3).eval()
    note = export_hf(model, tmp_path)
    assert "not a HF checkpoint" in note and "shuffle" in note
    again = load_exported(tmp_path)
    ids = torch.randint(0, TINY["vocab"], (1, 9), generator=torch.Generator().manual_seed(1))
    assert again.spec == spec and torch.equal(again(ids).logits, model(ids).logits)


def test_bad_input_is_one_clear_error(run_dir, tmp_path):
    with pytest.raises(RunError, match="no such run directory"):
        export_trial(tmp_path / "nowhere", 0, "hf")
    with pytest.raises(ExportError, match="has no trial 99"):
        export_trial(run_dir, 99, "spec")
    with pytest.raises(ExportError, match="format must be one of"):
        export_trial(run_dir, 0, "tflite")


def test_cli_export_and_its_errors(run_dir, tmp_path, capsys):
    from arch_search.app.cli import main

    main(["export", str(run_dir), "trial=1", "format=spec", f"out={run_dir / 'cli_spec'}"])
    assert "wrote" in capsys.readouterr().out and (run_dir / "cli_spec" / "spec.yaml").is_file()
    for argv, message in [
        (["export", str(run_dir / "missing"), "trial=0"], "no such run directory"),
        (["export", str(tmp_path), "trial=0"], "has no study.db"),
        (["export", str(run_dir), "trial=42"], "has no trial 42"),
        (["export", str(run_dir), "format=hf"], "usage"),
        (["export", str(run_dir), "trial=0", "colour=red"], "unexpected: colour"),
        (["export", str(run_dir), "trial=1", f"out={run_dir / 'study.json'}"], f"out={run_dir / 'study.json'}: cannot make"),
    ]:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert str(e.value).startswith("error:") and message in str(e.value)


@pytest.mark.parametrize("state", [TrialState.FAIL, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING])
def test_only_complete_trials_export(run_dir, tmp_path, state):
    from arch_search.app.cli import main

    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("study.db", "study.json"):
        shutil.copy(run_dir / name, copy)
    study = _study(copy)
    done = [t.number for t in study.trials if t.state == TrialState.COMPLETE]
    study.add_trial(optuna.trial.create_trial(state=state, user_attrs=study.trials[0].user_attrs))  # a design, not finished
    number = len(study.trials) - 1
    with pytest.raises(ExportError, match=f"trial {number} is {state.name}; only COMPLETE trials can be exported") as e:
        export_trial(copy, number, "spec")
    assert str(e.value).endswith(f"(here: {', '.join(map(str, done))})")
    with pytest.raises(SystemExit, match=f"^error: .*trial {number} is {state.name}"):
        main(["export", str(copy), f"trial={number}", "format=spec"])
    assert not (copy / "export").exists()


def test_export_onnx_matches_ours_in_onnxruntime(run_dir):
    from arch_search.nn.onnx_export import ort_outputs

    t = _study(run_dir).best_trials[0]
    out = export_trial(run_dir, t.number, "onnx", run_dir / "onnx")
    assert out.path.name == "model.onnx" and out.trained and "max abs diff" in out.notes[1]
    ours, _ = load_trial_weights(weights_path(run_dir / "weights", t.user_attrs.get("duplicate_of", t.number)))
    ids = torch.randint(0, TINY["vocab"], (4, 13), generator=torch.Generator().manual_seed(2))  # another shape
    with torch.inference_mode():
        expected = ours(ids).logits
    assert torch.allclose(torch.as_tensor(ort_outputs(out.path, ids)["logits"]), expected, atol=1e-4)

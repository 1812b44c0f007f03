"""Take a design home: a trial of a run as its ArchSpec YAML, a HF checkpoint or ONNX.

During a search, the proxy model each trial trained (at proxy scale) is kept in
``<run dir>/weights/trial_<n>.safetensors`` while that trial is on the Pareto front
(``save_trial_weights``; the search deletes the files of trials that leave the front).
After the search, the confirmation (``arch_search.study.confirm``) keeps the model it compressed,
healed and fine-tuned for each confirmed design (``weights/confirmed_<n>.safetensors``).
``export`` writes the confirmed model if there is one, else the search proxy's trained weights;
a trial without either exports its design at target scale with BERT's random init, and says
that it is untrained. Trained models carry the task's label names (``id2label``).

- ``spec``: the design's ArchSpec YAML (target scale) alone;
- ``hf``: a ``transformers`` checkpoint folder (``from_pretrained``): BERT when dense,
  SqueezeBERT when every layer has the same groups; designs HF cannot express (per-layer
  groups, channel shuffle) are written as ``model.safetensors`` (its spec in the file's
  metadata, which ``load_exported`` reloads) + ``model_spec.yaml`` (that spec, to read), and
  the reason is returned;
- ``onnx``: ``model.onnx`` with dynamic batch and sequence axes, checked against ours in
  onnxruntime.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import optuna

from arch_search.design.spec import ArchSpec
from arch_search.study.record import TrialRecord
from arch_search.study.run_dir import RunDir
from arch_search.study.storage import RunError, load_study, locate

if TYPE_CHECKING:  # torch comes with these: ``format=spec`` reads the study only and never loads it
    from tokenizers import Tokenizer

    from arch_search.nn.model import Encoder

FORMATS = ("spec", "hf", "onnx")


class ExportError(RunError):
    """A run, study or trial that cannot be exported; the message says which and why."""


# ---- export ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    path: Path  # the file or folder written
    trained: bool  # weights of the trained proxy model (proxy scale), or an untrained design
    notes: list[str] = field(default_factory=list)


def load_run_trial(run_dir: Path, number: int) -> TrialRecord:
    """Trial ``number`` of the study in ``run_dir`` (study.db + study.json written by ``run``)."""
    loc = locate(str(run_dir))
    study = load_study(loc)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if number not in trials:
        raise ExportError(f"{run_dir}: study {loc.study_name!r} has no trial {number} (trials 0..{len(trials) - 1})")
    trial = TrialRecord.of(trials[number])
    if trial.state != "COMPLETE":
        done = [n for n, t in trials.items() if t.state == optuna.trial.TrialState.COMPLETE]
        listed = ", ".join(map(str, done[:20])) + (f", ... ({len(done)} in all)" if len(done) > 20 else "")
        raise ExportError(f"{run_dir}: trial {number} is {trial.state}; only COMPLETE trials can be exported "
                          f"(here: {listed or 'none yet'})")
    if trial.spec is None:
        raise ExportError(f"{run_dir}: trial {number} has no design (state {trial.state})")
    return trial


@dataclass(frozen=True)
class TrialModel:
    """What ``export`` writes for a trial: the model, its tokenizer and label names, whether it is
    trained, and a note saying which model it is."""

    model: Encoder
    tokenizer: Tokenizer | None
    labels: tuple[str, ...]
    trained: bool
    note: str


def trial_model(run_dir: Path, trial: TrialRecord) -> TrialModel:
    """The confirmed model (compressed, healed and fine-tuned by the confirmation) if the run
    confirmed the trial's design, else the search proxy's trained model if the run kept it,
    else the design at target scale, untrained."""
    import torch

    from arch_search.nn.model import build_model
    from arch_search.study.weights import confirmed_path, load_trial_weights, trial_labels, weights_path

    spec = ArchSpec.from_yaml(trial.spec)
    source = trial.number if trial.duplicate_of is None else trial.duplicate_of
    weights = RunDir(run_dir).weights
    for path, what in ((confirmed_path(weights, source), "confirmed model"), (weights_path(weights, source), "trained proxy model")):
        if path.is_file():
            model, tokenizer = load_trial_weights(path)
            s = model.spec
            return TrialModel(model, tokenizer, trial_labels(path), True, (
                f"{what} of trial {source} (proxy scale: hidden {s.hidden}, {s.layers} layers, "
                f"{s.heads} heads, FFN {s.intermediate}; the design at target scale is in spec.yaml)"))
    torch.manual_seed(0)
    note = (f"UNTRAINED: no trained weights kept for trial {trial.number} (only Pareto-front trials keep "
            "theirs); this is the design at target scale with BERT's random init")
    return TrialModel(build_model(spec).eval(), None, (), False, note)


def export_trial(run_dir: Path, number: int, fmt: str, out: Path | None = None) -> Exported:
    """Export trial ``number`` of the run in ``run_dir`` as ``fmt`` (spec | hf | onnx) to
    ``out`` (default ``<run_dir>/export/trial_<n>_<fmt>``)."""
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    run_dir = Path(run_dir)
    trial = load_run_trial(run_dir, number)
    spec = ArchSpec.from_yaml(trial.spec)
    out = Path(out) if out is not None else run_dir / "export" / f"trial_{number}_{fmt}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # e.g. out= an existing file: an export is a folder
        raise ExportError(f"out={out}: cannot make the export folder there ({e.strerror}); out= names a folder") from None
    (out / "spec.yaml").write_text(spec.to_yaml())
    if fmt == "spec":
        return Exported(out / "spec.yaml", trained=False, notes=[f"design of trial {number} at target scale"])
    found = trial_model(run_dir, trial)
    if found.tokenizer is not None:
        found.tokenizer.save(str(out / "tokenizer.json"))
    if fmt == "hf":
        return Exported(out, found.trained, [found.note, export_hf(found.model, out, found.labels)])
    return Exported(out / "model.onnx", found.trained, [found.note, export_onnx_checked(found.model, out / "model.onnx")])


def export_hf(model: Encoder, out: Path, labels: Sequence[str] = ()) -> str:
    """``model`` as a HF checkpoint folder if HF can express it (with ``labels`` as its
    ``id2label``, so ``transformers.pipeline`` prints them), else safetensors + spec YAML.
    Returns what was written and why."""
    from arch_search.nn.hf import to_hf
    from arch_search.study.weights import save_trial_weights

    try:
        hf = to_hf(model)
    except ValueError as e:
        save_trial_weights(out / "model.safetensors", model, labels=labels)
        (out / "model_spec.yaml").write_text(model.spec.to_yaml())
        return (f"not a HF checkpoint: {e}; wrote model.safetensors + model_spec.yaml "
                "(arch_search.app.export.load_exported reloads them)")
    if labels and len(labels) == model.num_labels:
        hf.config.id2label = dict(enumerate(labels))
        hf.config.label2id = {name: i for i, name in enumerate(labels)}
    hf.save_pretrained(str(out))
    kind = type(hf).__name__
    return f"HF checkpoint ({kind}, {hf.config.model_type}): transformers.AutoModel*.from_pretrained({str(out)!r})"


def load_exported(folder: Path) -> Encoder:
    """Reload a non-HF export (model.safetensors + spec in its metadata)."""
    from arch_search.study.weights import load_trial_weights

    model, _ = load_trial_weights(Path(folder) / "model.safetensors")
    return model


def export_onnx_checked(model: Encoder, path: Path, atol: float = 1e-4) -> str:
    """ONNX with dynamic batch/sequence axes; checks onnxruntime against ours on a padded
    (3, 37) batch, a shape other than the export one."""
    import torch

    from arch_search.nn.onnx_export import export_onnx, ort_max_abs_diff, ort_session

    export_onnx(model, path)
    ids = torch.randint(0, model.spec.vocab, (3, 37), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 30:] = 0
    diff = max(ort_max_abs_diff(model, ort_session(path), {"input_ids": ids, "attention_mask": mask}).values())
    if diff > atol:
        raise ExportError(f"onnxruntime output differs from ours by {diff:.2e} > {atol:g}")
    return f"ONNX (dynamic batch and sequence axes); onnxruntime vs ours max abs diff {diff:.1e} on (3, 37)"

"""What a search keeps of the models its proxies trained, for ``export``: the proxy model of each
trial on the Pareto front (``trial_<n>.safetensors``, deleted when the trial leaves the front)
and the confirmation's model of each confirmed design (``confirmed_<n>.safetensors``), in the
run directory's ``weights/``. One file holds the weights, the spec (proxy scale), the head
size, the tokenizer and the task's label names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import optuna
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from arch_search.cache import atomic_path
from arch_search.design.spec import ArchSpec
from arch_search.nn.model import Encoder, build_model
from arch_search.study.front import front as pareto_front
from arch_search.study.record import records


def weights_path(weights_dir: Path, number: int) -> Path:
    return Path(weights_dir) / f"trial_{number}.safetensors"


def confirmed_path(weights_dir: Path, number: int) -> Path:
    """Where the confirmation keeps the model it scored for trial ``number``'s design (first seed)."""
    return Path(weights_dir) / f"confirmed_{number}.safetensors"


def save_trial_weights(path: Path, model: Encoder, tokenizer: Tokenizer | None = None,
                       labels: Sequence[str] = ()) -> None:
    """The trained proxy model, its spec (proxy scale), head size, tokenizer and the task's
    label names (id order), in one file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"spec": model.spec.to_yaml(), "num_labels": str(model.num_labels or 0)}
    if tokenizer is not None:
        meta["tokenizer"] = tokenizer.to_str()
    if labels:
        meta["labels"] = json.dumps(list(labels))
    with atomic_path(path) as tmp:  # a reader never sees half a file
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp), metadata=meta)


def load_trial_weights(path: Path) -> tuple[Encoder, Tokenizer | None]:
    """The model and tokenizer ``save_trial_weights`` wrote (``trial_labels`` reads the labels)."""
    meta = _metadata(path)
    model = build_model(ArchSpec.from_yaml(meta["spec"]), task_head=int(meta["num_labels"]) or None)
    model.load_state_dict(load_file(str(path)))
    tokenizer = Tokenizer.from_str(meta["tokenizer"]) if "tokenizer" in meta else None
    return model.eval(), tokenizer


def trial_labels(path: Path) -> tuple[str, ...]:
    """The label names ``save_trial_weights`` wrote (none in files written before them)."""
    labels = _metadata(path).get("labels")
    return tuple(json.loads(labels)) if labels else ()


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}


def keep_front_weights(weights_dir: Path, trials: list[optuna.trial.FrozenTrial]) -> None:
    """Delete the weights of finished trials that are not on the Pareto front (``pareto_front``;
    a running trial's file, possibly another worker's, is kept)."""
    recs = records(trials)
    front = {r.number for r in pareto_front(recs)}
    for r in recs:
        path = weights_path(weights_dir, r.number)
        if r.state != "RUNNING" and r.number not in front and path.exists():
            path.unlink(missing_ok=True)

"""What every proxy shares: its result type and protocol.

A proxy scores a design (an ArchSpec at target scale) for accuracy, cheaply. The search sees
``ProxyResult.score``, computed on a seeded held-out slice of the *train* split, so that the
dev split stays clean for the numbers we report (``ProxyResult.dev``, GLUE's metrics on dev).
The task data and proxy-scale models are ``arch_search.proxies.setup``; training and scoring
utilities are ``arch_search.training``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from tokenizers import Tokenizer

from arch_search.model import Encoder
from arch_search.proxies.setup import TaskData
from arch_search.spec import ArchSpec
from arch_search.training import ProxyDiverged, score

# on_progress(step, score): called at intervals during training; may raise (e.g.
# optuna.TrialPruned) to stop early
OnProgress = Callable[[int, float], None]


@dataclass(frozen=True)
class ProxyResult:
    score: float  # the search signal: ``metric`` on the held-out train slice (higher is better)
    metric: str  # e.g. "accuracy", "matthews_correlation", "pearson"
    dev: dict[str, float] | None = None  # GLUE metrics on the dev split: the numbers to report
    details: dict[str, Any] = field(default_factory=dict)  # steps, seconds, history, ...
    # the trained proxy-scale model and its tokenizer, when the proxy trains one (for export)
    model: Encoder | None = field(default=None, repr=False, compare=False)
    tokenizer: Tokenizer | None = field(default=None, repr=False, compare=False)
    labels: tuple[str, ...] = ()  # the task's label names, in id order (an export's id2label)


class Proxy(Protocol):
    def evaluate(self, spec: ArchSpec, report: OnProgress | None = None) -> ProxyResult: ...


def result_of(model: Encoder, data: TaskData, eval_dev: bool, details: dict[str, Any]) -> ProxyResult:
    """The ProxyResult of a ready model: score on the held-out slice (NaN when the setup holds
    nothing out, ``heldout=0``: fine-tuning on all of train to report dev), GLUE metrics on dev."""
    heldout = score(model, data.heldout, data.task) if len(data.heldout) else {}
    dev = score(model, data.dev, data.task) if eval_dev else None
    return ProxyResult(score=heldout.get(data.task.metric, math.nan), metric=data.task.metric, dev=dev,
                       details={**details, "heldout": heldout}, model=model, tokenizer=data.tokenizer,
                       labels=data.task.label_names)


__all__ = ["OnProgress", "Proxy", "ProxyDiverged", "ProxyResult", "result_of"]

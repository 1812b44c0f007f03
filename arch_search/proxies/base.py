"""What every proxy shares: its result type and protocol.

A proxy scores a design (an ArchSpec at target scale) for accuracy, cheaply. The search sees
``ProxyResult.score``, computed on a seeded held-out slice of the *train* split, so that the
dev split stays clean for the numbers we report (``ProxyResult.dev``, GLUE's metrics on dev).
The task data and proxy-scale models are ``arch_search.proxies.setup``; training and scoring
utilities are ``arch_search.tasks.training``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from tokenizers import Tokenizer

from arch_search.nn.model import Encoder
from arch_search.proxies.setup import ProxySetup, TaskData
from arch_search.design.spec import ArchSpec
from arch_search.tasks.training import ProxyDiverged, score

if TYPE_CHECKING:
    from arch_search.design.space import SearchSpace

# on_progress(step, score): called at intervals during training; may raise (e.g.
# optuna.TrialPruned) to stop early
OnProgress = Callable[[int, float], None]


@dataclass(frozen=True)
class ProxyResult:
    score: float  # the search signal: ``metric`` on the held-out train slice (higher is better)
    metric: str  # e.g. "accuracy", "matthews_correlation", "pearson"
    dev: dict[str, float] | None = None  # GLUE metrics on the dev split: the numbers to report
    # steps, seconds, history, ...; "heldout": the task's metrics on the held-out rows (that key: the
    # trials' stored proxy_details hold it)
    details: dict[str, Any] = field(default_factory=dict)
    # the trained proxy-scale model and its tokenizer, when the proxy trains one (for export)
    model: Encoder | None = field(default=None, repr=False, compare=False)
    tokenizer: Tokenizer | None = field(default=None, repr=False, compare=False)
    labels: tuple[str, ...] = ()  # the task's label names, in id order (an export's id2label)

    def text(self, task: str) -> str:
        """The score (on the held-out slice of train: what a search sees) and dev metrics, for the console."""
        d = self.details
        how = f" ({d['init']} init, {d['steps']} steps)" if "steps" in d else ""
        lines = [f"accuracy proxy: {d['proxy']} on {task}{how}",
                 f"  score (search signal, held-out slice of train): {self.metric} {self.score:.4f}"]
        if self.dev:
            lines.append("  dev (reported numbers): " + ", ".join(f"{k} {v:.4f}" for k, v in self.dev.items()))
        if "scores" in d:
            lines.append("  all scores: " + ", ".join(f"{k} {v:.4g}" for k, v in d["scores"].items()))
        return "\n".join(lines)


class Proxy(Protocol):
    """What the search and the CLI use of a proxy. ``setup``: the task data and proxy-scale
    models (``setup.prepare`` loads them before a study starts, so that a bad checkpoint stops
    the run in one line). ``seed``: its own seed (init, batch order, dropout), None when it takes
    none (zero-cost scores have no seed noise to measure). ``for_space``: itself, or a copy set
    up over exactly a space's choices (the supernet covers what it was trained over). ``SCORED``
    (a class attribute): the constructor's settings that change a score, what the study
    fingerprint holds (``arch_search.study.fingerprint``); the others change only how it runs."""

    SCORED: ClassVar[tuple[str, ...]]
    setup: ProxySetup
    seed: int | None

    def evaluate(self, spec: ArchSpec, report: OnProgress | None = None) -> ProxyResult: ...

    def for_space(self, space: SearchSpace) -> Proxy: ...


def result_of(model: Encoder, data: TaskData, eval_dev: bool, details: dict[str, Any]) -> ProxyResult:
    """The ProxyResult of a ready model: score on the held-out slice (NaN when the setup holds
    nothing out, ``heldout=0``: fine-tuning on all of train to report dev), GLUE metrics on dev."""
    heldout_metrics = score(model, data.heldout, data.task) if len(data.heldout) else {}
    dev = score(model, data.dev, data.task) if eval_dev else None
    return ProxyResult(score=heldout_metrics.get(data.task.metric, math.nan), metric=data.task.metric, dev=dev,
                       details={**details, "heldout": heldout_metrics}, model=model, tokenizer=data.tokenizer,
                       labels=data.task.label_names)


__all__ = ["OnProgress", "Proxy", "ProxyDiverged", "ProxyResult", "result_of"]

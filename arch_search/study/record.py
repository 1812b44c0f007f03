"""What a search's trials hold: the typed trial record (``TrialRecord``, to and from Optuna's
user attrs, written with ``set_attrs`` only), a design's confirmation (``Confirmed``), and what
is read straight off the records: the dense reference and the search proxy's seed noise.

No torch and no model code: ``report``, ``export``, ``tracking`` and the experiments read trials
through this module without importing the search.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
from optuna.trial import FrozenTrial

from arch_search.design.spec import Reference
from arch_search.stats import Noise, pooled_noise


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a search as the search wrote it: Optuna's trial number, state and values
    (score up, latency down), and the user attrs, one field each (``ATTRS``: the names
    ``set_attrs`` accepts). Fields the trial does not have are None."""

    number: int
    state: str  # Optuna's TrialState name: COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    score: float | None = None  # objective 0: the proxy's score on the held-out slice (a task metric or a
    # log-likelihood: ``proxy_metric`` says which; studies before the rename called it proxy_accuracy)
    latency_ms: float | None = None  # objective 1: median ms at target scale (drift-corrected if measured)
    # the design
    reference: str | None = None  # a Reference's value for the enqueued references
    spec: str | None = None  # ArchSpec YAML, target scale
    spec_hash: str | None = None
    summary: str = ""
    duplicate_of: int | None = None  # the trial that evaluated (or is evaluating) this design
    pruned_because: str | None = None
    # costs at target scale
    params: int | None = None
    macs: int | None = None
    flops: int | None = None
    # latency
    latency_source: str | None = None  # "measured" | "lut"
    latency_raw_ms: float | None = None  # the design's median as measured (before drift correction)
    reference_ms: float | None = None  # the dense reference's median in the same measurement
    reference_cv: float | None = None  # ... its samples' std / mean
    reference_samples: int | None = None  # ... how many (ceil(rounds / reference_every))
    latency_drift: float | None = None  # reference_ms / the study's anchor
    latency_cv: float | None = None
    latency_p90_ms: float | None = None
    constraints: tuple[float, ...] = ()  # Optuna's convention: <= 0 is feasible
    # the proxy
    proxy_metric: str | None = None  # the task metric the score is, or "log_likelihood"
    proxy_dev: dict | None = None  # the task's dev metrics (reported, not searched on)
    proxy_details: dict | None = None
    proxy_score: float | None = None  # a reference's score with the run's seed ...
    proxy_score_again: float | None = None  # ... and with the next seed (the run's noise)
    # which process ran it
    worker: str | None = None  # host:pid
    worker_started: str | None = None  # the process's start time (pids are reused)

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord:
        a = trial.user_attrs
        values = trial.values or (None, None)
        attrs = {k: v for k, v in a.items() if k in ATTRS}
        if "constraints" in attrs:
            attrs["constraints"] = tuple(attrs["constraints"])
        return cls(number=trial.number, state=trial.state.name, score=values[0], latency_ms=values[1], **attrs)

    @property
    def finished(self) -> bool:
        """COMPLETE, with both objectives."""
        return self.state == "COMPLETE" and self.score is not None and self.latency_ms is not None

    @property
    def evaluated(self) -> bool:
        """This trial evaluated its design (it did not copy or skip another trial's)."""
        return self.duplicate_of is None

    @property
    def feasible(self) -> bool:
        return all(c <= 0 for c in self.constraints)


ATTRS = frozenset(f.name for f in fields(TrialRecord)) - {"number", "state", "score", "latency_ms"}


def set_attrs(trial, **values) -> None:
    """Write ``values`` as user attrs of an Optuna trial; only ``TrialRecord``'s names are
    accepted, so what the search writes is what every reader reads."""
    unknown = sorted(set(values) - ATTRS)
    if unknown:
        raise KeyError(f"not TrialRecord fields: {', '.join(unknown)}")
    for key, value in values.items():
        trial.set_user_attr(key, value)


def records(trials: Iterable[FrozenTrial]) -> list[TrialRecord]:
    return [TrialRecord.of(t) for t in trials]


def dense_reference(recs: Sequence[TrialRecord]) -> TrialRecord | None:
    """The finished trial of the dense reference design (BERT-base pattern), if any."""
    return next((r for r in recs if r.reference == Reference.DENSE and r.finished), None)


def proxy_noise(recs: Sequence[TrialRecord]) -> Noise | None:
    """The search proxy's noise: the references scored with the run's seed and the next."""
    return pooled_noise([(r.proxy_score, r.proxy_score_again) for r in recs
                         if r.proxy_score_again is not None and r.proxy_score is not None and r.evaluated],
                        "the references scored with a second proxy seed")


@dataclass(frozen=True)
class Confirmed:
    """One design's confirmation (``arch_search.study.confirm``): the search trial that
    evaluated it, and the confirmation proxy's score (and dev metrics) by seed."""

    trial: int
    metric: str
    scores: Mapping[int, float]  # seed -> score on the held-out rows
    dev: Mapping[int, Mapping[str, float]]  # seed -> the task's dev metrics

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.scores.values())))

    def dev_mean(self, metric: str) -> float | None:
        values = [d[metric] for d in self.dev.values() if metric in d]
        return float(np.mean(values)) if values else None

"""Experiment tracking: the only module that imports wandb.

``WandbTracker`` is an Optuna callback: every finished trial becomes a W&B run (group = the
study name, config = the design's ArchSpec and the run config, summary = objectives and
costs), and ``finish`` logs a final run holding the Pareto table. Mode ``offline`` by
default: runs are written under ``dir`` and synced later with ``wandb sync``;
``mode="online"`` syncs as it goes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import optuna
import yaml

from arch_search.study.record import TrialRecord


@runtime_checkable
class Tracker(Protocol):
    """What the search calls: an Optuna callback after each finished trial, and ``finish``
    with the final front's rows once the run is written."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None: ...

    def finish(self, study: optuna.Study, pareto_rows: list[dict]) -> None: ...


class NoTracker:
    """``logger=none``: tracks nothing."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        pass

    def finish(self, study: optuna.Study, pareto_rows: list[dict]) -> None:
        pass


class WandbTracker:
    def __init__(self, project: str = "arch_search", mode: str = "offline", dir: str = ".", config: dict | None = None):
        if mode not in ("offline", "online", "disabled"):
            raise ValueError(f"W&B mode must be offline, online or disabled, got {mode!r}")
        self.project, self.mode, self.dir, self.config = project, mode, str(Path(dir)), dict(config or {})
        Path(self.dir).mkdir(parents=True, exist_ok=True)

    def _init(self, group: str, name: str, config: dict[str, Any]):
        import wandb

        return wandb.init(
            project=self.project, group=group, name=name, config=config, mode=self.mode, dir=self.dir,
            reinit="finish_previous", settings=wandb.Settings(silent=True, console="off"),
        )

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback: one W&B run per finished trial."""
        r = TrialRecord.of(trial)
        spec = yaml.safe_load(r.spec) if r.spec else {}
        run = self._init(study.study_name, f"trial-{trial.number}", {"spec": spec, "params": trial.params, **self.config})
        summary = {"state": r.state, "trial": r.number, "reference": r.reference or ""}
        if trial.values is not None:
            summary.update(score=r.score, latency_ms=r.latency_ms)
        for key in ("params", "macs", "flops", "latency_cv", "latency_p90_ms", "spec_hash", "summary", "duplicate_of"):
            if getattr(r, key) not in (None, ""):
                summary[key] = getattr(r, key)
        run.summary.update(summary)
        run.finish()

    def finish(self, study: optuna.Study, pareto_rows: list[dict]) -> None:
        """A final run holding the Pareto table."""
        import wandb

        run = self._init(study.study_name, "pareto", {"n_trials": len(study.trials), **self.config})
        if pareto_rows:
            columns = list(pareto_rows[0])
            data = [[r[c] for c in columns] for r in pareto_rows]  # "" where a row has no value (e.g. not confirmed)
            run.log({"pareto": wandb.Table(columns=columns, data=data, allow_mixed_types=True)})
        run.summary.update({"pareto_size": len(pareto_rows)})
        run.finish()

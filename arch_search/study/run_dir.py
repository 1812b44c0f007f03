"""The files of a run directory: ``python -m arch_search run`` writes them, ``report``,
``export`` and ``dashboard`` read them. Their names are written here and nowhere else (the
SQLite storage's URL in ``conf/storage/sqlite.yaml`` names ``study.db`` too: a test holds the
two together)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunDir:
    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    @property
    def study_db(self) -> Path:  # the Optuna study (SQLite), with the confirmation's companion study
        return self.path / "study.db"

    @property
    def study_json(self) -> Path:  # the study's name, front, noise and confirmed designs
        return self.path / "study.json"

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    @property
    def pareto_csv(self) -> Path:  # the front, re-measured, with the confirmed scores
        return self.path / "pareto.csv"

    @property
    def confirmed_csv(self) -> Path:
        return self.path / "confirmed.csv"

    @property
    def weights(self) -> Path:  # trained models kept for export (arch_search.study.weights)
        return self.path / "weights"

    @property
    def errors_log(self) -> Path:  # a failed trial's traceback (the console shows one line)
        return self.path / "errors.log"

"""Recovery of dead workers' trials, for the search's study and its confirmation's: every
trial records which process runs it (``worker_attrs``: host:pid and the process's start
time); a worker that starts or resumes a study fails the RUNNING trials whose process on this
host is gone (``fail_dead_trials``, at once: no heartbeat grace to wait) and those whose
heartbeat is stale (any host), and queues each design again (``Requeue``).

Optuna's public API serves all but one step: failing another worker's trial is ``Study.tell``
with its number, stale heartbeats are ``optuna.storages.fail_stale_trials``; the retry
callback that ``storage_for`` gave the storage is read from the study's private ``_storage``
(Optuna has no accessor for it).
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState


class Requeue:
    """Queue a failed trial's design again (same parameters), at most ``max_retry`` times per
    design. Unlike Optuna's ``RetryHeartbeatStaleTrialCallback`` it carries over only the
    ``reference`` and ``confirm`` user attrs (which reference, which confirmation: what the
    trial is for): the dead trial's partial records (latency, worker, ...) are not the retry's. The retry names the trial it replaces in ``system_attrs["failed_trial"]``."""

    def __init__(self, max_retry: int = 3):
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if len(history) > self.max_retry:
            return
        keep = {k: v for k, v in trial.user_attrs.items() if k in ("reference", "confirm")}
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.WAITING, params=trial.params, distributions=trial.distributions, user_attrs=keep,
            system_attrs={"failed_trial": trial.number, "retry_history": history},
        ))


def worker_attrs() -> dict[str, str | None]:
    """The user attrs that name this process (``fail_dead_trials`` reads them): host:pid and the
    process's start time."""
    return {"worker": f"{socket.gethostname()}:{os.getpid()}", "worker_started": process_start(os.getpid())}


def process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux: /proc/<pid>/stat field 22), None if it is gone
    or unknown; with the pid it names a process uniquely (pids are reused)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    if Path("/proc/self/stat").is_file():
        return started is not None and process_start(pid) == started
    try:  # no /proc: existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def fail_dead_trials(study: optuna.Study) -> list[int]:
    """Fail the RUNNING trials whose worker process on this host is gone (``worker_attrs``), or
    whose heartbeat is stale (any host), and queue each again (the storage's ``Requeue``).
    Returns the failed trials' numbers, sorted."""
    host, failed = socket.gethostname(), []
    storage = study._storage  # no public accessor: the retry callback storage_for gave it
    requeue = getattr(storage, "get_heartbeat_stale_trial_callback", lambda: None)() or Requeue()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker_host, _, pid = t.user_attrs.get("worker", "").rpartition(":")
        if worker_host != host or not pid.isdigit() or _alive(int(pid), t.user_attrs.get("worker_started")):
            continue
        try:
            study.tell(t.number, state=TrialState.FAIL)  # public API (a trial number: any worker's trial)
        except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker failed (or finished) it first
        failed.append(t.number)
        requeue(study, t)  # what Requeue reads (params, attrs, retry history) is as it was before the tell
    stale_before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    with warnings.catch_warnings():  # heartbeat-stale ones (re-queued by the storage's Requeue)
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    failed += [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if t.number not in stale_before]
    return sorted(failed)

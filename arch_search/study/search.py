"""The multi-objective search: Optuna study over a SearchSpace, accuracy up, latency down.

Each trial samples a design from the space, scores it with an accuracy proxy (at proxy
scale) and measures its latency (at target scale), and records costs and details as user
attributes. The reference designs (dense BERT, SqueezeBERT) are enqueued first.

Integrity, for resumed runs and many workers on one storage (a SQLite file by default;
PostgreSQL for many machines):
- No design is evaluated twice: a design already scored (same ``spec.hash``) is copied, one
  in flight in another trial is skipped (``duplicate_of`` either way), and ``n_trials`` counts
  distinct evaluations only. The sampler is seeded anew per trial from (seed, trial number),
  so a resumed run or a second worker proposes new designs, and a run is reproducible from its
  seed and history.
- At start, a worker fails the RUNNING trials of dead processes on its host (and any whose
  heartbeat is stale) and queues their designs again (``arch_search.study.recovery``); a
  reference that never finished is queued again.
- The study records a fingerprint of what makes its scores comparable (space, task, proxy and
  budget, latency protocol); a run with other settings is refused (``arch_search.study.fingerprint``).
- Latency drift (``search/latency_mode=measured``): each design is timed interleaved with the
  dense reference in one measurement; its latency objective is its median scaled by anchor /
  the reference's median now (the anchor: the reference's median in the study's first
  measurement).

How a trial draws its design (the per-trial seeds, the leveled start) is
``arch_search.study.sampling``; what a trial records is ``arch_search.study.record.TrialRecord``
(written with ``set_attrs``); the front comes from ``arch_search.study.front``, the rows, tables
and the run's files from ``arch_search.study.run_tables`` (``write_run``), what the run prints
from ``arch_search.study.console``. ``finish`` is the after-search sequence: re-measure the
front, write the run's files, close the tracker.

Optuna: Akiba et al., 2019. NSGA-II: Deb et al., 2002.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.samplers import BaseSampler
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

from arch_search.progress import progress_bar
from arch_search.study import record, run_tables
from arch_search.measure.cost import count_cost
from arch_search.study.weights import keep_front_weights, save_trial_weights, weights_path
from arch_search.measure.latency import LatencyProtocol
from arch_search.measure.latency_model import LatencyModel, MeasuredLatency
from arch_search.nn.model import build_model
from arch_search.proxies.base import Proxy, ProxyDiverged
from arch_search.study.console import SearchResult, trial_line
from arch_search.study.fingerprint import StudyMismatch, fingerprint_differences, space_fingerprint
from arch_search.stats import Noise
from arch_search.study.front import front as pareto_front
from arch_search.study.record import Confirmed, TrialRecord, set_attrs
from arch_search.study.run_dir import RunDir
from arch_search.study.recovery import fail_dead_trials, worker_attrs
from arch_search.study.sampling import LeveledStart, SamplerFactory, TrialSeededSampler
from arch_search.design.space import SearchSpace
from arch_search.design.spec import ArchSpec

if TYPE_CHECKING:
    from arch_search.study.confirm import Confirmation
    from arch_search.study.tracking import Tracker

# the study's two objectives, as Optuna names its values (study.json's metric_names) and their
# directions; studies made before the rename name the first proxy_accuracy
OBJECTIVES = ("score", "latency_ms")
DIRECTIONS = ("maximize", "minimize")
MAX_DUPLICATES_IN_A_ROW = 50  # a worker whose sampler proposes only known designs this often stops


@dataclass(frozen=True)
class Constraints:
    """Optional limits; a design over them is infeasible for NSGA-II (Optuna's constraints)."""

    max_latency_ms: float | None = None
    max_params: int | None = None

    def values(self, latency_ms: float, params: int) -> list[float]:
        """Optuna's convention: <= 0 is feasible."""
        return [
            latency_ms - self.max_latency_ms if self.max_latency_ms is not None else -1.0,
            params - self.max_params if self.max_params is not None else -1.0,
        ]


class Search:
    """One study. ``run(n_trials)`` may be called by many workers on the same storage."""

    def __init__(
        self,
        space: SearchSpace,
        proxy: Proxy,
        protocol: LatencyProtocol,
        study_name: str,
        storage: RDBStorage | str,
        sampler: SamplerFactory | BaseSampler,
        constraints: Constraints = Constraints(),
        tracker: Tracker | None = None,
        weights_dir: Path | None = None,
        seed: int = 0,
        fingerprint: Mapping[str, Any] | None = None,
        repeat_designs: bool = False,
        noise_proxy: Proxy | None = None,
        latency: LatencyModel | None = None,
        leveled_start: int = 0,
        start_bins: int = 0,
    ):
        """``protocol`` is the latency protocol (conf/latency): its (batch, seq_len) is the
        target scale of the costs too; ``latency`` prices each design
        during the search (``search/latency_mode``: default ``MeasuredLatency(protocol)``, or
        ``LUTLatency``; prepared here, once the study is known to accept this run); the front is
        re-measured with ``protocol`` at the end either way (``remeasure``).
        ``tracker``: an Optuna callback with ``finish(study, pareto_rows)`` (conf/logger).
        ``weights_dir``: where the trained
        proxy models of Pareto-front trials are kept, for ``export`` (None: not kept).
        ``sampler``: a factory seed -> sampler, seeded per trial (``TrialSeededSampler``), or
        a sampler used as it is. ``fingerprint``: the settings that make scores comparable
        (the space's is added); a study created with others raises ``StudyMismatch``.
        ``leveled_start``: the study's first trials (the references among them) draw their
        design by complexity level (``LeveledStart``); 0: the sampler's own start. ``start_bins``:
        those draws spread over that many MAC-speedup bins (0: by level only).
        ``repeat_designs``: evaluate a design again each time it is sampled (to see noise).
        ``noise_proxy``: the same proxy with another seed; it scores the reference designs a
        second time, which gives the run its own seed noise (``proxy_noise``)."""
        latency = MeasuredLatency(protocol) if latency is None else latency
        self.space, self.proxy, self.latency, self.protocol, self.tracker = space, proxy, latency, protocol, tracker
        self.weights_dir, self.repeat_designs, self.noise_proxy = weights_dir, repeat_designs, noise_proxy
        self.constraints, self.seed = constraints, seed
        given = dict(fingerprint or {})
        self.fingerprint = {"space": space_fingerprint(space), **given,
                            "latency": {**given.get("latency", {}), "mode": latency.source}}
        self._duplicates_in_a_row = 0
        if not isinstance(sampler, BaseSampler):
            sampler = TrialSeededSampler(sampler, seed)
        if leveled_start:
            sampler = LeveledStart(sampler, space, leveled_start, seed, bins=start_bins)
        try:  # the database's unique study name makes exactly one worker the creator
            self.study = optuna.create_study(
                study_name=study_name, storage=storage, sampler=sampler, directions=list(DIRECTIONS)
            )
            self.study.set_user_attr("fingerprint", json.loads(json.dumps(self.fingerprint)))
            for name, spec in space.references().items():  # the references go first, once
                if space.contains(spec):
                    self.study.enqueue_trial(space.params_of(spec), user_attrs={"reference": name})
        except optuna.exceptions.DuplicatedStudyError:
            self.study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
            self._check_fingerprint()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names(list(OBJECTIVES))
        self.latency.prepare(space, seed)

    def _check_fingerprint(self) -> None:
        """Refuse to continue a study made with other settings; adopt the fingerprint of a
        study made before fingerprints (or whose creator is still writing it)."""
        if len(self.study.directions) != len(DIRECTIONS):
            raise StudyMismatch(f"study {self.study.study_name!r} has {len(self.study.directions)} objective(s), "
                                "not a search's two")
        for _ in range(20):  # the creator writes it right after creating the study
            stored = self.study.user_attrs.get("fingerprint")
            if stored is not None or self.study.get_trials(deepcopy=False):
                break
            time.sleep(0.1)
        current = json.loads(json.dumps(self.fingerprint))
        if stored is None:
            self.study.set_user_attr("fingerprint", current)
            return
        diff = fingerprint_differences(stored, current)
        if diff:
            raise StudyMismatch(
                f"study {self.study.study_name!r} was run with other settings, so its scores are not comparable "
                f"({'; '.join(diff)}): rerun with the study's settings, or start another study "
                "(search.study_name=... or another hydra.run.dir)")

    # ---- one trial ----------------------------------------------------------------------------

    def objective(self, trial: optuna.Trial) -> tuple[float, float]:
        set_attrs(trial, **worker_attrs())
        spec = self.space.sample(trial)
        set_attrs(trial, spec_hash=spec.hash, spec=spec.to_yaml(), summary=spec.summary())
        if not self.repeat_designs:
            done, running = self._same_design(spec.hash, trial.number)
            if done is not None and done.state == TrialState.PRUNED:  # diverged before: not again
                self._duplicates_in_a_row += 1
                set_attrs(trial, duplicate_of=done.number, pruned_because=f"the same design was pruned in trial {done.number}")
                raise optuna.TrialPruned(f"design pruned in trial {done.number}")
            if done is not None:  # already scored: reuse (the sampler learns from the copy)
                self._duplicates_in_a_row += 1
                set_attrs(trial, **{k: v for k, v in done.user_attrs.items()
                                    if k in record.ATTRS and k not in ("reference", "worker", "worker_started")})
                set_attrs(trial, duplicate_of=done.number)
                self._constrain(trial, done.user_attrs.get("constraints", [-1.0, -1.0]))
                return tuple(done.values)
            if running is not None:  # in flight in an earlier trial (another worker): not again
                self._duplicates_in_a_row += 1
                set_attrs(trial, duplicate_of=running.number,
                          pruned_because=f"the same design is being evaluated in trial {running.number}")
                raise optuna.TrialPruned(f"design in flight in trial {running.number}")
        self._duplicates_in_a_row = 0

        cost = count_cost(spec, seq_len=self.protocol.seq_len, batch=self.protocol.batch)
        set_attrs(trial, params=cost.params, macs=cost.macs, flops=cost.flops)
        latency_ms = self._latency(trial, spec)
        self._constrain(trial, self.constraints.values(latency_ms, cost.params))
        try:
            result = self.proxy.evaluate(spec)
        except ProxyDiverged as e:
            set_attrs(trial, pruned_because=str(e))
            raise optuna.TrialPruned(str(e)) from None
        if self.weights_dir is not None and result.model is not None:
            save_trial_weights(weights_path(self.weights_dir, trial.number), result.model, result.tokenizer, result.labels)
        set_attrs(trial, proxy_metric=result.metric, proxy_dev=result.dev,
                  proxy_details={k: v for k, v in result.details.items() if k != "proxy_spec"})
        if self.noise_proxy is not None and trial.user_attrs.get("reference"):
            set_attrs(trial, proxy_score_again=self.noise_proxy.evaluate(spec).score,  # another proxy seed
                      proxy_score=result.score)
        return result.score, latency_ms

    def _latency(self, trial: optuna.Trial, spec: ArchSpec) -> float:
        """The latency objective (ms). Measured: the design's median, timed interleaved with the
        dense reference, times anchor / the reference's median now (drift-corrected; the
        anchor is the reference's median in the study's first measurement). LUT: predicted."""
        timing = self.latency.time(spec)
        design = timing.design
        if timing.reference is None:  # predicted: no drift to correct
            set_attrs(trial, latency_source=self.latency.source, latency_cv=design.cv, latency_p90_ms=design.p90_ms)
            return design.median_ms
        reference = timing.reference.median_ms
        anchor = self.study.user_attrs.get("latency_anchor_ms")
        if anchor is None:  # the study's first measurement sets the scale
            anchor = reference
            self.study.set_user_attr("latency_anchor_ms", anchor)
        set_attrs(trial, latency_source=self.latency.source, latency_raw_ms=design.median_ms, reference_ms=reference,
                  reference_cv=timing.reference.cv, reference_samples=len(timing.reference.samples_ms),
                  latency_drift=reference / anchor, latency_cv=design.cv, latency_p90_ms=design.p90_ms * anchor / reference)
        return design.median_ms * anchor / reference

    @staticmethod
    def _constrain(trial: optuna.Trial, values: list[float]) -> None:
        """Optuna's constraints (<= 0 feasible; the samplers read them), kept in user attrs too."""
        set_attrs(trial, constraints=values)
        for key, value in zip(("latency_ms", "params"), values):
            trial.set_constraint(key, value)

    def _same_design(self, spec_hash: str, number: int) -> tuple[FrozenTrial | None, FrozenTrial | None]:
        """(a finished trial that evaluated this design: scored, or pruned as diverged; an
        earlier trial evaluating it now). Of two trials that sample one design at once, the
        earlier evaluates it: each sets its hash before it looks, so the later one always sees
        the earlier."""
        done = running = None
        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        for t in self.study.get_trials(deepcopy=False, states=states):
            if t.number == number or t.user_attrs.get("spec_hash") != spec_hash or "duplicate_of" in t.user_attrs:
                continue
            if t.state != TrialState.RUNNING and (done is None or done.state == TrialState.PRUNED):
                done = t
            elif t.state == TrialState.RUNNING and t.number < number:
                running = t
        return done, running

    # ---- the loop -------------------------------------------------------------------------------

    def evaluations(self) -> int:
        """Distinct evaluations in the study (scored or diverged), what ``n_trials`` counts:
        copies of known designs and skipped in-flight duplicates are not counted."""
        return sum("duplicate_of" not in t.user_attrs
                   for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))

    def recover(self) -> list[int]:
        """Before a run: fail the RUNNING trials whose worker process on this host is gone (or
        whose heartbeat is stale, any host) and queue their designs again; queue again each
        reference that has no finished, running or queued trial. Returns the failed trials."""
        failed = fail_dead_trials(self.study)
        alive = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.PRUNED)
        have = {t.user_attrs.get("reference") for t in self.study.get_trials(deepcopy=False, states=alive)}
        for name, spec in self.space.references().items():
            if name not in have and self.space.contains(spec):
                self.study.enqueue_trial(self.space.params_of(spec), user_attrs={"reference": name})
        return sorted(failed)

    def run(self, n_trials: int, progress: bool = True) -> optuna.Study:
        """Run until the study holds ``n_trials`` distinct evaluations (counting earlier runs
        and other workers; with N workers up to N-1 more), after ``recover``. A worker also
        stops when the space is exhausted or its sampler proposes only known designs
        (``MAX_DUPLICATES_IN_A_ROW``). Each finished trial prints one line (``trial_line``);
        ``progress``: a bar of evaluations too, in a terminal (``progress_bar``)."""
        self.recover()
        target = min(n_trials, self.space.size)
        if self.evaluations() >= target:
            return self.study
        bar = progress_bar(total=n_trials, initial=self.evaluations(), enabled=progress, desc="evaluations")

        def stop_when_done(study: optuna.Study, trial: FrozenTrial) -> None:
            done = self.evaluations()
            bar.update(done - bar.n)
            bar.write(trial_line(trial, done, target))
            if done >= target:
                study.stop()
            elif self._duplicates_in_a_row >= MAX_DUPLICATES_IN_A_ROW:
                print(f"note: the sampler proposed {MAX_DUPLICATES_IN_A_ROW} known designs in a row; "
                      f"stopping at {done} distinct evaluations")
                study.stop()

        callbacks = [stop_when_done] + ([self.tracker] if self.tracker is not None else [])
        if self.weights_dir is not None:
            callbacks.append(lambda study, _: keep_front_weights(self.weights_dir, study.get_trials(deepcopy=False)))
        try:
            self.study.optimize(self.objective, callbacks=callbacks)
        finally:
            bar.close()
        return self.study

    # ---- results --------------------------------------------------------------------------------

    def records(self) -> list[TrialRecord]:
        return record.records(self.study.get_trials(deepcopy=False))

    def pareto(self) -> list[TrialRecord]:
        """The Pareto-optimal designs, fastest first (``pareto_front``)."""
        return pareto_front(self.records())

    def dense_reference(self) -> TrialRecord | None:
        return record.dense_reference(self.records())

    def proxy_noise(self) -> Noise | None:
        return record.proxy_noise(self.records())

    def remeasure(self, recs: list[TrialRecord]) -> dict[int, float]:
        """Median latency (ms) of each trial's design measured again, all interleaved with the
        dense reference in one run (whatever the latency mode during the search)."""
        models = {r.number: build_model(ArchSpec.from_yaml(r.spec)) for r in recs if r.spec}
        dense = self.dense_reference()
        if dense is not None and dense.number not in models:
            models[dense.number] = build_model(ArchSpec.from_yaml(dense.spec))
        comparison = self.protocol.compare(models)
        return {number: lat.median_ms for number, lat in comparison.latencies.items()}

    def rows(self, recs: list[TrialRecord], remeasured: dict[int, float] | None = None) -> list[dict]:
        """``run_tables.trial_rows`` of ``recs`` (the front, fastest first), with the run's noise."""
        return run_tables.trial_rows(recs, self.dense_reference(), remeasured, self.proxy_noise())

    def write(self, run_dir: Path, remeasured: dict[int, float] | None = None,
              confirmation: Confirmation | None = None, recs: list[TrialRecord] | None = None,
              confirmed: list[Confirmed] | None = None) -> SearchResult:
        """trials.csv, pareto.csv (with re-measured latency, if given), confirmed.csv (with a
        ``confirmation``) and study.json, from one read of the study (``recs``) and of the
        confirmations (``confirmed``), read here when not given; returns what a finished run
        shows. The run's noise is the confirmation's (paired seeds on every confirmed design)
        when there is one, else the search proxy's (the references scored twice)."""
        recs = self.records() if recs is None else recs
        confirm_noise, dev_metric, teacher = None, None, None
        if confirmation is not None:
            confirmed = confirmation.results() if confirmed is None else confirmed
            confirm_noise, dev_metric = confirmation.noise(confirmed), confirmation.dev_metric
            teacher = confirmation.teacher()  # the dense model before healing, beside the healed dense reference
        header = {"study_name": self.study.study_name, "space": self.space.name, "directions": list(DIRECTIONS),
                  "metric_names": list(OBJECTIVES), "n_trials": len(recs),
                  "evaluations": self.evaluations(),  # distinct designs evaluated (what search.n_trials counts)
                  **({"teacher": teacher} if teacher else {})}
        front, noise, confirmed_rows = run_tables.write_run(RunDir(run_dir), recs, header, remeasured,
                                                            confirmed if confirmation else None, confirm_noise, dev_metric)
        return SearchResult(front, noise, confirmed_rows, confirm_noise, teacher)

    def finish(self, run_dir: Path, confirmation: Confirmation | None = None) -> SearchResult:
        """After the trials (and the ``confirmation``, if any): re-measure the front and the
        confirmed designs interleaved with the dense reference (whatever the latency mode),
        write the run's files, hand the front to the tracker."""
        recs = self.records()
        by_number = {r.number: r for r in recs}
        confirmed = confirmation.results() if confirmation else []
        measured = {r.number: r for r in [*pareto_front(recs), *(by_number[c.trial] for c in confirmed if c.trial in by_number)]}
        result = self.write(run_dir, self.remeasure(list(measured.values())), confirmation, recs,
                            confirmed if confirmation else None)
        if self.tracker is not None:
            self.tracker.finish(self.study, result.front)
        return result

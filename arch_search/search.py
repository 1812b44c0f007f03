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
  heartbeat is stale) and queues their designs again; a reference that never finished is
  queued again.
- The study records a fingerprint of what makes its scores comparable (space, task, proxy and
  budget, latency protocol); a run with other settings is refused (``StudyMismatch``).
- Latency drift: each design is timed interleaved with the dense reference in one
  measurement; its latency objective is its median scaled by anchor / the reference's median
  now (the anchor: the reference's median in the study's first measurement).

Optuna: Akiba et al., 2019. NSGA-II: Deb et al., 2002.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState
from tqdm import tqdm

from arch_search.cost import count_cost
from arch_search.export import keep_front_weights, save_trial_weights, weights_path
from arch_search.latency import Comparison, Latency
from arch_search.model import build_model
from arch_search.proxies.base import Proxy, ProxyDiverged
from arch_search.runs import Requeue
from arch_search.space import SearchSpace
from arch_search.spec import ArchSpec

DIRECTIONS = ("maximize", "minimize")  # proxy accuracy, latency ms
Measure = Callable[..., Comparison]  # compare_latency with the protocol bound (conf/latency)
SamplerFactory = Callable[[int], BaseSampler]  # seed -> sampler (conf/search/sampler, partially instantiated)
MAX_DUPLICATES_IN_A_ROW = 50  # a worker whose sampler proposes only known designs this often stops


class StudyMismatch(ValueError):
    """A study resumed with settings that make its scores incomparable (the CLI prints ``error: ...``)."""


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


class TrialSeededSampler(BaseSampler):
    """The configured sampler, made anew for every trial with a seed derived from (seed, trial
    number). Trial numbers are unique in a study, so a resumed run or another worker does not
    replay the same proposals, while one history and seed always give the same proposal. The
    samplers used here keep their state in the storage (NSGA-II's generations) or none at all."""

    def __init__(self, make: SamplerFactory, seed: int):
        self.make, self.seed = make, seed
        self.inner = make(seed=seed)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.inner = self.make(seed=trial_seed(self.seed, trial.number))
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def trial_seed(seed: int, number: int) -> int:
    """A 32-bit seed for trial ``number`` of a run seeded ``seed``."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{number}".encode()).digest()[:4], "little")


def space_fingerprint(space: SearchSpace) -> dict[str, Any]:
    """What a space offers (not its file name): base design, choices, per-layer or not."""
    return {"base": space.base.hash, "per_layer": space.per_layer, "groups": {p: list(c) for p, c in space.groups.items()},
            "shuffle": list(space.shuffle), "dims": {d: list(c) for d, c in space.dims.items()}}


def fingerprint_differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``key: stored -> current`` for every dotted key whose value differs."""

    def flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, Mapping) else {f"{prefix}{k}": v})
        return out

    a, b = flat(stored), flat(current)
    return [f"{k}: {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}" for k in sorted(a.keys() | b.keys())
            if a.get(k, "(unset)") != b.get(k, "(unset)")]


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (Linux: /proc/<pid>/stat field 22), None if it is gone
    or unknown; with the pid it names a process uniquely (pids are reused)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    if Path("/proc/self/stat").is_file():
        return started is not None and _process_start(pid) == started
    try:  # no /proc: existence only
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class Search:
    """One study. ``run(n_trials)`` may be called by many workers on the same storage."""

    def __init__(
        self,
        space: SearchSpace,
        proxy: Proxy,
        measure: Measure,
        study_name: str,
        storage: RDBStorage | str,
        sampler: SamplerFactory | BaseSampler,
        seq_len: int = 128,
        batch: int = 1,
        constraints: Constraints = Constraints(),
        tracker: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
        predict: Callable[[ArchSpec], Latency] | None = None,
        weights_dir: Path | None = None,
        seed: int = 0,
        fingerprint: Mapping[str, Any] | None = None,
        repeat_designs: bool = False,
        noise_proxy: Proxy | None = None,
    ):
        """``measure`` times designs (the protocol of conf/latency); ``predict``, if given
        (search.latency_mode=lut), replaces measurement during the search; the Pareto front is
        re-measured at the end either way (``remeasure``). ``weights_dir``: where the trained
        proxy models of Pareto-front trials are kept, for ``export`` (None: not kept).
        ``sampler``: a factory seed -> sampler, seeded per trial (``TrialSeededSampler``), or
        a sampler used as it is. ``fingerprint``: the settings that make scores comparable
        (the space's is added); a study created with others raises ``StudyMismatch``.
        ``repeat_designs``: evaluate a design again each time it is sampled (to see noise).
        ``noise_proxy``: the same proxy with another seed; it scores the reference designs a
        second time, which gives the run its own seed noise (``proxy_noise``)."""
        self.space, self.proxy, self.measure, self.tracker = space, proxy, measure, tracker
        self.predict, self.weights_dir, self.repeat_designs = predict, weights_dir, repeat_designs
        self.noise_proxy = noise_proxy
        self.seq_len, self.batch, self.constraints = seq_len, batch, constraints
        self.fingerprint = {"space": space_fingerprint(space), **(fingerprint or {})}
        self.reference = space.references()["bert_base"]  # the dense design every latency is timed beside
        self._reference_model: Any = None
        self._duplicates_in_a_row = 0
        if not isinstance(sampler, BaseSampler):
            sampler = TrialSeededSampler(sampler, seed)
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
            self.study.set_metric_names(["proxy_accuracy", "latency_ms"])

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
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("worker_started", _process_start(os.getpid()))
        spec = self.space.sample(trial)
        trial.set_user_attr("spec_hash", spec.hash)
        trial.set_user_attr("spec", spec.to_yaml())
        trial.set_user_attr("summary", spec.summary())
        if not self.repeat_designs:
            done, running = self._same_design(spec.hash, trial.number)
            if done is not None and done.state == TrialState.PRUNED:  # diverged before: not again
                self._duplicates_in_a_row += 1
                trial.set_user_attr("duplicate_of", done.number)
                trial.set_user_attr("pruned_because", f"the same design was pruned in trial {done.number}")
                raise optuna.TrialPruned(f"design pruned in trial {done.number}")
            if done is not None:  # already scored: reuse (the sampler learns from the copy)
                self._duplicates_in_a_row += 1
                for key, value in done.user_attrs.items():
                    if key not in ("reference", "worker", "worker_started"):
                        trial.set_user_attr(key, value)
                trial.set_user_attr("duplicate_of", done.number)
                self._constrain(trial, done.user_attrs.get("constraints", [-1.0, -1.0]))
                return tuple(done.values)
            if running is not None:  # in flight in an earlier trial (another worker): not again
                self._duplicates_in_a_row += 1
                trial.set_user_attr("duplicate_of", running.number)
                trial.set_user_attr("pruned_because", f"the same design is being evaluated in trial {running.number}")
                raise optuna.TrialPruned(f"design in flight in trial {running.number}")
        self._duplicates_in_a_row = 0

        cost = count_cost(spec, seq_len=self.seq_len, batch=self.batch)
        trial.set_user_attr("params", cost.params)
        trial.set_user_attr("macs", cost.macs)
        trial.set_user_attr("flops", cost.flops)
        latency_ms = self._latency(trial, spec)
        self._constrain(trial, self.constraints.values(latency_ms, cost.params))
        try:
            result = self.proxy.evaluate(spec)
        except ProxyDiverged as e:
            trial.set_user_attr("pruned_because", str(e))
            raise optuna.TrialPruned(str(e)) from None
        if self.weights_dir is not None and result.model is not None:
            save_trial_weights(weights_path(self.weights_dir, trial.number), result.model, result.tokenizer)
        trial.set_user_attr("proxy_metric", result.metric)
        trial.set_user_attr("proxy_dev", result.dev)
        trial.set_user_attr("proxy_details", {k: v for k, v in result.details.items() if k != "proxy_spec"})
        if self.noise_proxy is not None and trial.user_attrs.get("reference"):
            trial.set_user_attr("proxy_score_again", self.noise_proxy.evaluate(spec).score)  # another proxy seed
            trial.set_user_attr("proxy_score", result.score)
        return result.score, latency_ms

    def _latency(self, trial: optuna.Trial, spec: ArchSpec) -> float:
        """The latency objective (ms). Measured: the design's median, timed interleaved with the
        dense reference, times anchor / the reference's median now (drift-corrected; the
        anchor is the reference's median in the study's first measurement). LUT: predicted."""
        if self.predict is not None:
            latency = self.predict(spec)
            trial.set_user_attr("latency_source", "lut")
            trial.set_user_attr("latency_cv", latency.cv)
            trial.set_user_attr("latency_p90_ms", latency.p90_ms)
            return latency.median_ms
        if self._reference_model is None:
            self._reference_model = build_model(self.reference)
        models = {"reference": self._reference_model}
        if spec.hash != self.reference.hash:
            models["design"] = build_model(spec)
        latencies = self.measure(models, baseline="reference").latencies
        design, reference = latencies.get("design", latencies["reference"]), latencies["reference"].median_ms
        anchor = self.study.user_attrs.get("latency_anchor_ms")
        if anchor is None:  # the study's first measurement sets the scale
            anchor = reference
            self.study.set_user_attr("latency_anchor_ms", anchor)
        trial.set_user_attr("latency_source", "measured")
        trial.set_user_attr("latency_raw_ms", design.median_ms)
        trial.set_user_attr("reference_ms", reference)
        trial.set_user_attr("latency_drift", reference / anchor)
        trial.set_user_attr("latency_cv", design.cv)
        trial.set_user_attr("latency_p90_ms", design.p90_ms * anchor / reference)
        return design.median_ms * anchor / reference

    @staticmethod
    def _constrain(trial: optuna.Trial, values: list[float]) -> None:
        """Optuna's constraints (<= 0 feasible; the samplers read them), kept in user attrs too."""
        trial.set_user_attr("constraints", values)
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
        host, failed = socket.gethostname(), []
        storage = self.study._storage
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker_host, _, pid = t.user_attrs.get("worker", "").rpartition(":")
            if worker_host != host or not pid.isdigit() or _alive(int(pid), t.user_attrs.get("worker_started")):
                continue
            try:
                if storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
                    failed.append(t.number)
                    requeue = storage.get_heartbeat_stale_trial_callback() if hasattr(
                        storage, "get_heartbeat_stale_trial_callback") else None
                    (requeue or Requeue())(self.study, storage.get_trial(t._trial_id))
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
                pass
        stale_before = {t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
        with warnings.catch_warnings():  # heartbeat-stale ones (re-queued by the storage's Requeue)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        failed += [t.number for t in self.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                   if t.number not in stale_before]
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
        (``MAX_DUPLICATES_IN_A_ROW``)."""
        self.recover()
        target = min(n_trials, self.space.size)
        if self.evaluations() >= target:
            return self.study
        bar = tqdm(total=n_trials, initial=self.evaluations(), desc="evaluations", disable=not progress)

        def stop_when_done(study: optuna.Study, trial: FrozenTrial) -> None:
            done = self.evaluations()
            bar.update(done - bar.n)
            if done >= target:
                study.stop()
            elif self._duplicates_in_a_row >= MAX_DUPLICATES_IN_A_ROW:
                print(f"note: the sampler proposed {MAX_DUPLICATES_IN_A_ROW} known designs in a row; "
                      f"stopping at {done} distinct evaluations")
                study.stop()

        callbacks = [stop_when_done] + ([self.tracker] if self.tracker is not None else [])
        if self.weights_dir is not None:
            callbacks.append(lambda study, _: keep_front_weights(self.weights_dir, study))
        try:
            self.study.optimize(self.objective, callbacks=callbacks)
        finally:
            bar.close()
        return self.study

    # ---- results --------------------------------------------------------------------------------

    def pareto(self) -> list[optuna.trial.FrozenTrial]:
        """The Pareto-optimal designs, fastest first; a design sampled again (``duplicate_of``)
        appears once, as the trial that evaluated it."""
        front = [t for t in self.study.best_trials if "duplicate_of" not in t.user_attrs]
        return sorted(front, key=lambda t: t.values[1])

    def dense_reference(self) -> optuna.trial.FrozenTrial | None:
        return dense_reference(self.study.trials)

    def proxy_noise(self) -> Noise | None:
        return proxy_noise(self.study.trials)

    def remeasure(self, trials: list[optuna.trial.FrozenTrial]) -> dict[int, float]:
        """Median latency (ms) of each trial's design measured again, all interleaved with the
        dense reference in one run (whatever the latency mode during the search)."""
        models = {t.number: build_model(ArchSpec.from_yaml(t.user_attrs["spec"])) for t in trials if "spec" in t.user_attrs}
        dense = self.dense_reference()
        if dense is not None and dense.number not in models:
            models[dense.number] = build_model(ArchSpec.from_yaml(dense.user_attrs["spec"]))
        comparison = self.measure(models)
        return {number: lat.median_ms for number, lat in comparison.latencies.items()}

    def rows(self, trials: list[optuna.trial.FrozenTrial], remeasured: dict[int, float] | None = None) -> list[dict]:
        """``trial_rows`` of ``trials`` (the front, fastest first), with the run's noise."""
        return trial_rows(trials, self.dense_reference(), remeasured, self.proxy_noise())

    def write(self, run_dir: Path, remeasured: dict[int, float] | None = None) -> None:
        """trials.csv, pareto.csv (with re-measured latency, if given) and study.json."""
        run_dir.mkdir(parents=True, exist_ok=True)
        done = [t for t in self.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        all_rows = trial_rows(done, self.dense_reference())  # (within_noise is a front's column)
        for name, rows in (("trials.csv", all_rows), ("pareto.csv", self.rows(self.pareto(), remeasured))):
            with open(run_dir / name, "w", newline="") as f:
                if rows:
                    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                    writer.writeheader()
                    writer.writerows(rows)
        summary = {
            "study_name": self.study.study_name,
            "space": self.space.name,
            "directions": list(DIRECTIONS),
            "metric_names": ["proxy_accuracy", "latency_ms"],
            "n_trials": len(self.study.trials),
            "evaluations": self.evaluations(),  # distinct designs evaluated (what search.n_trials counts)
            "states": {s.name: sum(t.state == s for t in self.study.trials) for s in optuna.trial.TrialState},
            "pareto": self.rows(self.pareto(), remeasured),
            "proxy_noise": vars(noise) if (noise := self.proxy_noise()) else None,
            "references": {t.user_attrs["reference"]: t.number for t in self.study.trials if "reference" in t.user_attrs},
        }
        (run_dir / "study.json").write_text(json.dumps(summary, indent=2))


def dense_reference(trials: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial | None:
    """The finished trial of the dense reference design (BERT-base pattern), if any."""
    return next((t for t in trials if t.user_attrs.get("reference") == "bert_base" and t.values), None)


@dataclass(frozen=True)
class Noise:
    """The proxy's seed noise in one run: the pooled standard deviation of the score over two
    seeds, sqrt(mean((a - b)^2 / 2)) over the ``designs`` scored twice (the references)."""

    sd: float
    designs: int


def proxy_noise(trials: list[optuna.trial.FrozenTrial]) -> Noise | None:
    pairs = [(t.user_attrs["proxy_score"], t.user_attrs["proxy_score_again"]) for t in trials
             if "proxy_score_again" in t.user_attrs and "duplicate_of" not in t.user_attrs]
    if not pairs:
        return None
    return Noise(sd=(sum((a - b) ** 2 / 2 for a, b in pairs) / len(pairs)) ** 0.5, designs=len(pairs))


def trial_rows(
    trials: list[optuna.trial.FrozenTrial],
    dense: optuna.trial.FrozenTrial | None,
    remeasured: dict[int, float] | None = None,
    noise: Noise | None = None,
) -> list[dict]:
    """One dict per finished trial; ``remeasured`` (trial -> ms, from ``remeasure``) adds
    the re-measured latency and speedup. With the run's ``noise``, ``within_noise`` marks a
    trial whose score is within one noise sd of the next faster trial's in ``trials`` (for
    the front, fastest first: its extra accuracy is not told apart from noise)."""
    rows = []
    for t in trials:
        if t.values is None:
            continue
        acc, ms = t.values
        dev, metric = t.user_attrs.get("proxy_dev"), t.user_attrs.get("proxy_metric")
        rows.append({
            "trial": t.number,
            "reference": t.user_attrs.get("reference", ""),
            "design": t.user_attrs.get("summary", ""),
            "proxy_accuracy": round(acc, 4),
            "latency_ms": round(ms, 2),
            "speedup_vs_dense": round(dense.values[1] / ms, 2) if dense else "",
            "accuracy_vs_dense_points": round(100 * (acc - dense.values[0]), 2) if dense else "",
            "dev_score": round(dev[metric], 4) if dev and metric in dev else "",  # reported, not searched on
            "gflops": round(t.user_attrs.get("flops", 0) / 1e9, 3),
            "params_m": round(t.user_attrs.get("params", 0) / 1e6, 2),
            "latency_cv": round(t.user_attrs.get("latency_cv", 0), 3),
            "spec_hash": t.user_attrs.get("spec_hash", ""),
        })
        if noise is not None:
            faster = [r for r in rows[:-1] if r["latency_ms"] < rows[-1]["latency_ms"]]
            rows[-1]["within_noise"] = bool(faster) and abs(acc - faster[-1]["proxy_accuracy"]) < noise.sd
        if remeasured is not None:
            ms_again = remeasured.get(t.number)
            base = remeasured.get(dense.number) if dense else None
            rows[-1]["remeasured_ms"] = round(ms_again, 2) if ms_again else ""
            rows[-1]["remeasured_speedup"] = round(base / ms_again, 2) if ms_again and base else ""
    return rows


def format_pareto(rows: list[dict]) -> str:
    """The Pareto table: one design a line, references marked; latency and speedup are the
    re-measured ones when the rows have them. ``accuracy`` is the search's score (held-out
    slice of train), ``vs dense`` its difference to the dense reference in points, ``dev``
    the same metric on the task's dev split (reported, not searched on); ``~`` marks an
    accuracy within the proxy's seed noise of the next faster design's."""
    head = (f"{'trial':>5}  {'reference':<11} {'design':<44} {'accuracy':>8} {'vs dense':>8} {'dev':>6} "
            f"{'ms':>8} {'speedup':>7} {'GFLOPs':>7} {'params':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ms = r.get("remeasured_ms") or r["latency_ms"]
        speedup = r.get("remeasured_speedup") or r["speedup_vs_dense"]
        delta, dev = r.get("accuracy_vs_dense_points", ""), r.get("dev_score", "")
        acc = ("~" if r.get("within_noise") else "") + f"{r['proxy_accuracy']:.4f}"
        lines.append(
            f"{r['trial']:>5}  {r['reference'] or '-':<11} {r['design']:<44} {acc:>8} "
            f"{delta if delta == '' else f'{delta:+.2f}':>8} {dev if dev == '' else f'{dev:.4f}':>6} "
            f"{ms:>8.1f} {speedup!s:>6}x {r['gflops']:>7.2f} {r['params_m']:>6.1f}M"
        )
    return "\n".join(lines)

"""The multi-objective search: Optuna study over a SearchSpace, accuracy up, latency down.

Each trial samples a design from the space, scores it with an accuracy proxy (at proxy
scale) and measures its latency (at target scale), and records costs and details as user
attributes. The reference designs (dense BERT, SqueezeBERT) are enqueued first. A design
already evaluated in the study (same spec hash) is not evaluated again. A proxy that
diverges prunes its trial; the study goes on. Storage is any Optuna RDB URL (a SQLite file
by default; PostgreSQL for many workers), with heartbeats so that a killed worker's
running trial is failed and retried.

Optuna: Akiba et al., 2019. NSGA-II: Deb et al., 2002.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.storages import RDBStorage

from arch_search.cost import count_cost
from arch_search.export import keep_front_weights, save_trial_weights, weights_path
from arch_search.latency import Comparison, Latency
from arch_search.model import build_model
from arch_search.proxies.base import Proxy, ProxyDiverged
from arch_search.space import SearchSpace
from arch_search.spec import ArchSpec

DIRECTIONS = ("maximize", "minimize")  # proxy accuracy, latency ms
Measure = Callable[..., Comparison]  # compare_latency with the protocol bound (conf/latency)


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
        measure: Measure,
        study_name: str,
        storage: RDBStorage | str,
        sampler: optuna.samplers.BaseSampler,
        seq_len: int = 128,
        batch: int = 1,
        constraints: Constraints = Constraints(),
        tracker: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
        predict: Callable[[ArchSpec], Latency] | None = None,
        weights_dir: Path | None = None,
    ):
        """``measure`` times designs (the protocol of conf/latency); ``predict``, if given
        (latency.mode=lut), replaces measurement during the search; the Pareto front is
        re-measured at the end either way (``remeasure``). ``weights_dir``: where the trained
        proxy models of Pareto-front trials are kept, for ``export`` (None: not kept)."""
        self.space, self.proxy, self.measure, self.tracker = space, proxy, measure, tracker
        self.predict, self.weights_dir = predict, weights_dir
        self.seq_len, self.batch, self.constraints = seq_len, batch, constraints
        try:  # the database's unique study name makes exactly one worker the creator
            self.study = optuna.create_study(
                study_name=study_name, storage=storage, sampler=sampler, directions=list(DIRECTIONS)
            )
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            self.study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
            created = False
        if created:  # the references go first, once (not again on resume or by other workers)
            for name, spec in space.references().items():
                if space.contains(spec):
                    self.study.enqueue_trial(space.params_of(spec), user_attrs={"reference": name})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names(["proxy_accuracy", "latency_ms"])

    def objective(self, trial: optuna.Trial) -> tuple[float, float]:
        spec = self.space.sample(trial)
        trial.set_user_attr("spec_hash", spec.hash)
        trial.set_user_attr("spec", spec.to_yaml())
        trial.set_user_attr("summary", spec.summary())
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        done = self._evaluated(spec.hash, trial.number)
        if done is not None:  # same design already scored: reuse, do not evaluate twice
            for key, value in done.user_attrs.items():
                if key not in ("reference",):
                    trial.set_user_attr(key, value)
            trial.set_user_attr("duplicate_of", done.number)
            self._constrain(trial, done.user_attrs.get("constraints", [-1.0, -1.0]))
            return tuple(done.values)

        cost = count_cost(spec, seq_len=self.seq_len, batch=self.batch)
        trial.set_user_attr("params", cost.params)
        trial.set_user_attr("macs", cost.macs)
        trial.set_user_attr("flops", cost.flops)
        if self.predict is not None:
            latency = self.predict(spec)
            trial.set_user_attr("latency_source", "lut")
        else:
            latency = self.measure({"design": build_model(spec)}).latencies["design"]
            trial.set_user_attr("latency_source", "measured")
        trial.set_user_attr("latency_cv", latency.cv)
        trial.set_user_attr("latency_p90_ms", latency.p90_ms)
        self._constrain(trial, self.constraints.values(latency.median_ms, cost.params))
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
        return result.score, latency.median_ms

    @staticmethod
    def _constrain(trial: optuna.Trial, values: list[float]) -> None:
        """Optuna's constraints (<= 0 feasible; the samplers read them), kept in user attrs too."""
        trial.set_user_attr("constraints", values)
        for key, value in zip(("latency_ms", "params"), values):
            trial.set_constraint(key, value)

    def _evaluated(self, spec_hash: str, number: int) -> optuna.trial.FrozenTrial | None:
        for t in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if t.number != number and t.user_attrs.get("spec_hash") == spec_hash:
                return t
        return None

    def run(self, n_trials: int, progress: bool = True) -> optuna.Study:
        """Run until the study holds ``n_trials`` finished trials (counting earlier runs and
        other workers), so a resumed or parallel run does not overshoot."""
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        callback = optuna.study.MaxTrialsCallback(n_trials, states=states)
        remaining = n_trials - len(self.study.get_trials(deepcopy=False, states=states))
        if remaining > 0:
            callbacks = [callback] + ([self.tracker] if self.tracker is not None else [])
            if self.weights_dir is not None:
                callbacks.append(lambda study, _: keep_front_weights(self.weights_dir, study))
            self.study.optimize(self.objective, n_trials=remaining, callbacks=callbacks, show_progress_bar=progress)
        return self.study

    # ---- results --------------------------------------------------------------------------------

    def pareto(self) -> list[optuna.trial.FrozenTrial]:
        """The Pareto-optimal designs, fastest first; a design sampled again (``duplicate_of``)
        appears once, as the trial that evaluated it."""
        front = [t for t in self.study.best_trials if "duplicate_of" not in t.user_attrs]
        return sorted(front, key=lambda t: t.values[1])

    def dense_reference(self) -> optuna.trial.FrozenTrial | None:
        return dense_reference(self.study.trials)

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
        return trial_rows(trials, self.dense_reference(), remeasured)

    def write(self, run_dir: Path, remeasured: dict[int, float] | None = None) -> None:
        """trials.csv, pareto.csv (with re-measured latency, if given) and study.json."""
        run_dir.mkdir(parents=True, exist_ok=True)
        done = [t for t in self.study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        for name, rows in (("trials.csv", self.rows(done)), ("pareto.csv", self.rows(self.pareto(), remeasured))):
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
            "states": {s.name: sum(t.state == s for t in self.study.trials) for s in optuna.trial.TrialState},
            "pareto": self.rows(self.pareto(), remeasured),
            "references": {t.user_attrs["reference"]: t.number for t in self.study.trials if "reference" in t.user_attrs},
        }
        (run_dir / "study.json").write_text(json.dumps(summary, indent=2))


def dense_reference(trials: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial | None:
    """The finished trial of the dense reference design (BERT-base pattern), if any."""
    return next((t for t in trials if t.user_attrs.get("reference") == "bert_base" and t.values), None)


def trial_rows(
    trials: list[optuna.trial.FrozenTrial],
    dense: optuna.trial.FrozenTrial | None,
    remeasured: dict[int, float] | None = None,
) -> list[dict]:
    """One dict per finished trial; ``remeasured`` (trial -> ms, from ``remeasure``) adds
    the re-measured latency and speedup."""
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
    the same metric on the task's dev split (reported, not searched on)."""
    head = (f"{'trial':>5}  {'reference':<11} {'design':<44} {'accuracy':>8} {'vs dense':>8} {'dev':>6} "
            f"{'ms':>8} {'speedup':>7} {'GFLOPs':>7} {'params':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ms = r.get("remeasured_ms") or r["latency_ms"]
        speedup = r.get("remeasured_speedup") or r["speedup_vs_dense"]
        delta, dev = r.get("accuracy_vs_dense_points", ""), r.get("dev_score", "")
        lines.append(
            f"{r['trial']:>5}  {r['reference'] or '-':<11} {r['design']:<44} {r['proxy_accuracy']:>8.4f} "
            f"{delta if delta == '' else f'{delta:+.2f}':>8} {dev if dev == '' else f'{dev:.4f}':>6} "
            f"{ms:>8.1f} {speedup!s:>6}x {r['gflops']:>7.2f} {r['params_m']:>6.1f}M"
        )
    return "\n".join(lines)

"""Confirm the front: the search's best designs scored again by a slower proxy that separates
designs, with paired seeds.

HAT's second stage (Wang et al., 2020), automatic and measured. After the search, ``choose``
picks the front's most accurate design, one design in each of ``bands`` speedup bands
(geometric in latency between the fastest trial and dense; by default the band's fastest design
on the search front), both
references, and, while there are fewer than ``min_designs``, the best remaining designs by the
search's score; the confirmed front is built from the confirmed scores. The confirmation proxy
(by default ``proxy=compressed``: the design compressed from the task teacher, healed and
fine-tuned) scores each with every seed of ``proxies``. The
same seed gives every design the same batches and init (common random numbers), so differences
between designs are paired, and the seeds' spread is the run's noise
(``arch_search.stats.pooled_noise``: one degree of freedom per design with two seeds).

Each (design, seed) is a trial of a companion study, ``<study>:confirm``, in the search's
storage. It is enqueued once and the storage hands a waiting trial to exactly one worker, so
workers share the work. A run killed during the confirmation resumes without redoing finished
confirmations: at start, the running trials of dead processes on this host (or with a stale
heartbeat) are failed and queued again (``storage.fail_dead_trials``). With several workers,
each confirms the front it sees when its search stops; a worker that stops later adds what
its front adds (the union is confirmed, nothing twice). The model scored with the first seed
is kept (``weights/confirmed_<trial>.safetensors``) for ``export``.

With ``cache_dir``, each finished confirmation is also kept across runs
(``<cache_dir>/<key>.json``; the first seed's model beside it), keyed by the design's hash, the
seed, the confirmation's fingerprint (proxy, budget, setup, task), the proxies' device and
precision, the torch version and ``CACHE_VERSION``: the compressed proxy is deterministic for a
seed on one machine, so a later run that picks the same design with the same seed copies the
score (its trial says ``cached``) instead of training for two minutes. ``cached_seconds`` is then
the original scoring time.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.storages import RDBStorage
from optuna.storages._heartbeat import get_heartbeat_thread  # Optuna's own, as Study.optimize uses it
from optuna.trial import FrozenTrial, TrialState

from arch_search.cache import atomic_path, cache_key
from arch_search.progress import progress_bar
from arch_search.study.weights import confirmed_path, save_trial_weights
from arch_search.proxies.base import Proxy, ProxyDiverged
from arch_search.stats import Noise, pooled_noise
from arch_search.study.front import front
from arch_search.study.record import Confirmed, TrialRecord
from arch_search.study.fingerprint import StudyMismatch, fingerprint_differences
from arch_search.design.spec import ArchSpec
from arch_search.study.recovery import fail_dead_trials, worker_attrs

MIN_DESIGNS = 6  # designs confirmed at least: with two seeds, the noise's degrees of freedom
SUFFIX = ":confirm"  # the companion study's name: <search study><SUFFIX>
CACHE_VERSION = 1  # bump when a cached confirmation's meaning changes


def bands_of(recs: Sequence[TrialRecord], bands: int) -> list[list[TrialRecord]]:
    """The finished, feasible trials that evaluated their design, in ``bands`` speedup bands:
    geometric in latency from the fastest trial to the slowest (dense, in a space that groups),
    fastest band first; each trial in exactly one band (the slowest one closed at both ends)."""
    pool = [r for r in recs if r.finished and r.evaluated and r.feasible]
    if not pool or bands < 1:
        return []
    lo, hi = min(r.latency_ms for r in pool), max(r.latency_ms for r in pool)
    out: list[list[TrialRecord]] = [[] for _ in range(bands)]
    for r in pool:
        position = math.log(r.latency_ms / lo) / math.log(hi / lo) if hi > lo else 0.0
        out[min(int(position * bands), bands - 1)].append(r)
    return out


PICKS = ("front_fastest", "best_score")  # what ``choose`` takes from each speedup band


def check_pick(pick: str) -> None:
    if pick not in PICKS:
        raise ValueError(f"pick must be one of {PICKS}, got {pick!r}")


def choose(recs: Sequence[TrialRecord], bands: int, min_designs: int = MIN_DESIGNS,
           pick: str = "front_fastest") -> list[TrialRecord]:
    """The trials whose designs to confirm, each design once, in this order: the search front's
    most accurate design, one design of each speedup band (``bands_of``, fastest first; the
    references left out there: they come next), both references, then the best remaining
    designs by the search's score until ``min_designs``. Bands rather than the top of the
    front: a region the search proxy under-rates still gets a design confirmed (issue 34: the
    fronts jumped from dense to 1.84x). ``pick``: the band's fastest design on the search front
    (``front_fastest``; a band without one gives its best by score), or its best design by the
    search's score (``best_score``, issue 34's first rule: score rises with latency, so that
    sat at each band's slow edge and left the fastest band's fast half unconfirmed)."""
    check_pick(pick)
    by_score = lambda r: (-r.score, r.latency_ms, r.number)  # noqa: E731
    pareto = front(recs)
    on_front = {r.number for r in pareto}

    def of(band: list[TrialRecord]) -> TrialRecord:
        ours = [r for r in band if r.number in on_front] if pick == "front_fastest" else []
        return min(ours, key=lambda r: (r.latency_ms, r.number)) if ours else min(band, key=by_score)

    top = [min(pareto, key=by_score)] if pareto and bands else []
    picks = [of(others) for band in bands_of(recs, bands) if (others := [r for r in band if not r.reference])]
    references = [r for r in recs if r.reference and r.finished and r.evaluated]
    rest = sorted((r for r in recs if r.finished and r.evaluated and r.feasible), key=by_score)
    chosen: dict[str, TrialRecord] = {}
    for r in [*top, *picks, *references]:
        chosen.setdefault(r.spec_hash, r)
    for r in rest:
        if len(chosen) >= min_designs:
            break
        chosen.setdefault(r.spec_hash, r)
    return list(chosen.values())


def confirmation_line(trial: FrozenTrial, seconds: float) -> str:
    """One line for a finished confirmation, the run's log of it, e.g.
    ``confirmation of trial 7, seed 1: 384x6 h12 ffn1536 g[q4 k4 v4 post1 in4 out4]  score -0.3987  104.2 s``
    (the confirmation proxy's score; s: wall time); a copy names its trial."""
    key, a = trial.user_attrs["confirm"], trial.user_attrs
    if "duplicate_of" in a:
        outcome = f"copy of confirmation {a['duplicate_of']}"
    elif "cached" in a:
        outcome = f"score {trial.value:.4f} (cached)" if trial.state == TrialState.COMPLETE else "pruned (cached)"
    elif trial.state == TrialState.COMPLETE:
        outcome = f"score {trial.value:.4f}"
    else:
        outcome = f"pruned: {a['pruned_because']}" if "pruned_because" in a else trial.state.name.lower()
    return f"confirmation of trial {key['trial']}, seed {key['seed']}: {key.get('design', '')}  {outcome}  {seconds:.1f} s"


class Confirmation:
    """The confirmation of one search study: ``run(recs)`` may be called by many workers."""

    def __init__(
        self,
        proxies: Mapping[int, Proxy],
        storage: RDBStorage | str,
        study_name: str,
        bands: int = 4,
        pick: str = "front_fastest",
        min_designs: int = MIN_DESIGNS,
        weights_dir: Path | None = None,
        fingerprint: Mapping[str, Any] | None = None,
        dev_metric: str | None = None,
        cache_dir: Path | None = None,
    ):
        """``proxies``: the confirmation proxy for each seed (seed -> proxy; the first seed's
        models are kept in ``weights_dir`` for export). ``fingerprint``: what makes its scores
        comparable (the proxy and its budget); a companion study made with another raises
        ``StudyMismatch``. ``dev_metric``: the task's metric, reported on dev beside the score.
        ``cache_dir``: where finished confirmations are kept for later runs (None: not kept)."""
        if len(proxies) < 2:
            raise ValueError(f"a confirmation needs at least two seeds (its noise), got {len(proxies)}")
        self.proxies, self.bands, self.min_designs, self.weights_dir = dict(proxies), bands, min_designs, weights_dir
        check_pick(pick)  # here, not first after the search
        self.pick = pick
        self.seeds, self.dev_metric = tuple(self.proxies), dev_metric
        self.fingerprint = json.loads(json.dumps({**(fingerprint or {}), "seeds": list(self.seeds)}))
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        name = study_name + SUFFIX
        try:
            self.study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
            self.study.set_user_attr("fingerprint", self.fingerprint)
        except optuna.exceptions.DuplicatedStudyError:
            self.study = optuna.load_study(study_name=name, storage=storage)
            stored = self.study.user_attrs.get("fingerprint")
            diff = fingerprint_differences(stored, self.fingerprint) if stored is not None else []
            if diff:
                raise StudyMismatch(f"study {name!r} confirmed with other settings ({'; '.join(diff)}): rerun with "
                                    "its settings, or start another study") from None

    # ---- the work --------------------------------------------------------------------------------

    def run(self, recs: Sequence[TrialRecord], progress: bool = True) -> list[Confirmed]:
        """Confirm ``choose(recs)`` with every seed (what is done already is not done again);
        returns every confirmation of the study. Each confirmation prints one line
        (``confirmation_line``); ``progress``: a bar too, in a terminal (``progress_bar``)."""
        fail_dead_trials(self.study)
        chosen = choose(recs, self.bands, self.min_designs, self.pick)
        self._enqueue(chosen)
        specs = {r.number: r.spec for r in recs}
        todo = sum(1 for t in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)) if "confirm" in t.user_attrs)
        with progress_bar(total=todo, enabled=progress, desc="confirmations") as bar:
            while (trial := self._next()) is not None:
                t0 = time.perf_counter()
                with get_heartbeat_thread(trial._trial_id, self.study._storage):  # as Study.optimize beats
                    self._confirm(trial, specs)
                bar.update()
                bar.write(confirmation_line(self.study._storage.get_trial(trial._trial_id), time.perf_counter() - t0))
        return self.results()

    def _enqueue(self, chosen: Sequence[TrialRecord]) -> None:
        """Queue each (design, seed) of ``chosen`` without a finished, running or queued trial."""
        live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        have = {(t.user_attrs["confirm"]["spec_hash"], t.user_attrs["confirm"]["seed"])
                for t in self.study.get_trials(deepcopy=False, states=live) if "confirm" in t.user_attrs}
        for r in chosen:
            for seed in self.seeds:
                if (r.spec_hash, seed) not in have:
                    key = {"trial": r.number, "spec_hash": r.spec_hash, "seed": seed, "design": r.summary}
                    self.study.enqueue_trial({}, user_attrs={"confirm": key})

    def _next(self) -> optuna.Trial | None:
        """A queued confirmation for this worker, or None when none is left. (Optuna's ``ask``
        makes a new, empty trial when another worker took the last one: it is failed.)"""
        if not any("confirm" in t.user_attrs for t in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))):
            return None
        with warnings.catch_warnings():  # "heartbeat is supposed to be used with optimize": it is beaten in run
            warnings.simplefilter("ignore", UserWarning)
            trial = self.study.ask()
        if "confirm" not in trial.user_attrs:
            self.study.tell(trial, state=TrialState.FAIL)
            return None
        return trial

    def _confirm(self, trial: optuna.Trial, specs: Mapping[int, str | None]) -> None:
        key = trial.user_attrs["confirm"]
        for name, value in worker_attrs().items():
            trial.set_user_attr(name, value)
        done = self._done(key["spec_hash"], key["seed"], trial.number)
        if done is not None:  # queued twice by two workers at once: copy, do not score again
            trial.set_user_attr("duplicate_of", done.number)
            self.study.tell(trial, done.value)
            return
        spec = specs.get(key["trial"])
        if spec is None:
            self.study.tell(trial, state=TrialState.FAIL)
            return
        keep = key["seed"] == self.seeds[0] and self.weights_dir is not None  # this seed's model goes to export
        if self._from_cache(trial, key, keep):
            return
        t0 = time.perf_counter()
        try:
            result = self.proxies[key["seed"]].evaluate(ArchSpec.from_yaml(spec))
        except ProxyDiverged as e:
            trial.set_user_attr("pruned_because", str(e))
            self._to_cache(key, {"pruned_because": str(e)}, None)
            self.study.tell(trial, state=TrialState.PRUNED)
            return
        weights = confirmed_path(self.weights_dir, key["trial"]) if keep and result.model is not None else None
        if weights is not None:
            save_trial_weights(weights, result.model, result.tokenizer, result.labels)
        seconds = round(time.perf_counter() - t0, 1)
        trial.set_user_attr("metric", result.metric)
        trial.set_user_attr("dev", result.dev)
        trial.set_user_attr("seconds", seconds)
        if math.isfinite(result.score):
            self._to_cache(key, {"score": result.score, "metric": result.metric, "dev": result.dev, "seconds": seconds},
                           weights)
        self.study.tell(trial, result.score if math.isfinite(result.score) else None,
                        state=None if math.isfinite(result.score) else TrialState.FAIL)

    # ---- the cache across runs ---------------------------------------------------------------------

    def cache_key(self, spec_hash: str, seed: int) -> str:
        """The key of one (design, seed) confirmation: what changes its score (see the module)."""
        setup = getattr(self.proxies[seed], "setup", None)
        key = {"fingerprint": {k: v for k, v in self.fingerprint.items() if k != "seeds"}, "design": spec_hash,
               "seed": seed, "device": str(getattr(setup, "device", "cpu")), "precision": getattr(setup, "precision", None),
               "torch": torch.__version__, "version": CACHE_VERSION}
        return cache_key(key)

    def _from_cache(self, trial: optuna.Trial, key: Mapping[str, Any], keep: bool) -> bool:
        """Finish ``trial`` from the cache when its (design, seed) is there (with its model when
        ``keep``); False when it is not."""
        if self.cache_dir is None:
            return False
        name = self.cache_key(key["spec_hash"], key["seed"])
        entry, model = self.cache_dir / f"{name}.json", self.cache_dir / f"{name}.safetensors"
        if not entry.is_file():
            return False
        stored = json.loads(entry.read_text())
        if keep and "score" in stored and not model.is_file():
            return False  # the model export needs is not there: score it again
        trial.set_user_attr("cached", name)
        if "pruned_because" in stored:
            trial.set_user_attr("pruned_because", stored["pruned_because"])
            self.study.tell(trial, state=TrialState.PRUNED)
            return True
        if keep:
            with atomic_path(confirmed_path(self.weights_dir, key["trial"])) as tmp:
                shutil.copyfile(model, tmp)
        trial.set_user_attr("metric", stored["metric"])
        trial.set_user_attr("dev", stored["dev"])
        trial.set_user_attr("seconds", 0.0)
        trial.set_user_attr("cached_seconds", stored["seconds"])
        self.study.tell(trial, stored["score"])
        return True

    def _to_cache(self, key: Mapping[str, Any], stored: Mapping[str, Any], weights: Path | None) -> None:
        """Keep one finished confirmation (and the model in ``weights``) for later runs: the
        model first, so an entry that is there has its model."""
        if self.cache_dir is None:
            return
        name = self.cache_key(key["spec_hash"], key["seed"])
        if weights is not None:
            with atomic_path(self.cache_dir / f"{name}.safetensors") as tmp:
                shutil.copyfile(weights, tmp)
        with atomic_path(self.cache_dir / f"{name}.json") as tmp:
            tmp.write_text(json.dumps({**stored, "design": key.get("design", "")}, sort_keys=True))

    def _done(self, spec_hash: str, seed: int, number: int) -> optuna.trial.FrozenTrial | None:
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            key = t.user_attrs.get("confirm", {})
            if t.number != number and (key.get("spec_hash"), key.get("seed")) == (spec_hash, seed):
                return t
        return None

    # ---- what it found -----------------------------------------------------------------------------

    def results(self) -> list[Confirmed]:
        """Every finished confirmation of the study, one ``Confirmed`` per design."""
        scores: dict[int, dict[int, float]] = {}
        dev: dict[int, dict[int, dict]] = {}
        metric: dict[int, str] = {}
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            key = t.user_attrs.get("confirm")
            if key is None or "duplicate_of" in t.user_attrs:
                continue
            scores.setdefault(key["trial"], {})[key["seed"]] = t.value
            dev.setdefault(key["trial"], {})[key["seed"]] = t.user_attrs.get("dev") or {}
            metric[key["trial"]] = t.user_attrs.get("metric", "")
        return [Confirmed(n, metric[n], dict(sorted(scores[n].items())), dev[n]) for n in sorted(scores)]

    def teacher(self) -> dict | None:
        """The task teacher itself, scored as the first seed's proxy scores a design (``score``,
        ``metric``, ``dev``): the dense model before the proxy heals it, shown beside the healed
        dense reference. Measured once per study (kept in its user attrs); None when the proxy
        has no teacher (``teacher_result``)."""
        if "teacher" in self.study.user_attrs:
            return self.study.user_attrs["teacher"]
        proxy = self.proxies[self.seeds[0]]
        if not hasattr(proxy, "teacher_result"):
            return None
        r = proxy.teacher_result()
        teacher = {"score": r.score, "metric": r.metric, "dev": r.dev or {}}
        self.study.set_user_attr("teacher", teacher)
        return teacher

    def noise(self, confirmed: Sequence[Confirmed]) -> Noise | None:
        """The run's noise: the confirmation proxy's seeds, paired per design."""
        return pooled_noise([list(c.scores.values()) for c in confirmed],
                            f"the confirmation proxy's seeds {', '.join(map(str, self.seeds))} on each confirmed design")

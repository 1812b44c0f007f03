"""A design's proxy scores over paired seeds (``Scores``) and what a lesson reads from them:
the paired seed noise, the minimum detectable effect and a paired difference between two
designs (``arch_search.stats``), per metric (``METRICS``)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from arch_search.stats import MDE_STANDARD_ERRORS, Noise, PairedDifference, paired_difference, paired_noise, paired_se
from arch_search.tasks.glue import get_task


@dataclass(frozen=True)
class Scores:
    """Proxy results of one design, one value per seed (fractions; NaN where it diverged).
    ``heldout``: the task metric on the held-out train rows (SST-2 accuracy); ``dev``: on dev;
    ``score``: what the search maximises (the compressed proxy: mean gold log-likelihood on the
    held-out rows; the scratch proxy: the held-out metric)."""

    seeds: tuple[int, ...]
    heldout: tuple[float, ...]
    dev: tuple[float, ...]
    seconds: tuple[float, ...]
    score: tuple[float, ...] = ()

    def points(self, which: str = "heldout") -> tuple[float, ...]:
        """``which`` per seed, x100 (accuracy in points; a log-likelihood in hundredths); NaN per
        seed for a ``score`` the proxy did not give."""
        values = getattr(self, which)
        return tuple(100 * v for v in values) if values else (math.nan,) * len(self.seeds)

    def stats(self, which: str = "heldout") -> tuple[float, float, float]:
        """(mean, min, max) over seeds, in percent; all NaN when a seed diverged (NaN), wherever it is."""
        values = self.points(which)
        if any(math.isnan(v) for v in values):
            return math.nan, math.nan, math.nan
        return statistics.fmean(values), min(values), max(values)

    def text(self, which: str = "heldout") -> str:
        mean, lo, hi = self.stats(which)
        return f"{mean:.1f} ({lo:.1f}-{hi:.1f})" if len(self.seeds) > 1 else f"{mean:.1f}"


METRICS = ("heldout", "dev", "score")  # the verdicts are on ``heldout``: accuracy, the highest SNR of the three
# What each of ``METRICS`` is, for a report: ``{metric}`` is the task's metric (``metric_label``).
METRIC_LABELS = {"heldout": "held-out {metric}", "dev": "dev {metric}", "score": "score (log-likelihood x100)"}
METRIC_WORDS = {"accuracy": "accuracy", "f1": "F1", "matthews_correlation": "MCC", "pearson": "Pearson"}  # GlueTask.metric


def metric_label(which: str, task: str) -> str:
    """``which`` of ``METRICS`` on ``task`` (a GLUE task name), as a report names it: ``held-out
    accuracy`` (SST-2), ``dev MCC`` (CoLA), ``dev Pearson`` (STS-B), ``dev F1`` (MRPC)."""
    return METRIC_LABELS[which].format(metric=METRIC_WORDS[get_task(task).metric])


def noise(scores: Mapping[str, Scores], which: str = "heldout") -> Noise | None:
    """The paired seed noise of ``which`` over every design (``paired_noise``), in points."""
    return paired_noise({name: s.points(which) for name, s in scores.items()},
                        f"the residual of design + seed over {len(scores)} designs x {len(next(iter(scores.values())).seeds)} seeds")


def mde(scores: Mapping[str, Scores], which: str = "heldout") -> float:
    """The minimum detectable effect of a paired difference between two designs, in points:
    ``MDE_STANDARD_ERRORS`` standard errors at the lesson's paired noise (``noise``)."""
    return MDE_STANDARD_ERRORS * paired_se(noise(scores, which), len(next(iter(scores.values())).seeds))


def compare(scores: Mapping[str, Scores], a: str, b: str, which: str = "heldout",
            noise_: Noise | None = None) -> PairedDifference:
    """``a - b`` in points, paired by seed, with the lesson's pooled noise (``noise``)."""
    pooled = noise_ or noise(scores, which)
    if pooled is None:
        raise ValueError("a paired difference needs 2 seeds or more")
    return paired_difference(scores[a].points(which), scores[b].points(which), pooled)

"""What a search prints: one line per finished trial (``trial_line``, the run's log of it) and
a finished run's front, noise and confirmed designs (``SearchResult``, its ``text``). No torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from optuna.trial import FrozenTrial, TrialState

from arch_search.stats import Noise
from arch_search.study import run_tables
from arch_search.study.record import TrialRecord


def trial_line(trial: FrozenTrial, done: int, target: int) -> str:
    """One line for a finished trial, the run's log of it (a worker's log has no bars), e.g.
    ``trial 7: 384x6 h12 ffn1536 g[q4 k4 v4 post1 in4 out4]  score -0.4112  8.7 ms  5.1 s  [6/64 evaluations]``:
    the proxy's score, the latency objective (ms, target scale), the trial's wall time (s) and
    the study's distinct evaluations out of the target; a copy or a skip names its trial."""
    r = TrialRecord.of(trial)
    if r.state == TrialState.PRUNED.name:
        outcome = f"pruned: {r.pruned_because}"
    elif r.duplicate_of is not None:
        outcome = f"copy of trial {r.duplicate_of}"
    elif r.finished:
        outcome = f"score {r.score:.4f}  {r.latency_ms:.1f} ms"
    else:  # e.g. a score Optuna refused (nan): it says why
        outcome = r.state.lower()
    seconds = (trial.datetime_complete - trial.datetime_start).total_seconds()
    name = f" ({r.reference})" if r.reference else ""
    return f"trial {trial.number}{name}: {r.summary}  {outcome}  {seconds:.1f} s  [{done}/{target} evaluations]"


@dataclass(frozen=True)
class SearchResult:
    """What a finished run shows: the front's rows (re-measured), the search proxy's noise, and
    the confirmation's rows and noise (the run's noise, when there is a confirmation)."""

    front: list[dict]
    noise: Noise | None
    confirmed: list[dict] = field(default_factory=list)
    confirm_noise: Noise | None = None
    teacher: dict | None = None  # the confirmation proxy's task teacher itself (``Confirmation.teacher``)

    def text(self) -> str:
        if self.noise:
            noise = (f"search proxy seed noise: sd {self.noise.sd:.4f} of the score ({self.noise.dof} dof: "
                     f"{self.noise.source}); ~ marks an accuracy within it of the next faster design's")
        else:
            noise = "search proxy seed noise: not measured (search.proxy_noise=false, or a proxy without a seed)"
        text = f"{run_tables.format_pareto(self.front)}\n{noise}"
        if self.confirmed:  # then the front's 'vs dense' is the search proxy's, the confirmed one the number to report
            text += f"\n{run_tables.SEARCH_VS_DENSE}\n\n" + run_tables.format_confirmed(self.confirmed, self.confirm_noise, self.teacher)
        return text

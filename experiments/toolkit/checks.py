"""Does a lesson's verdict hold? With the dense reference scored as the task teacher itself
(``dense_as_teacher``) and at ``BUDGET_CHECK`` x the healing budget (``at_budget``), each with
the report section that says so."""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from arch_search import ArchSpec
from arch_search.tables import md_table
from experiments.toolkit.compose import config
from experiments.toolkit.scores import Scores, metric_label, noise
from experiments.toolkit.store import stored_scores


def dense_as_teacher(scores: Mapping[str, Scores], dense: str, teacher: Scores | None,
                     verdict: Callable[[Mapping[str, Scores]], str], which: str = "heldout", *, task: str) -> dict:
    """What the healed dense design costs, and whether a verdict changes when dense is the
    teacher itself: ``scores`` with ``dense``'s row moved to ``teacher``'s level, each seed keeping
    its deviation from dense's mean, so the paired noise (the residual of design + seed, blind to a
    row's level) and every other design stay as they were: only dense's value changes. ``task``:
    the GLUE task the scores are on (the result's ``metric`` names its metric)."""
    if teacher is None:
        return {"verdict": "not measured"}
    healed = scores[dense].stats(which)[0]
    row, moved = scores[dense], {}
    for field in ("heldout", "dev", "score"):
        values, level = getattr(row, field), getattr(teacher, field)
        moved[field] = tuple(v - statistics.fmean(values) + level[0] for v in values) if values and level else values
    word = verdict({**scores, dense: Scores(row.seeds, moved["heldout"], moved["dev"], row.seconds, moved["score"])})
    return {"verdict": word, "teacher_points": round(teacher.stats(which)[0], 2),
            "healed_dense_points": round(healed, 2), "healed_minus_teacher_points": round(healed - teacher.stats(which)[0], 2),
            "metric": metric_label(which, task),
            "teacher_dev_points": round(teacher.stats("dev")[0], 2), "healed_dense_dev_points": round(scores[dense].stats("dev")[0], 2)}


def teacher_lines(check: Mapping, verdict: str, dense: str = "dense") -> list[str]:
    """The report's section on ``dense_as_teacher``'s result beside the lesson's ``verdict``."""
    head = ["## The dense reference: the teacher itself", ""]
    if check["verdict"] == "not measured":
        return [*head, "The teacher's own metrics are not measured yet: run the command without `--render`.", ""]
    holds = "holds" if check["verdict"] == verdict else "changes"
    return [*head,
            f"The compressed proxy heals and fine-tunes every design, `{dense}` too (it starts as the task teacher and is "
            f"fine-tuned like the others). The teacher itself, which a user already has: {check['metric']} "
            f"{check['teacher_points']:.2f} (dev {check['teacher_dev_points']:.2f}); the healed `{dense}`: "
            f"{check['healed_dense_points']:.2f} (dev {check['healed_dense_dev_points']:.2f}): what the recipe does to a "
            f"design that needed no healing, healed minus teacher, **{check['healed_minus_teacher_points']:+.2f} points**.", "",
            f"With `{dense}` scored as the teacher itself (the same value for every seed): **{check['verdict']}** "
            f"(the lesson's verdict, {verdict}, {holds}).", ""]


BUDGET_CHECK = 4  # times the default healing budget a verdict is checked at
BUDGET_CHECK_SEEDS = 2  # with the first two seeds, paired


def budget_args(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with the seeds a budget check uses (the first ``BUDGET_CHECK_SEEDS``)."""
    return argparse.Namespace(**{**vars(args), "seeds": list(args.seeds[:BUDGET_CHECK_SEEDS])})


def at_budget(designs: Mapping[str, ArchSpec], args: argparse.Namespace, here: Path,
              verdict: Callable[[Mapping[str, Scores]], tuple[str, float]], task: str | None = None,
              extra: Sequence[str] = (), budget: int = BUDGET_CHECK, which: str = "heldout") -> dict:
    """Does a verdict hold at ``budget`` x the healing budget? ``designs`` (those the verdict
    rests on) scored with the first ``BUDGET_CHECK_SEEDS`` seeds at that budget (stored in
    scores.csv under their own proxy key, resumable), ``verdict(scores) -> (word, MDE in
    points)`` on them, and beside it the same rule on the same designs and seeds at the default
    budget (the like-for-like comparison: fewer designs and seeds than the lesson's own verdict).
    The rows are stored in ``scores_<budget>x.csv`` beside scores.csv.
    ``which``: the metric the verdict is on (its noise and means are reported). Under ``--render``
    with rows missing: ``{"verdict": "not scored"}``."""
    few = budget_args(args)
    kw = {"task": task, "extra": extra, "missing_ok": True}
    default = stored_scores(designs, few, here, **kw)
    checked = stored_scores(designs, few, here, budget=budget, **kw)
    cfg = config(few, task=task, extra=extra, budget=budget)
    out = {"budget": budget, "distill_steps": cfg.proxy.distill_steps, "steps": cfg.proxy.steps, "seeds": few.seeds,
           "designs": list(designs), "metric": metric_label(which, cfg.task.name)}
    if checked is None or default is None:
        return {"verdict": "not scored", **out}
    (word, mde_), (word_1x, mde_1x) = verdict(checked), verdict(default)
    n = noise(checked, which)
    return {"verdict": word, "mde_points": round(mde_, 2), "noise_sd_points": round(n.sd, 3), "noise_dof": n.dof, **out,
            "same_designs_at_1x": {"verdict": word_1x, "mde_points": round(mde_1x, 2)},
            "points": {name: round(s.stats(which)[0], 2) for name, s in checked.items()},
            "minutes": round(sum(sum(s.seconds) for s in checked.values()) / 60, 1)}


def budget_lines(check: Mapping, verdict: str) -> list[str]:
    """The report's section on ``at_budget``'s result beside the lesson's ``verdict``."""
    head = [f"## The verdict at {check['budget']}x the healing budget", "",
            f"The designs the verdict rests on ({', '.join(check['designs'])}) scored again with {check['distill_steps']} "
            f"distillation and {check['steps']} fine-tune steps ({check['budget']}x the default; the same teacher), seeds "
            f"{', '.join(map(str, check['seeds']))}, paired."]
    if check["verdict"] == "not scored":
        return [*head, "", "Not scored yet: run the command without `--render`.", ""]
    same = check["same_designs_at_1x"]
    holds = "holds" if check["verdict"] == verdict else "changes"
    return [*head, "", f"Noise: paired seed sd {check['noise_sd_points']:.2f} points ({check['noise_dof']} dof).", "",
            f"- at {check['budget']}x: **{check['verdict']}** (MDE {check['mde_points']:.2f} points)",
            f"- the same designs and seeds at the default budget: {same['verdict']} (MDE {same['mde_points']:.2f})",
            f"- the lesson's verdict (all designs, every seed, default budget): {verdict}: it **{holds}** at "
            f"{check['budget']}x.", "",
            *md_table([{"design": n, "points": f"{v:.2f}"} for n, v in check["points"].items()],
                      {"design": "design", "points": f"{check['metric']} at {check['budget']}x (mean)"}), ""]

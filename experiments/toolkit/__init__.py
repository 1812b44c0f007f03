"""What the experiments share, one job a module; a script imports the package
(``from experiments import toolkit``) and calls ``toolkit.<name>`` (``ranking``'s and
``sampler_runs``' names it imports from their modules):

- ``paths``: the checkout, ``../shared`` (``ARCH_SEARCH_SHARED``), GLUE and the checkpoint (and a
  child process's environment naming them), paths made relative for committed files, the commit.
- ``compose``: ``conf/run.yaml`` composed by Hydra as ``run`` composes it, a proxy with overrides
  (``COMPRESSED``, the lessons' proxy; ``SUPERNET``; ``SCRATCH``); the lessons' command line; the
  proxy key of a score.
- ``scores``: ``Scores`` of a design over paired seeds; the paired noise, MDE and differences.
- ``store``: scores stored row by row (resumable, shared between lessons), the teacher's row;
  ``read_rows`` / ``save_rows``: any resumable CSV of rows.
- ``checks``: a verdict with dense scored as the teacher itself, and at 4x the healing budget.
- ``measurements``: latency (interleaved) and costs at the target scale, one row per design.
- ``runs``: ``python -m arch_search`` with its log in the run directory, its report's PNGs, the
  latency LUT.
- ``ranking``: how a proxy ranks designs: per-design means and seed sds, SNR, Kendall tau, the
  dense - SqueezeBERT gap, over the named designs (proxy_compressed, proxy_supernet).
- ``sampler_runs``: searches compared by sampler (samplers, search_recovers_squeezebert's
  samplers.py): one run per (sampler, seed), its trials, hypervolume curves against one
  reference point, the machine and wall time of the runs, the figure (imported from
  ``experiments.toolkit.sampler_runs``).
- ``report``: results.md's header and design table, results.csv, summary.json, the PNG.
"""

from experiments.toolkit.checks import (BUDGET_CHECK, at_budget, budget_args, budget_lines, dense_as_teacher,
                                        teacher_lines)
from experiments.toolkit.compose import (COMPRESSED, SCRATCH, SEEDS, SUPERNET, compose_run, config, parse, parser,
                                         proxy_key, proxy_run, proxy_settings, target)
from experiments.toolkit.measurements import costs, evaluate, measure, rows, scores_only, timed
from experiments.toolkit.paths import REPO, SHARED, checkpoint, code_commit, data_env, glue_dir, relative
from experiments.toolkit.report import (command, design_table, errorbars, header, machine_of, power_lines, show,
                                        summary, write, write_results)
from experiments.toolkit.runs import build_lut, report_pngs, run_logged, scrub_paths, search_reach, strip_progress
from experiments.toolkit.scores import METRIC_LABELS, METRICS, Scores, compare, mde, metric_label, noise
from experiments.toolkit.store import SCORE_COLUMNS, read_rows, save_rows, score_designs, stored_scores, teacher_scores

__all__ = [
    "BUDGET_CHECK", "COMPRESSED", "METRICS", "METRIC_LABELS", "REPO", "SCORE_COLUMNS", "SCRATCH", "SEEDS",
    "SHARED", "SUPERNET", "Scores", "at_budget", "budget_args", "budget_lines", "build_lut", "checkpoint",
    "code_commit", "command", "compare", "compose_run", "config", "costs", "data_env", "dense_as_teacher",
    "design_table", "errorbars", "evaluate", "glue_dir", "header", "machine_of", "mde", "measure", "metric_label",
    "noise", "parse", "parser", "power_lines", "proxy_key", "proxy_run", "proxy_settings", "read_rows", "relative",
    "report_pngs", "rows", "run_logged", "save_rows", "score_designs", "scores_only", "scrub_paths",
    "search_reach", "show", "stored_scores", "strip_progress", "summary", "target", "teacher_lines",
    "teacher_scores", "timed", "write", "write_results",
]

"""GLUE tasks: the dense and SqueezeBERT patterns on five GLUE tasks, with the compressed proxy.

SqueezeBERT (Iandola et al., 2020) reports GLUE close to BERT-base's with groups
(4,4,4,1,4,4). Here both patterns are scored per task by the lessons' proxy
(``proxy_setup=pretrained proxy=compressed``, ``experiments.toolkit``): the pretrained
all-MiniLM-L6-v2 checkpoint fine-tuned on the task is the teacher (one per task, cached), and
each pattern is compressed from it and fine-tuned with the teacher's logits. Every task and
design is scored with the same proxy seeds, paired (common random numbers). GLUE's metric on
dev stands beside the paper's test numbers, with the paired seed noise and the minimum
detectable effect of each task's gap.

    python experiments/glue_tasks/run.py            # scores.csv (resumable), latency.csv, teachers.csv, results.*, summary.json, PNG
    python experiments/glue_tasks/run.py --render   # the report again from scores.csv, latency.csv and teachers.csv
    python experiments/glue_tasks/run.py --quick    # smoke run (CI): RTE and STS-B, tiny budget, writes nothing
"""

from __future__ import annotations

import statistics
from pathlib import Path

import plotly.graph_objects as go
from hydra.utils import instantiate

from arch_search import ArchSpec, glue_metric
from experiments import toolkit
from arch_search.cache import atomic_path
from arch_search.measure.latency import Env
from arch_search.tables import csv_text, md_table
from arch_search.tasks.glue import get_task, load_glue
from arch_search.tasks.tokenizer import load_tokenizer, longer_than
from arch_search.tasks.training import score

HERE = Path(__file__).resolve().parent
TASKS = ("cola", "sst2", "mrpc", "stsb", "rte")  # WNLI left out: its dev set is adversarial (majority class wins)
QUICK_TASKS = ("rte", "stsb")
DESIGNS = {"dense": ArchSpec.preset("bert_base"), "squeezebert": ArchSpec.preset("squeezebert")}
# GLUE *test* set, x100, the metric each reports (CoLA MCC, MRPC F1, STS-B Pearson, else accuracy).
# SqueezeBERT: Iandola et al. (2020), the scores listed for the paper on Papers with Code (its
# STS-B entry was not in the sources reachable offline: None). BERT-base: Devlin et al. (2019), Table 1
# (its STS-B number is Spearman; Pearson is not given there).
PAPER_SQUEEZEBERT = {"cola": 46.5, "sst2": 91.4, "mrpc": 87.8, "stsb": None, "rte": 73.2}
PAPER_BERT_BASE = {"cola": 52.1, "sst2": 93.5, "mrpc": 88.9, "stsb": 85.8, "rte": 66.4}


def names(task: str) -> dict[str, ArchSpec]:
    """This task's designs, named ``<task> <design>`` (one scores.csv holds every task)."""
    return {f"{task} {d}": spec for d, spec in DESIGNS.items()}


def settings(tasks, args) -> dict[str, dict]:
    """Per task, its proxy settings (conf/task/<task>.yaml: max length, held-out rows, the teacher's
    steps) and the share of its dev inputs longer than its max length (cut by the tokenizer), in %."""
    out = {}
    for task in tasks:
        cfg = toolkit.config(args, task=task)
        setup = cfg.proxy_setup  # the checkpoint's tokenizer and dev split only: no train split tokenised here
        dev = load_glue(task, "validation", setup.data_dir)
        tok = load_tokenizer(setup.checkpoint)
        out[task] = {"max_len": setup.max_len, "heldout_rows": setup.heldout, "teacher_steps": cfg.proxy.teacher_steps,
                     "dev_over_max_len": round(100 * longer_than(tok, dev.text_a, dev.text_b, setup.max_len), 1)}
    return out


def constant_baseline(task, labels) -> float:
    """GLUE's metric of the best constant prediction on ``labels`` (the majority class; 0 for MCC
    and Pearson, which a constant cannot move): the level a model that learned nothing reaches."""
    t = get_task(task)
    guesses = [0.0] if t.is_regression else range(t.num_labels)
    return max(glue_metric(t, [g] * len(labels), labels)[t.metric] for g in guesses)


def teachers(tasks, args) -> dict[str, dict]:
    """Per task, what the designs are healed toward: its teacher's metric (x100) on dev and on
    the held-out rows, beside the best constant prediction on dev. A row per task in
    ``teachers.csv``, keyed by the teacher's cache key; a missing row is measured (the teacher
    trained first if it is not cached); ``--render`` reads only (a missing row shows as "—");
    ``--quick`` measures its tiny teachers and stores nothing."""
    path = HERE / "teachers.csv"
    stored = {} if args.quick else {r["task"]: r for r in toolkit.read_rows(path)}
    out = {}
    for task in tasks:
        proxy = instantiate(toolkit.config(args, 0, task=task).proxy)
        key = proxy.task_teacher.key()
        if stored.get(task, {}).get("teacher") == key:
            out[task] = stored[task]
            continue
        if args.render:
            continue
        data = proxy.setup.data
        metric = data.task.metric
        out[task] = stored[task] = {
            "task": task, "teacher": key, "dev": round(100 * score(proxy.teacher, data.dev, data.task)[metric], 2),
            "heldout": round(100 * score(proxy.teacher, data.heldout, data.task)[metric], 2),
            "constant_dev": round(100 * constant_baseline(task, list(data.dev.labels)), 2),
            "code": toolkit.code_commit(), "machine": str(Env.current(proxy.threads))}
        print(f"teacher {task}: dev {out[task]['dev']}  held-out {out[task]['heldout']}  "
              f"constant {out[task]['constant_dev']}", flush=True)
        if not args.quick:
            with atomic_path(path) as tmp:
                tmp.write_text(csv_text([stored[t] for t in TASKS if t in stored]))
    return out


LEARNED_MDES = 3  # a teacher learned its task when its dev metric beats the best constant's by more than 3 MDEs
UNDECIDABLE = "undecidable by this proxy"


def learned(teacher: dict | None, gap_mde: float) -> bool | None:
    """Did the proxy learn the task? Its teacher's dev metric beats the best constant prediction's
    by more than ``LEARNED_MDES`` x the task's MDE (of the gap between designs); None when the
    teacher is not measured. A task it did not learn decides nothing: every design sits near the
    constant, whatever its groups."""
    if not teacher:
        return None
    return float(teacher["dev"]) - float(teacher["constant_dev"]) > LEARNED_MDES * gap_mde


def table(tasks, scores, teacher: dict[str, dict]) -> list[dict]:
    """Per task: each design's dev metric (mean over seeds), the paired gap SQ - dense with its
    MDE (the task's own paired noise) and verdict (``UNDECIDABLE`` where the proxy did not learn
    the task, ``learned``), the same on the held-out rows, the paper's."""
    out = []
    for task in tasks:
        s = scores[task]
        dev = toolkit.compare(s, f"{task} squeezebert", f"{task} dense", "dev")
        held = toolkit.compare(s, f"{task} squeezebert", f"{task} dense", "heldout")
        paper_sq, paper_bert = PAPER_SQUEEZEBERT[task], PAPER_BERT_BASE[task]
        paper = round(paper_sq - paper_bert, 1) if paper_sq is not None else None
        knows = learned(teacher.get(task), dev.mde)
        out.append({
            "task": get_task(task).dir_name, "metric": get_task(task).metric,
            "dense": round(s[f"{task} dense"].stats("dev")[0], 2), "squeezebert": round(s[f"{task} squeezebert"].stats("dev")[0], 2),
            "teacher_dev": float(teacher[task]["dev"]) if task in teacher else "",
            "constant_dev": float(teacher[task]["constant_dev"]) if task in teacher else "",
            "gap": round(dev.mean, 2), "gap_mde": round(dev.mde, 2), "gap_min": round(min(dev.by_seed), 2),
            "gap_max": round(max(dev.by_seed), 2),
            "learned": "" if knows is None else knows,
            "verdict": UNDECIDABLE if knows is False else dev.verdict(-1 if paper < 0 else +1) if paper is not None
            else "no paper number",
            "heldout_gap": round(held.mean, 2), "heldout_gap_mde": round(held.mde, 2),
            "paper_squeezebert_test": paper_sq if paper_sq is not None else "", "paper_bert_base_test": paper_bert,
            "paper_gap": paper if paper is not None else "",
            "gap_minus_paper": round(dev.mean - paper, 2) if paper is not None else "",
        })
    return out


BUDGET_TASK = "sst2"  # the verdict at 4x the healing budget: SST-2's gap (--quick: its first task)


def budget_verdict(task: str):
    """The task's verdict rule (``table``: the dev gap on the sign of the paper's) on other scores."""
    def rule(scores) -> tuple[str, float]:
        d = toolkit.compare(scores, f"{task} squeezebert", f"{task} dense", "dev")
        paper = PAPER_SQUEEZEBERT[task] - PAPER_BERT_BASE[task] if PAPER_SQUEEZEBERT[task] is not None else -1
        return d.verdict(-1 if paper < 0 else +1), d.mde
    return rule


def overall(rows: list[dict]) -> str:
    """The lesson's verdict over the tasks the proxy learned that have a paper number (``left_out``
    names the rest): contradicted if any task is, reproduced if every one is, else not reproduced."""
    words = [r["verdict"] for r in rows if r["verdict"] not in ("no paper number", UNDECIDABLE)]
    return "contradicted" if "contradicted" in words else "reproduced" if words and all(
        w == "reproduced" for w in words) else "not reproduced"


def left_out(rows: list[dict]) -> list[str]:
    """The tasks the overall verdict leaves out: the proxy did not learn them, or no paper number."""
    return [r["task"] for r in rows if r["verdict"] in ("no paper number", UNDECIDABLE)]


def report(args, tasks, rows, scores, latency, design_rows, check, per_task) -> list[str]:
    cfg = toolkit.config(args)
    p, ps = cfg.proxy, cfg.proxy_setup
    seeds = ", ".join(map(str, args.seeds))
    d, s = latency["dense"], latency["squeezebert"]
    stored = toolkit.read_rows(HERE / "scores.csv")
    machines = sorted({r["machine"] for r in stored}) or ["(none yet)"]
    shown = [{**r, "gap": f"{r['gap']:+.2f} (MDE {r['gap_mde']:.2f}; seeds {r['gap_min']:+.1f} to {r['gap_max']:+.1f})",
              "heldout_gap": f"{r['heldout_gap']:+.2f} (MDE {r['heldout_gap_mde']:.2f})",
              "paper_squeezebert_test": _number(r["paper_squeezebert_test"]),
              "teacher_dev": _number(r["teacher_dev"]), "constant_dev": _number(r["constant_dev"]),
              "learned": {True: "yes", False: "**no**"}.get(r["learned"], "—"),
              "paper_gap": f"{r['paper_gap']:+.1f}" if r["paper_gap"] != "" else "—",
              "gap_minus_paper": f"{r['gap_minus_paper']:+.1f}" if r["gap_minus_paper"] != "" else "—"} for r in rows]
    both = [r for r in rows if r["paper_gap"] != ""]
    lines = [
        "# glue_tasks: dense vs SqueezeBERT pattern on five GLUE tasks (compressed proxy)", "",
        f"Command: `{toolkit.command()}` (from the repository root; GLUE from `GLUE_DIR`, default `../shared/glue`; "
        "`--render` rewrites this report from scores.csv, latency.csv and teachers.csv)", "",
        f"Machine, latency: {d['machine']}. Machine, scores: {'; '.join(machines)} (code "
        f"{', '.join(sorted({r['code'] for r in stored})) or 'this checkout'}; "
        f"{sum(float(r['seconds']) for r in stored) / 60:.0f} min of scoring in scores.csv; the first run of a task on a machine "
        "without its cached teacher includes the teacher's fine-tune).", "",
        "**Set-up (ours)**: per task, the compressed proxy (`proxy_setup=pretrained proxy=compressed`, "
        "conf/proxy/compressed.yaml, its default budget): the teacher is `all-MiniLM-L6-v2` fine-tuned on the task's "
        "train split minus its held-out rows (one per task, cached); each pattern is compressed "
        f"from it at MiniLM-L6 dims (hidden {ps.scale.hidden}, {ps.scale.layers} layers, FFN {ps.scale.intermediate}: "
        f"channel permutation, least-squares refit, {p.distill_steps} steps of hidden-state distillation) and fine-tuned "
        f"{p.steps} steps with the teacher's logits. Per task (conf/task/<task>.yaml: max length in tokens, a pair's "
        "two texts together; held-out train rows; the teacher's fine-tune steps; the share of dev inputs the max length "
        "cuts): " + "; ".join(f"{get_task(t).dir_name} {v['max_len']} tokens ({v['dev_over_max_len']:.1f}% of dev cut), "
                              f"{v['heldout_rows']:,} rows, {v['teacher_steps']:,} steps" for t, v in per_task.items())
        + ". Proxy seeds "
        f"{seeds}, the same for both patterns (common random numbers): gaps are paired by seed. Scores: GLUE's metric on "
        "the **dev** split x100 (CoLA MCC, MRPC F1, STS-B Pearson, else accuracy), the verdict's metric; the held-out "
        "rows' metric beside it. Beside them (teachers.csv): the task teacher's dev metric, the level the designs are healed "
        "toward, and the best constant prediction's (the majority class; 0 for MCC and Pearson): a task whose dense design "
        "is at the constant's level was not learned by the proxy, and its gap decides nothing.", "",
        "**Power**: per task, the paired noise is the residual of design + seed over its 2 designs x "
        f"{len(args.seeds)} seeds ({len(args.seeds) - 1} dof); MDE = 2 standard errors of the paired gap. A task's verdict "
        "is on the sign of the paper's gap (SqueezeBERT below BERT-base, RTE above): *reproduced* when our gap has it and "
        "exceeds the MDE, *contradicted* when the opposite does, else *not reproduced*.", "",
        f"**Tasks the proxy learned**: a task counts when its teacher's dev metric beats the best constant prediction's "
        f"by more than {LEARNED_MDES}x the task's MDE; on any other task every design sits near the constant whatever "
        f"its groups, so its gap is marked *{UNDECIDABLE}* and the overall verdict leaves it out.", "",
        "**Paper**: GLUE **test** set. SqueezeBERT pretrained from scratch with its grouped layers (MLM + SOP, 62k LAMB "
        "steps at batch 8192) and fine-tuned per task; scores as listed for the paper on Papers with Code. BERT-base: "
        "Devlin et al. (2019), Table 1.", "",
        f"## Verdict: {overall(rows)}", "",
        f"Over {', '.join(r['task'] for r in rows if r['task'] not in left_out(rows)) or 'no task'}; left out: "
        + (", ".join(f"{r['task']} ({'not learned' if r['verdict'] == UNDECIDABLE else 'no paper number'})"
                     for r in rows if r["task"] in left_out(rows)) or "none") + ".", "",
        *md_table(shown, {
            "task": "task", "metric": "metric", "constant_dev": "constant prediction (dev)", "teacher_dev": "ours teacher (dev)",
            "learned": "learned",
            "dense": "ours dense (dev)", "squeezebert": "ours SqueezeBERT (dev)",
            "gap": "ours: SQ - dense", "verdict": "verdict", "heldout_gap": "held-out rows: SQ - dense",
            "paper_squeezebert_test": "paper SqueezeBERT (test)", "paper_bert_base_test": "paper BERT-base (test)",
            "paper_gap": "paper: SQ - BERT-base", "gap_minus_paper": "ours - paper's gap"}), "",
        "## The dense reference: the teacher itself", "",
        "The proxy heals and fine-tunes every design, dense too (it starts as the task teacher). Per task, the healed "
        "dense design's dev metric beside the teacher's own (the model a user already has), and the task's verdict with "
        "dense scored as the teacher itself (the same value for every seed):", "",
        *md_table([{"task": r["task"], **r["dense_as_teacher"], "own": r["verdict"]} for r in rows], {
            "task": "task", "teacher_dev_points": "teacher (dev)", "healed_dense_dev_points": "healed dense (dev)",
            "healed_minus_teacher_points": "healed - teacher", "verdict": "verdict, dense = teacher",
            "own": "verdict, dense healed"}), "",
        (f"Mean gap over the {len(both)} tasks with a paper number: ours {statistics.fmean(r['gap'] for r in both):+.1f}, "
         f"the paper's {statistics.fmean(r['paper_gap'] for r in both):+.1f} points.") if both else "", "",
        f"## Latency (target scale, BERT-base dims; batch {cfg.batch}, seq {cfg.seq_len}, {cfg.latency.threads} thread(s), "
        f"{args.rounds} interleaved rounds)", "",
        f"Dense {d['median_ms']:.1f} ms, SqueezeBERT pattern {s['median_ms']:.1f} ms: **{s['speedup']:.2f}x**.", "",
        "## Per design and seed", "",
        *md_table(design_rows, {"design": "task, design", "dev_mean": "dev (mean)", "dev_sd": "dev sd",
                                        "heldout_mean": "held-out (mean)", "heldout_sd": "held-out sd",
                                        "score_mean": "score x100", "seconds_mean": "s per run"}), "",
    ]
    for task in tasks:
        n = toolkit.noise(scores[task], "dev")
        lines.append(f"- {get_task(task).dir_name}: paired seed sd of the dev metric {n.sd:.2f} points ({n.dof} dof)")
    task = check["task"]
    word = next((r["verdict"] for r in rows if r["task"] == get_task(task).dir_name), "not scored")
    return lines + ["", *toolkit.budget_lines(check, f"{word} ({get_task(task).dir_name})")]


def _number(v: float | str) -> str:
    return f"{v:.1f}" if v != "" else "—"


def figure(rows: list[dict]) -> go.Figure:
    fig = go.Figure()
    fig.add_bar(x=[r["task"] for r in rows], y=[r["gap"] for r in rows], name="ours: SQ - dense (dev; bars: +- MDE)",
                error_y=dict(type="data", array=[r["gap_mde"] for r in rows]))
    fig.add_bar(x=[r["task"] for r in rows], y=[r["paper_gap"] if r["paper_gap"] != "" else None for r in rows],
                name="paper: SQ - BERT-base (test)")
    fig.update_layout(title="GLUE: the SqueezeBERT pattern's gap to dense (ours: compressed proxy, dev; paper: pretrained, test)",
                      yaxis_title="points (GLUE metric x100)", barmode="group")
    return fig


def main() -> None:
    ap = toolkit.parser(__doc__)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    args = toolkit.parse(ap)
    tasks = list(QUICK_TASKS) if args.quick else args.tasks
    if args.scores_only:
        for task in tasks:
            toolkit.stored_scores(names(task), args, HERE, task=task)
        task = tasks[0] if args.quick else BUDGET_TASK  # and the verdict's check at 4x the budget
        toolkit.stored_scores(names(task), toolkit.budget_args(args), HERE, task=task, budget=toolkit.BUDGET_CHECK)
        return
    latency = toolkit.timed(DESIGNS, args, HERE)  # first, on a quiet machine
    scores, design_rows = {}, []
    for task in tasks:
        scores[task] = toolkit.stored_scores(names(task), args, HERE, task=task)
        design_rows += toolkit.rows(names(task), scores[task], {n: latency[n.split()[1]] for n in names(task)},
                                    toolkit.costs(names(task), args))
    teacher = teachers(tasks, args)
    rows = table(tasks, scores, teacher)
    for r, task in zip(rows, tasks):  # dense scored as the teacher itself (teachers.csv, x100): the recipe's cost
        t, n = teacher.get(task), len(args.seeds)
        as_t = toolkit.Scores(tuple(args.seeds), (float(t["heldout"]) / 100,) * n, (float(t["dev"]) / 100,) * n,
                              (0.0,) * n) if t else None
        r["dense_as_teacher"] = toolkit.dense_as_teacher(scores[task], f"{task} dense", as_t,
                                                         lambda s, task=task: budget_verdict(task)(s)[0], which="dev",
                                                         task=task)
        if t and r["verdict"] in (UNDECIDABLE, "no paper number"):  # the task decides nothing either way
            r["dense_as_teacher"]["verdict"] = r["verdict"]
    task = tasks[0] if args.quick else BUDGET_TASK
    check = {"task": task, **toolkit.at_budget(names(task), args, HERE, budget_verdict(task), task=task, which="dev")}
    per_task = settings(tasks, args)
    decided = [r for r in rows if r["task"] not in left_out(rows)] or rows
    summary = {"verdict": overall(rows), "mde_points": max(r["gap_mde"] for r in decided), "metric": "dev, GLUE's metric per task",
               "tasks_left_out": left_out(rows), "learned_rule": f"teacher dev - constant dev > {LEARNED_MDES} x the task's MDE",
               "seeds": list(args.seeds), "proxy": "proxy_setup=pretrained proxy=compressed, one teacher per task",
               "claim": "SqueezeBERT's GLUE scores are close to BERT-base's (the sign of the paper's per-task gap)",
               "tasks": {r["task"]: {k: r[k] for k in ("gap", "gap_mde", "learned", "verdict", "paper_gap", "teacher_dev",
                                                    "constant_dev", "dense_as_teacher")}
                         for r in rows},
               "speedup": latency["squeezebert"]["speedup"], "latency_machine": latency["dense"]["machine"],
               "per_task_settings": per_task, "verdict_at_4x": check}
    toolkit.write(HERE, args, rows, report(args, tasks, rows, scores, latency, design_rows, check, per_task), figure(rows), "glue_tasks.png",
                  summary=summary, extra={"designs.csv": csv_text(design_rows)})


if __name__ == "__main__":
    main()

"""The confirmation's band pick, compared on the same searches (issue 34).

``search.confirm_pick=best_score`` (the band's best design by the search's score) sits at each
band's slow edge, since the score rises with latency: in the runs of ``run.py`` the fastest band's
pick was 2.3x where the search reached 2.6-3.0x. ``front_fastest`` (the band's fastest design on
the search front) is the other rule. Both are compared on one search each: the named run's folder
is copied to ``rechosen/<run>/`` and README's main command resumed there with
``search.confirm_pick=front_fastest``. The search is finished, so no design is scored again; the
new rule's picks are confirmed (2 paired seeds), the confirmations the run already made are
reused, and the end re-measures the confirmed designs together. From that one re-measurement and
its confirmed rows, per run: the front coverage and widest speedup step of each rule's designs
(``confirm.choose`` on the study, each rule alone) and of their union (both rules: what
confirming more would buy).

    python experiments/search_recovers_squeezebert/rechoose.py --only seed0 seed0-cached   # ~23 min a run on 2 cores
    python experiments/search_recovers_squeezebert/rechoose.py --render                    # rechoose.md, rechoose.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

import optuna

from arch_search.measure.latency import Env
from arch_search.study.confirm import PICKS, SUFFIX, choose
from arch_search.study.record import records
from experiments import toolkit

_spec = importlib.util.spec_from_file_location("search_recovers_run", Path(__file__).resolve().parent / "run.py")
recovers = importlib.util.module_from_spec(_spec)  # this folder's run.py: the runs, the coverage
_spec.loader.exec_module(recovers)

HERE = recovers.HERE
OUT = HERE / "rechosen"


def rechoose(name: str) -> float:
    """``name``'s run copied into ``OUT/name`` (its weights left out) and resumed there with
    the other pick; returns seconds."""
    src, dst = HERE / name, OUT / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("weights", "figures", "log.txt", "wall_seconds.txt"))
    cmd = recovers.command(name, dst, recovers.CACHE) + ["search.confirm_pick=front_fastest"]
    seconds = toolkit.run_logged(cmd, dst, toolkit.data_env())
    shutil.rmtree(dst / "weights", ignore_errors=True)
    (dst / "wall_seconds.txt").write_text(f"{seconds:.0f}\n")
    (dst / "machine.txt").write_text(f"{Env.current(threads=1)}\n")
    return seconds


def picks(run_dir: Path, pick: str) -> set[int]:
    """The trial numbers ``confirm.choose`` takes with ``pick`` from the run's search study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{run_dir / 'study.db'}"
    name = next(s.study_name for s in optuna.get_all_study_summaries(storage) if not s.study_name.endswith(SUFFIX))
    return {r.number for r in choose(records(optuna.load_study(study_name=name, storage=storage).trials), bands=4, pick=pick)}


def analyse(name: str) -> dict:
    run_dir = OUT / name
    rows = recovers.read_csv(run_dir / "confirmed.csv")
    ref = recovers.reference_front()
    out = {}
    for pick in PICKS:
        chosen = picks(run_dir, pick)
        out[pick] = {"designs": len(chosen), **recovers.front_coverage([r for r in rows if int(r["trial"]) in chosen], ref)}
    out["union"] = {"designs": len(rows), **recovers.front_coverage(rows, ref)}
    out["minutes"] = round(float((run_dir / "wall_seconds.txt").read_text()) / 60, 1)
    out["machine"] = (run_dir / "machine.txt").read_text().strip()
    return out


def render(results: dict[str, dict]) -> str:
    lines = ["# The confirmation's band pick on the same searches", "",
             "Command: `python experiments/search_recovers_squeezebert/rechoose.py --only <run>`: the run's folder copied "
             "to `rechosen/<run>/` and README's main command resumed there with `search.confirm_pick=front_fastest` "
             "(no design searched again; old confirmations reused; one re-measurement at the end for all). "
             "Each rule's designs are what `confirm.choose` takes from the same study; coverage as in results.md "
             "(targets: front coverage >= 0.95, widest step <= 1.35).", ""]
    table = [{"run": f"`{name}`", "rule": rule, **r[rule],
              "widest_speedup_step": f"{r[rule]['widest_speedup_step']}x"} for name, r in results.items()
             for rule in (*PICKS, "union")]
    lines += recovers.md_table(table, {"run": "run", "rule": "rule", "designs": "designs",
                                       "confirmed_front_speedups": "confirmed front speedups",
                                       "widest_speedup_step": "widest step", "front_coverage": "front coverage"})
    lines += ["", "Resumed runs' wall time (the new picks' confirmations and the re-measurement): "
              + ", ".join(f"`{n}` {r['minutes']} min" for n, r in results.items())
              + f". Machine: {next(iter(results.values()))['machine']}." if results else "", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", choices=list(recovers.RUNS), default=[], help="runs to resume with the other pick")
    ap.add_argument("--render", action="store_true", help="only rechoose.md and rechoose.json from rechosen/")
    args = ap.parse_args()
    if not args.render:
        for name in args.only:
            print(f"{name}: {rechoose(name) / 60:.1f} min", flush=True)
    results = {n: analyse(n) for n in recovers.RUNS if (OUT / n / "wall_seconds.txt").is_file()}
    text = render(results)
    (HERE / "rechoose.md").write_text(text + "\n")
    (HERE / "rechoose.json").write_text(json.dumps(results, indent=2) + "\n")
    print(text)


if __name__ == "__main__":
    main()

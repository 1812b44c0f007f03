"""arch_search.app.figures: the dense reference's latency figure only for studies that measured
it (and on the page), and a study from before the score rename as ``StudyData``. (The report's
page and PNGs are in test_report.py; its synthetic studies are made there.)"""

from __future__ import annotations

import optuna
import pytest

from arch_search.app.figures import StudyData, fig_reference_latency
from arch_search.app.report import write_report
from tests.test_report import make_study, synthetic_trials


def test_reference_latency_figure_only_for_studies_that_measured_it(tmp_path):
    trials = synthetic_trials(12)
    for t in trials:
        t.set_user_attr("reference_ms", 200.0 + 0.5 * t.number)
        t.set_user_attr("latency_raw_ms", 1.1 * t.values[1])
        t.set_user_attr("latency_drift", (200.0 + 0.5 * t.number) / 201.0)
    study = make_study(f"sqlite:///{tmp_path}/drift.db", trials)
    study.set_user_attr("latency_anchor_ms", 201.0)
    fig = fig_reference_latency(StudyData.of(study))
    assert list(fig.data[0].x) == list(range(12)) and list(fig.data[0].y) == [200.0 + 0.5 * n for n in range(12)]
    assert fig.layout.shapes[0].y0 == fig.layout.shapes[0].y1 == 201.0  # the anchor
    assert "scaled by anchor / reference_ms" in fig.layout.title.text
    page = write_report(f"sqlite:///{tmp_path}/drift.db", out=tmp_path / "drift", png=False).html.read_text()
    assert 'id="reference_latency"' in page

    old = make_study(f"sqlite:///{tmp_path}/old.db", synthetic_trials(12))
    assert fig_reference_latency(StudyData.of(old)) is None
    assert 'id="reference_latency"' not in write_report(f"sqlite:///{tmp_path}/old.db", out=tmp_path / "old", png=False).html.read_text()


def test_a_study_from_before_the_score_rename_still_loads_and_reports(tmp_path):
    """The committed seed0 run from before issue 34 (its study named objective 0 ``proxy_accuracy``, its CSVs used
    that column) loads today: records have a score, the report labels it by the proxy's metric
    (a log-likelihood, not an accuracy), and the old CSV columns read under today's names."""
    import shutil

    import csv
    from pathlib import Path

    from arch_search.study.run_tables import with_current_names

    run = Path(__file__).resolve().parents[1] / "experiments" / "search_recovers_squeezebert" / "before_issue34" / "seed0"
    shutil.copy(run / "study.db", tmp_path / "study.db")  # a copy: loading must not touch the committed file
    study = optuna.load_study(study_name=optuna.get_all_study_names(f"sqlite:///{tmp_path / 'study.db'}")[0],
                              storage=f"sqlite:///{tmp_path / 'study.db'}")
    assert study.metric_names == ["proxy_accuracy", "latency_ms"]
    d = StudyData.of(study)
    assert len(d.trials) == 72 and all(r.score is not None for r in d.trials)  # 64 designs and 8 repeats
    assert d.score_name == "proxy score: calibrated gold log-likelihood"  # the supernet's
    with open(run / "trials.csv", newline="") as f:
        old = list(csv.DictReader(f))
    assert "proxy_accuracy" in old[0]
    new = [with_current_names(r) for r in old]
    assert "score" in new[0] and "proxy_accuracy" not in new[0]
    by_number = {r.number: r.score for r in d.trials}
    assert len(new) == 72 and all(float(r["score"]) == pytest.approx(by_number[int(r["trial"])], abs=1e-4) for r in new)

"""arch_search.tables: rows as CSV and Markdown text."""

import csv

from arch_search.tables import csv_text, md_table, write_csv


def test_csv_text_takes_its_header_from_the_first_row():
    rows = [{"design": "dense", "score": 0.9}, {"design": "g4, with, commas", "score": ""}]
    assert csv_text(rows) == 'design,score\ndense,0.9\n"g4, with, commas",\n'
    assert csv_text([]) == ""


def test_write_csv_reads_back(tmp_path):
    rows = [{"trial": 1, "ms": 2.5}, {"trial": 2, "ms": 3.0}]
    write_csv(tmp_path / "rows.csv", rows)
    with open(tmp_path / "rows.csv", newline="") as f:
        assert list(csv.DictReader(f)) == [{"trial": "1", "ms": "2.5"}, {"trial": "2", "ms": "3.0"}]


def test_md_table_shows_the_named_columns_in_order():
    rows = [{"a": 1, "b": 2.5, "c": "x"}]
    assert md_table(rows, {"b": "B (ms)", "a": "A"}) == ["| B (ms) | A |", "| --- | --- |", "| 2.5 | 1 |"]
    assert md_table([], {"a": "A"}) == ["| A |", "| --- |"]

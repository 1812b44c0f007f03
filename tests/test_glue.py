"""GLUE reading: exact row counts and rows of ../shared/glue, error messages, and the HF path
(with ``datasets.load_dataset`` faked). The metrics are in test_metrics.py."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import datasets
import pytest

from arch_search.tasks.glue import TASKS, GlueDataError, GlueSplit, get_task, load_glue
from tests.conftest import SHARED

ROWS = {  # (task, split): rows, as in ../shared/glue/README.md
    ("sst2", "train"): 67_349,
    ("sst2", "validation"): 872,
    ("mrpc", "train"): 3_668,
    ("mrpc", "validation"): 408,
    ("rte", "train"): 2_490,
    ("rte", "validation"): 277,
    ("cola", "train"): 8_551,
    ("cola", "validation"): 1_043,
    ("stsb", "train"): 5_749,
    ("stsb", "validation"): 1_500,
    ("wnli", "train"): 635,
    ("wnli", "validation"): 71,
    ("qnli", "validation"): 5_463,
}


@pytest.fixture(scope="module")
def glue_dir() -> Path:
    path = SHARED / "glue"
    assert (path / "SST-2" / "train.tsv").is_file(), f"GLUE data missing at {path} (set ARCH_SEARCH_SHARED)"
    return path


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch):
    """No test reaches the Hub: a test that means to read from HF fakes ``load_dataset`` itself."""

    def refuse(*args, **kwargs):
        raise AssertionError("test tried to reach the Hugging Face Hub")

    monkeypatch.setattr(datasets, "load_dataset", refuse)


@pytest.fixture
def no_glue_dir(monkeypatch):
    monkeypatch.delenv("GLUE_DIR", raising=False)


def write_tsv(folder: Path, task_dir: str, name: str, text: str) -> Path:
    path = folder / task_dir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---- the tasks table -----------------------------------------------------------------------


def test_tasks_table():
    assert list(TASKS) == ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"]
    assert {n for n, t in TASKS.items() if not t.is_pair} == {"cola", "sst2"}
    assert [n for n, t in TASKS.items() if t.is_regression] == ["stsb"]
    assert {t.name: t.num_labels for t in TASKS.values() if t.num_labels != 2} == {"stsb": 1, "mnli": 3}
    assert {t.name: t.metric for t in TASKS.values() if t.metric != "accuracy"} == {
        "cola": "matthews_correlation", "stsb": "pearson", "mrpc": "f1", "qqp": "f1",
    }
    assert [n for n, t in TASKS.items() if not t.has_header] == ["cola"]


@pytest.mark.parametrize("name", ["sst2", "SST2", "SST-2", "sst-2", "STS-B", "CoLA"])
def test_task_names(name):
    assert get_task(name).name == name.lower().replace("-", "")


def test_unknown_task():
    with pytest.raises(ValueError, match=r"unknown GLUE task 'squad'.*'sst2'.*'mnli'"):
        load_glue("squad", "train", data_dir="unused")


# ---- reading ../shared/glue ----------------------------------------------------------------


@pytest.mark.parametrize(("task", "split"), list(ROWS))
@pytest.mark.shared
def test_row_counts(glue_dir, task, split):
    data = load_glue(task, split, data_dir=glue_dir)
    assert isinstance(data, GlueSplit)
    assert (data.task.name, data.split) == (task, split)
    assert len(data) == len(data.text_a) == len(data.labels) == ROWS[task, split]
    assert data.source == str(glue_dir / data.task.dir_name / ("train.tsv" if split == "train" else "dev.tsv"))
    assert (data.text_b is None) == (task in ("sst2", "cola"))
    if data.text_b is not None:
        assert len(data.text_b) == len(data)
    if task == "stsb":
        assert all(type(y) is float and 0.0 <= y <= 5.0 for y in data.labels)
    else:
        assert all(type(y) is int for y in data.labels)
        assert set(data.labels) == {0, 1}


@pytest.mark.shared
def test_glue_dir_env(glue_dir, monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(glue_dir))
    assert len(load_glue("rte", "validation")) == 277
    assert len(load_glue("SST-2", "train")) == 67_349
    assert load_glue("wnli", "dev").source == str(glue_dir / "WNLI" / "dev.tsv")


@pytest.mark.shared
def test_data_dir_beats_glue_dir(glue_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("GLUE_DIR", str(tmp_path))  # empty folder
    assert len(load_glue("wnli", "validation", data_dir=glue_dir)) == 71
    with pytest.raises(FileNotFoundError, match="GLUE_DIR"):
        load_glue("wnli", "validation")


@pytest.mark.shared
def test_exact_rows(glue_dir):
    # first data rows, read from the files by eye
    assert load_glue("sst2", "train", glue_dir)[0] == ("hide new secretions from the parental units ", None, 0)
    assert load_glue("cola", "dev", glue_dir)[0] == ("The sailors rode the breeze clear of the rocks.", None, 1)
    assert load_glue("stsb", "train", glue_dir)[0] == ("A plane is taking off.", "An air plane is taking off.", 5.0)
    rte = load_glue("rte", "dev", glue_dir)
    assert rte[0][1:] == ("Christopher Reeve had an accident.", 1)  # not_entailment -> 1
    assert rte[1][1:] == ("Bacteria is winning the war against antibiotics.", 0)  # entailment -> 0
    qnli = load_glue("qnli", "dev", glue_dir)
    assert [y for _, _, y in qnli.subset([0, 1])] == [0, 1]  # entailment, not_entailment
    assert qnli[0][0] == "What came into force after the new constitution was herald?"
    # STS-B train.tsv line 1005 (row 1003) writes its score as `4`
    assert load_glue("stsb", "train", glue_dir)[1003] == (
        "a bus driving in a street.", "Red double decker bus driving down street.", 4.0
    )


@pytest.mark.shared
def test_mrpc_bom_and_quotes(glue_dir):
    train = load_glue("mrpc", "train", glue_dir)
    assert train[0] == (
        'Amrozi accused his brother , whom he called " the witness " , of deliberately distorting his evidence .',
        'Referring to him as only " the witness " , Amrozi accused his brother of deliberately distorting his evidence .',
        1,
    )
    assert not any(s.startswith("\ufeff") for s in train.text_a[:1] + train.text_b[:1])
    # dev.tsv line 2: the second sentence starts with a lone `"`; CSV quoting would swallow the
    # tab, the newline and the next row (408 rows would read as 389)
    dev = load_glue("mrpc", "dev", glue_dir)
    assert dev[0][1] == '" The foodservice pie business does not fit our long-term growth strategy .'
    assert dev[1][0].startswith("Magnarelli said Racicot")
    assert dev[1][1] == (
        'His wife said he was " 100 percent behind George Bush " and looked forward to using his years of '
        "training in the war ."
    )


@pytest.mark.shared
def test_lone_quote_inside_text(glue_dir):
    # RTE dev.tsv line 8 (index 6) has one `"` in sentence1
    row = load_glue("rte", "validation", glue_dir)[6]
    assert 'cited irreconcilable differences" as the reason for the divorce' in row[0]
    assert row[1:] == ("Spears is to divorce from Kevin Federline.", 0)


@pytest.mark.shared
def test_subset(glue_dir):
    data = load_glue("rte", "validation", glue_dir)
    sub = data.subset([5, 0, 5])
    assert len(sub) == 3 and (sub.task, sub.split, sub.source) == (data.task, data.split, data.source)
    assert list(sub) == [data[5], data[0], data[5]]
    assert data.subset([]).text_b == ()
    assert load_glue("sst2", "dev", glue_dir).subset([1]).text_b is None


def _phrases(*rows: str) -> GlueSplit:
    return GlueSplit(get_task("sst2"), "train", tuple(rows), None, tuple(i % 2 for i in range(len(rows))), "test")


def test_heldout_whole_sentences_and_their_spans_leave_train():
    # three sentences ("e f g" twice) and their sub-phrases
    data = _phrases("a b c d", "a b", "c d", "b c", "e f g", "e f", "g", "e f g", "x y", "x")
    for seed in range(6):
        held, rest = data.hold_out(1, seed)
        (sentence,) = held.text_a
        assert sentence in {"a b c d", "e f g", "x y"}  # never a fragment
        spans = {"a b c d": 4, "e f g": 4, "x y": 2}[sentence]  # rows that are spans of it (copies included)
        assert len(rest) == len(data) - spans
        assert not any(r in sentence for r in rest.text_a)  # no held-out text left in train
    with pytest.raises(ValueError, match="below the 3 whole sentences"):
        data.hold_out(3, 0)


@pytest.mark.shared
def test_heldout_random_slice():
    data = load_glue("rte", "validation", SHARED / "glue")  # not phrase-structured: a plain random slice
    held, rest = data.hold_out(50, 0)
    assert (len(held), len(rest)) == (50, len(data) - 50)
    assert sorted(held.labels + rest.labels) == sorted(data.labels)
    assert data.hold_out(50, 0) == (held, rest) and data.hold_out(50, 1) != (held, rest)
    phrases = _phrases("a b c d", "a b", "c d")
    held, rest = phrases.hold_out(1, 0, disjoint=False)  # the old random slice, fragments allowed
    assert len(held) + len(rest) == 3
    with pytest.raises(ValueError, match=r"must be in \[0, 277\)"):
        data.hold_out(len(data), 0)
    with pytest.raises(ValueError, match="must be in"):
        data.hold_out(-1, 0)
    held, rest = data.hold_out(0, 0)  # nothing held out: fine-tune on all of train (glue_tasks)
    assert (len(held), rest) == (0, data)


@pytest.mark.shared
def test_sst2_heldout_counts(glue_dir):
    held, rest = load_glue("sst2", "train", glue_dir).hold_out(2000, 0)
    assert (len(held), len(rest)) == (2000, 46086)  # 67,349 rows; 19,263 are spans of held-out sentences
    assert not set(held.text_a) & set(rest.text_a)


# ---- splits and errors ---------------------------------------------------------------------


@pytest.mark.shared
def test_dev_alias(glue_dir):
    assert load_glue("wnli", "dev", glue_dir) == load_glue("wnli", "validation", glue_dir)
    assert load_glue("wnli", "DEV", glue_dir).split == "validation"


def test_mnli_splits(tmp_path):
    header = "\t".join(
        "index promptID pairID genre sentence1_binary_parse sentence2_binary_parse sentence1_parse "
        "sentence2_parse sentence1 sentence2 label1 label2 label3 label4 label5 gold_label".split()
    )
    row = "\t".join(["0", "1", "1e", "fiction", "(", "(", "(", "(", "The cat sat.", "A cat sat.",
                     "entailment", "neutral", "entailment", "entailment", "entailment", "entailment"])
    last = row.replace("entailment\tneutral\tentailment", "x\tx\tx").rsplit("\t", 1)[0] + "\tcontradiction"
    write_tsv(tmp_path, "MNLI", "dev_mismatched.tsv", f"{header}\n{row}\n{last}\n")
    data = load_glue("mnli", "dev_mismatched", tmp_path)
    assert data.split == "validation_mismatched"
    assert list(data) == [("The cat sat.", "A cat sat.", 0), ("The cat sat.", "A cat sat.", 2)]
    with pytest.raises(ValueError, match="'validation_matched' and 'validation_mismatched'"):
        load_glue("mnli", "validation", tmp_path)
    with pytest.raises(ValueError, match="'validation_matched' and 'validation_mismatched'"):
        load_glue("mnli", "dev", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"MNLI/dev_matched\.tsv"):
        load_glue("mnli", "validation_matched", tmp_path)


@pytest.mark.parametrize(("task", "split"), [("rte", "test"), ("rte", "validation_matched"), ("sst2", "valid")])
def test_unknown_split(task, split):
    with pytest.raises(ValueError, match=f"unknown split '{split}'"):
        load_glue(task, split, data_dir="unused")


@pytest.mark.shared
def test_missing_file_names_it_and_does_not_fall_back(glue_dir):
    with pytest.raises(FileNotFoundError, match=r"glue/QNLI/train\.tsv: no such file"):
        load_glue("qnli", "train", data_dir=glue_dir)


RTE_HEADER = "index\tsentence1\tsentence2\tlabel\n"


@pytest.mark.parametrize(
    ("task_dir", "text", "line", "reason"),
    [
        ("RTE", RTE_HEADER + "0\ta\tb\tentailment\n1\ta\tnot_entailment\n", 3, "expected 4 columns, got 3"),
        ("RTE", RTE_HEADER + "0\ta\tb\tentailment\n1\ta\tb\tc\tentailment\n", 3, "expected 4 columns, got 5"),
        ("RTE", RTE_HEADER + "0\ta\tb\tentailment\n\n", 3, "expected 4 columns, got 0"),
        ("RTE", RTE_HEADER + "0\ta\tb\tEntailment\n", 2, "unknown label 'Entailment'"),
        ("RTE", "index\tsentence1\tsentence2\tgold\n", 1, "header is not RTE's: expected 'label' in column 3, found 'gold'"),
        ("CoLA", "gj04\t1\t\tok.\ngj04\t2\t\tbad label.\n", 2, "unknown label '2'"),
        ("CoLA", "gj04\t1\t\tok.\ngj04\t1\tno mark column\n", 2, "expected 4 columns, got 3"),
        ("SST-2", "sentence\tlabel\nfine \t1\nno label \t\n", 3, "unknown label ''"),
        ("SST-2", "fine \t1\nno header \t0\n", 1, "header is not SST-2's: expected 'sentence' in column 0, found 'fine '"),
        ("STS-B", "\t".join("index genre filename year old_index source1 source2 sentence1 sentence2 score".split())
         + "\n" + "0\tg\tf\ty\to\tn\tn\ta\tb\t5.5\n", 2, "score '5.5' is not a number in \\[0, 5\\]"),
    ],
)
def test_malformed_rows(tmp_path, task_dir, text, line, reason):
    path = write_tsv(tmp_path, task_dir, "dev.tsv", text)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}:{line}: {reason}"):
        load_glue(task_dir, "dev", data_dir=tmp_path)


def test_empty_file(tmp_path):
    path = write_tsv(tmp_path, "RTE", "train.tsv", RTE_HEADER)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: no examples"):
        load_glue("rte", "train", tmp_path)


# ---- the HF path ---------------------------------------------------------------------------


def test_no_data_anywhere(no_glue_dir, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(GlueDataError) as info:
        load_glue("rte", "validation")
    message = str(info.value)
    assert "GLUE_DIR" in message and "task.data_dir" in message and "RTE/dev.tsv" in message
    assert "nyu-mll/glue" in message and "ConnectionError: Couldn't reach" in message


def test_no_data_without_datasets(no_glue_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    with pytest.raises(GlueDataError, match=r"GLUE_DIR.*nyu-mll/glue.*ModuleNotFoundError"):
        load_glue("sst2", "train")


def test_hf_columns(no_glue_dir, monkeypatch):
    calls = []
    tables = {
        "rte": {"sentence1": ["p0", "p1"], "sentence2": ["h0", "h1"], "label": [1, 0], "idx": [0, 1]},
        "stsb": {"sentence1": ["a"], "sentence2": ["b"], "label": [3.8], "idx": [0]},
        "sst2": {"sentence": ["good ", "bad "], "label": [1, 0], "idx": [0, 1]},
        "mnli": {"premise": ["p"], "hypothesis": ["h"], "label": [2], "idx": [0]},
        "qqp": {"question1": ["q1"], "question2": ["q2"], "label": [1], "idx": [0]},
    }

    def fake_load_dataset(path, name, split):
        calls.append((path, name, split))
        return datasets.Dataset.from_dict(tables[name])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    rte = load_glue("RTE", "dev")
    assert (rte.split, rte.source, list(rte)) == ("validation", "hf:nyu-mll/glue", [("p0", "h0", 1), ("p1", "h1", 0)])
    stsb = load_glue("stsb", "train")
    assert list(stsb) == [("a", "b", 3.8)] and type(stsb.labels[0]) is float
    assert list(load_glue("sst2", "train")) == [("good ", None, 1), ("bad ", None, 0)]
    assert list(load_glue("mnli", "dev_matched")) == [("p", "h", 2)]
    assert list(load_glue("qqp", "validation")) == [("q1", "q2", 1)]
    assert calls == [
        ("nyu-mll/glue", "rte", "validation"),
        ("nyu-mll/glue", "stsb", "train"),
        ("nyu-mll/glue", "sst2", "train"),
        ("nyu-mll/glue", "mnli", "validation_matched"),
        ("nyu-mll/glue", "qqp", "validation"),
    ]


def test_hf_bad_label(no_glue_dir, monkeypatch):
    table = {"sentence1": ["p"], "sentence2": ["h"], "label": [-1], "idx": [0]}  # as in a test split
    monkeypatch.setattr(datasets, "load_dataset", lambda path, name, split: datasets.Dataset.from_dict(table))
    with pytest.raises(ValueError, match=r"label ids \[-1\] outside 0..1"):
        load_glue("rte", "train")


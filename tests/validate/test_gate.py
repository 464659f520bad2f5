"""The gate end to end: a clean dataset passes; each planted defect class is caught.

One planted dataset carries one defect per row (rows 0-21 of the train shard), a shard
with a wrong column type and a corrupt shard; it is validated once (module fixture) and
each test checks one defect class: the rule fails, the row is in quarantine with the
rule as a reason, and no row is lost.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from validate_helpers import answer, edit_rows, make_dataset, png, set_column

from miva.config import ValidateConfig
from miva.data.io import read_info, read_samples
from miva.validate import validate_dataset

TRAIN = "data/train-00000.parquet"


def _cfg(**kw) -> ValidateConfig:
    return ValidateConfig(**kw)


def _rule(report, name):
    return next(r for r in report.rules if r.name == name)


def _quarantine(out: Path) -> list[dict]:
    files = sorted((out / "quarantine" / "data").glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


# --------------------------------------------------------------------------- clean


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    samples = make_dataset(root / "ds")
    report = validate_dataset(root / "ds", root / "out", _cfg(), progress=False)
    return samples, report, root


def test_clean_dataset_passes(clean):
    samples, report, root = clean
    out = root / "out"
    assert report.passed, report.verdict_reasons
    assert [r.name for r in report.rules if not r.passed] == []
    assert report.rows_clean == len(samples) and report.rows_quarantined == 0
    assert _quarantine(out) == []
    # the clean output is a dataset in the contract with the same rows
    back = read_samples(out / "clean")
    assert sorted(s.id for s in back) == sorted(s.id for s in samples)
    assert read_info(out / "clean").digest == read_info(root / "ds").digest
    data = json.loads((out / "report.json").read_text())
    assert data["verdict"] == "pass" and data["rows"]["quarantined"] == 0
    assert {r["name"] for r in data["rules"]} >= {"ids_unique", "images_decode", "option_balance"}
    assert (out / "data_docs" / "index.html").exists()


# --------------------------------------------------------------------------- planted


def _plant(rows: list[dict]) -> None:
    r = rows
    r[1]["id"] = r[0]["id"]  # duplicated id (row 0 is kept)
    r[2]["question"] = None
    r[3]["task"] = "juggling"
    r[4]["answer_type"] = "essay"
    r[5].update(answer_type="choice", answer=answer("E"), choices=["a", "b", "c", "d"])
    r[6].update(answer_type="choice", answer=answer("red"), choices=["red", "blue"])
    r[7].update(answer_type="number", answer=answer("many"))
    r[8].update(answer_type="bbox", answer=answer([0, 0, 40, 20]), evidence=[])
    r[9].update(answer_type="bbox", answer=answer([20, 2, 10, 20]), evidence=[])
    r[10]["images"] = [{"bytes": png(10, k), "path": None} for k in range(7)]
    blob = r[11]["images"][0]["bytes"]
    r[11]["images"][0]["bytes"] = blob[: len(blob) // 2]  # truncated PNG
    r[12]["evidence"] = [{"image": 1, "bbox": [0.0, 0.0, 33.0, 10.0]}]
    r[13]["meta"] = json.dumps({"image_sizes": [[32, 32], [64, 64]]})
    r[14]["question"] = "Short?"
    r[15]["images"][0]["bytes"] = png(2000, 1)  # test row 0's first image
    r[17]["images"] = [dict(img) for img in r[16]["images"]]
    r[17]["question"] = r[16]["question"].upper() + "  !"  # same images, same words
    r[18].update(answer_type="image_index", answer=answer(5))
    r[19]["answer"] = "{not json"
    r[20]["split"] = None
    r[21]["meta"] = "{broken"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    ds = root / "ds"
    make_dataset(ds)
    edit_rows(ds, "train-00000.parquet", _plant)
    set_column(ds, "val-00000.parquet", "answer", pa.array(range(6), pa.int64()))
    (ds / "data" / "train-00099.parquet").write_bytes(b"PAR1 this is not parquet")
    report = validate_dataset(ds, root / "out", _cfg(), progress=False)
    return report, root / "out", _quarantine(root / "out")


CASES = {
    1: "ids_unique",
    2: "question_not_null",
    3: "task_known",
    4: "answer_type_known",
    5: "choice_answer_in_choices",
    6: "choice_answer_is_letter",
    7: "answer_matches_type",
    8: "answer_box_inside_width",
    9: "answer_box_x_ordered",
    10: "image_count",
    11: "images_decode",
    12: "evidence_in_bounds",
    13: "image_sizes_match",
    14: "question_length",
    15: "image_shared_between_splits",
    17: "near_duplicate_question",
    18: "answer_image_exists",
    19: "answer_json",
    20: "split_not_null",
    21: "row_parses",
}


@pytest.mark.parametrize("row,rule", sorted(CASES.items()))
def test_planted_defect_is_quarantined(planted, row, rule):
    report, _, quarantine = planted
    assert not _rule(report, rule).passed
    hit = [q for q in quarantine if q["source_file"] == TRAIN and q["source_row"] == row]
    assert len(hit) == 1, f"row {row} not quarantined"
    assert rule in {r.split(":")[0] for r in hit[0]["reasons"]}, hit[0]["reasons"]


def test_only_planted_rows_leave_the_train_shard(planted):
    _, out, quarantine = planted
    bad = sorted(q["source_row"] for q in quarantine if q["source_file"] == TRAIN)
    assert bad == sorted(CASES)
    # the rows a defect collides with are kept: id owner (0), near-duplicate original (16)
    clean_questions = {s.question for s in read_samples(out / "clean", "train")}
    assert len(clean_questions) == 30 - len(CASES)


def test_wrong_column_type_quarantines_the_shard_rows(planted):
    report, _, quarantine = planted
    val = [q for q in quarantine if q["source_file"] == "data/val-00000.parquet"]
    assert len(val) == 6
    assert all(any(r.startswith("column_types: answer") for r in q["reasons"]) for q in val)
    assert json.loads(val[0]["bad_columns"])["answer"] == "0"  # original value kept as text
    assert val[0]["images"][0]["bytes"]  # images kept as bytes
    assert _rule(report, "column_types").failed == 6


def test_corrupt_shard_is_named_and_fails_the_gate(planted):
    report, out, quarantine = planted
    rule = _rule(report, "shards_readable")
    assert not rule.passed and rule.severity == "critical"
    assert "train-00099.parquet" in rule.details[0]
    assert not report.passed and "critical rule shards_readable failed" in report.verdict_reasons
    entry = [q for q in quarantine if q["source_file"] == "data/train-00099.parquet"]
    assert len(entry) == 1 and entry[0]["source_row"] is None
    assert (out / "quarantine" / "unreadable" / "data" / "train-00099.parquet").exists()
    # not even a footer, but dataset.json counts 30 train rows and train-00000 holds them:
    # the broken file was an extra one, no listed row is lost
    assert report.rows_lost_unknown_shards == []
    assert report.rows_lost_by_manifest == {"train": 0}
    assert "rows lost: 0 (counted from dataset.json" in rule.details[0]


def test_rows_of_an_unreadable_shard_are_counted_from_the_manifest(tmp_path):
    """A listed shard destroyed beyond its footer: dataset.json says how many rows are gone."""
    make_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "data" / "val-00000.parquet").write_bytes(b"PAR1 garbage")
    report = validate_dataset(tmp_path / "ds", tmp_path / "out", _cfg(), progress=False)
    assert report.rows_lost_by_manifest == {"val": 6}
    assert report.rows_lost_on_disk == 6 and report.rows_lost_unknown_shards == []
    assert report.rows_total == 42 and report.rows_read == 36
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["rows"]["lost_on_disk"] == 6
    assert data["rows"]["lost_counted_from_manifest"] == {"val": 6}
    from miva.validate.report import summary

    assert "6 val rows lost in unreadable shards (counted from dataset.json)" in summary(report)


def test_no_row_is_lost(planted):
    report, out, quarantine = planted
    n_clean = len(read_samples(out / "clean"))
    readable = [q for q in quarantine if q["source_row"] is not None]
    assert report.rows_read == 42 == n_clean + len(readable)
    assert report.rows_clean == n_clean and report.rows_quarantined == len(readable)
    data = json.loads((out / "report.json").read_text())
    assert data["verdict"] == "fail"
    assert data["quarantine_by_rule"]["column_types"] == 6
    example = next(r for r in data["rules"] if r["name"] == "task_known")["examples"][0]
    assert example.endswith(f"({TRAIN}:3)")
    row3 = next(q for q in quarantine if q["source_file"] == TRAIN and q["source_row"] == 3)
    assert row3["reasons"] == [
        "task_known: task is a known family (or in validate.extra_tasks) (got task='juggling')"
    ]
    assert row3["task"] == "juggling" and row3["images"][0]["bytes"]  # the raw row is kept


# --------------------------------------------------------------------------- others


def test_empty_dataset_fails_with_clear_reason(tmp_path):
    make_dataset(tmp_path / "ds", 0, 0, 0)
    report = validate_dataset(tmp_path / "ds", tmp_path / "out", _cfg(), progress=False)
    rule = _rule(report, "dataset_not_empty")
    assert not rule.passed and "no rows" in rule.details[0]
    assert not report.passed
    assert (tmp_path / "out" / "report.json").exists()


def test_quarantine_fraction_threshold(tmp_path):
    make_dataset(tmp_path / "ds", 10, 0, 0)
    edit_rows(tmp_path / "ds", "train-00000.parquet", lambda r: r[0].update(task="juggling"))
    lenient = validate_dataset(
        tmp_path / "ds", tmp_path / "a", _cfg(max_quarantine_fraction=0.1), progress=False
    )
    strict = validate_dataset(
        tmp_path / "ds", tmp_path / "b", _cfg(max_quarantine_fraction=0.05), progress=False
    )
    assert lenient.passed  # 1 of 10 = 0.10 is not above 0.10
    assert not strict.passed and "quarantined fraction 0.100" in strict.verdict_reasons[0]


def test_answer_balance_is_a_split_level_warning_unless_critical(tmp_path):
    # 40 four-option questions all answered "A": share 1.0 > max(0.40, 0.25 + 0.10)
    make_dataset(tmp_path / "ds", 40, 0, 0)

    def all_a(rows):
        for r in rows:
            r.update(
                answer_type="choice", answer=answer("A"), choices=["w", "x", "y", "z"], evidence=[]
            )

    edit_rows(tmp_path / "ds", "train-00000.parquet", all_a)
    warn = validate_dataset(tmp_path / "ds", tmp_path / "a", _cfg(), progress=False)
    rule = _rule(warn, "option_balance")
    assert not rule.passed and rule.severity == "warning"
    assert "letter A answers 40/40 = 1.00 > limit 0.40" in rule.details[0]
    assert warn.passed and warn.rows_quarantined == 0  # split-level: no row is removed
    crit = validate_dataset(
        tmp_path / "ds",
        tmp_path / "b",
        _cfg(critical_rules=["shards_readable", "dataset_not_empty", "option_balance"]),
        progress=False,
        data_docs=False,
    )
    assert not crit.passed and _rule(crit, "option_balance").severity == "critical"


def test_missing_shard_file_is_named_and_fails_the_gate(tmp_path):
    make_dataset(tmp_path / "ds")
    (tmp_path / "ds" / "data" / "test-00000.parquet").unlink()
    report = validate_dataset(
        tmp_path / "ds", tmp_path / "out", _cfg(), progress=False, data_docs=False
    )
    rule = _rule(report, "manifest_matches")
    assert not rule.passed and rule.severity == "critical"
    assert rule.details == [
        "split test: dataset.json says 6 rows, data/test-*.parquet hold 0 "
        "(a shard file missing, truncated or added?)"
    ]
    assert not report.passed

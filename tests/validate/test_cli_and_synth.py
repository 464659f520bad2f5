"""`miva validate` from the command line, and a `miva synthesize` dataset through the gate."""

from __future__ import annotations

import json
import uuid

import pytest
from validate_helpers import edit_rows, make_dataset

from miva.cli import main
from miva.config import SynthesizeConfig, ValidateConfig
from miva.validate import validate_dataset


def test_cli_clean_dataset_exits_zero(tmp_path, capsys):
    make_dataset(tmp_path / "ds", 8, 2, 2)
    rc = main(
        [
            "validate",
            "--no-tracking",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "out"),
            "-q",
            "--no-docs",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "12 rows, 12 clean, 0 quarantined" in out and "verdict: PASS" in out
    assert json.loads((tmp_path / "out" / "report.json").read_text())["verdict"] == "pass"


def test_cli_failure_exits_4_with_a_short_message(tmp_path, capsys):
    make_dataset(tmp_path / "ds", 8, 2, 2)
    edit_rows(tmp_path / "ds", "train-00000.parquet", lambda r: r[2].update(task="juggling"))
    rc = main(
        [
            "validate",
            "--no-tracking",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "out"),
            "-q",
            "--no-docs",
            "--max-quarantine-fraction",
            "0",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 4
    assert "task_known: 1 failing" in captured.out and "train-00000.parquet:2" in captured.out
    assert "quarantined fraction 0.083 > validate.max_quarantine_fraction 0" in captured.err
    assert "Traceback" not in captured.err


def test_cli_missing_dataset_is_a_clear_error(tmp_path, capsys):
    rc = main(
        ["validate", "--no-tracking", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), "-q"]
    )
    assert rc == 2
    assert "no such dataset folder" in capsys.readouterr().err


def test_cli_rejects_unknown_critical_rule(tmp_path, capsys):
    make_dataset(tmp_path / "ds", 2, 0, 0)
    rc = main(
        [
            "validate",
            "--no-tracking",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "out"),
            "-q",
            "--set",
            "validate.critical_rules=[no_such_rule]",
        ]
    )
    assert rc == 2
    assert "unknown rule(s) ['no_such_rule']" in capsys.readouterr().err


def test_a_synth_dataset_passes(tmp_path):
    from miva.data.synth import build

    data = SynthesizeConfig(n=60, image_size=112, workers=1, seed=3)
    info = build.run_synth(data, tmp_path / "ds", progress=False)
    report = validate_dataset(tmp_path / "ds", tmp_path / "out", ValidateConfig(), progress=False)
    assert report.passed, report.verdict_reasons
    assert report.rows_clean == info.total and report.rows_quarantined == 0
    assert [r.name for r in report.rules if not r.passed] == []


@pytest.mark.integration
def test_s3_dataset_in_and_outputs_out(tmp_path, monkeypatch):
    """s3:// input and output against moto's S3 server on loopback (a real HTTP endpoint)."""
    from servers import DUMMY_AWS, MotoS3

    from miva import storage

    server = MotoS3().start()
    try:
        for key, value in DUMMY_AWS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.url)
        storage._CLIENTS.clear()
        bucket = f"v{uuid.uuid4().hex[:12]}"  # a fresh URI: localize caches by URI
        server.create_bucket(bucket)
        make_dataset(tmp_path / "ds", 6, 2, 2)
        storage.upload_dir(tmp_path / "ds", f"s3://{bucket}/ds")
        report = validate_dataset(
            f"s3://{bucket}/ds",
            f"s3://{bucket}/out",
            ValidateConfig(),
            progress=False,
            data_docs=False,
        )
        assert report.passed and report.rows_clean == 10
        data = json.loads(storage.read_text(f"s3://{bucket}/out/report.json"))
        assert data["verdict"] == "pass" and data["dataset"] == f"s3://{bucket}/ds"
        assert storage.exists(f"s3://{bucket}/out/clean/dataset.json")
    finally:
        storage._CLIENTS.clear()
        server.stop()


@pytest.mark.integration
def test_synth_checks_an_s3_destination_before_generating(tmp_path, monkeypatch):
    """A missing bucket or a dead endpoint fails at once, naming the destination; a
    writable one gets the dataset (moto's S3 server on loopback)."""
    import time

    from servers import DUMMY_AWS, MotoS3, free_port

    from miva import storage
    from miva.data.synth.build import run_synth
    from miva.storage import StorageError

    big = SynthesizeConfig(n=200_000, image_size=112, workers=1, seed=3)  # minutes if generated
    server = MotoS3().start()
    try:
        for key, value in DUMMY_AWS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.url)
        storage._CLIENTS.clear()
        t0 = time.monotonic()
        with pytest.raises(StorageError, match="s3://no-such-bucket/ds: bucket 'no-such-bucket'"):
            run_synth(big, "s3://no-such-bucket/ds", progress=False)
        assert time.monotonic() - t0 < 10
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
        storage._CLIENTS.clear()
        with pytest.raises(
            StorageError, match=r"cannot write to s3://any/ds \(endpoint http://127"
        ):
            run_synth(big, "s3://any/ds", progress=False)
        assert time.monotonic() - t0 < 60
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.url)
        storage._CLIENTS.clear()
        bucket = f"s{uuid.uuid4().hex[:12]}"
        server.create_bucket(bucket)
        small = SynthesizeConfig(n=12, image_size=112, workers=1, seed=3)
        info = run_synth(small, f"s3://{bucket}/ds", progress=False)
        assert info.total == 12 and storage.exists(f"s3://{bucket}/ds/dataset.json")
        assert not [f for f in storage.list_files(f"s3://{bucket}/ds") if "write-probe" in f]
    finally:
        storage._CLIENTS.clear()
        server.stop()

"""Registration, promotion, lineage and faults against real servers on loopback: an MLflow
tracking server on PostgreSQL with artifacts in an S3 bucket on moto's server (see
conftest.py), and `FailFirstNProxy` (a real HTTP server that answers 503 to the first N
requests) in front of it where faults are needed."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from PIL import Image
from servers import FailFirstNProxy, free_port

from miva.data.io import write_dataset
from miva.registry import registry as reg
from miva.registry.lock import LOCK_SUFFIX
from miva.registry.model_logging import Generator
from miva.registry.tracking import (
    TrackingError,
    experiment_id,
    log_dataset,
    pipeline_run,
    stage_run,
)

pytestmark = pytest.mark.integration

ACC = "eval/test/overall/accuracy"
FMT = "eval/test/overall/format"


def png(color: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, "PNG")
    return buf.getvalue()


def test_register_promote_load_generate(server_cfg, tiny_model, s3_server, tmp_path):
    name = server_cfg.registry.model_name
    dataset = tmp_path / "synth"
    info = write_dataset([], dataset, name="synth")
    report = tmp_path / "report.html"
    report.write_text("<html><body>eval report</body></html>")
    metrics = {ACC: 0.25, FMT: 0.9}

    with pipeline_run(server_cfg, kfp_run_id="kfp-run-42") as parent:
        with stage_run(server_cfg, "evaluate"):
            log_dataset(dataset, name="synth-test", context="eval")
            mlflow.log_metrics(metrics)
        result = reg.register_model(
            server_cfg, tiny_model, metrics, eval_digest="evalset-1", dataset=dataset, report=report
        )
    assert result.version == "1" and result.decision.first and result.champion == "1"

    client = MlflowClient()
    champion = client.get_model_version_by_alias(name, "champion")
    challenger = client.get_model_version_by_alias(name, "challenger")
    assert champion.version == challenger.version == "1"
    tags = champion.tags
    assert tags["miva.decision"] == "promoted (first model)"
    assert "no champion yet" in tags["miva.decision_reasons"]
    assert tags["miva.eval_digest"] == "evalset-1"
    assert tags["miva.dataset_digest"] == info.digest
    assert tags["miva.parent_run_id"] == parent
    assert tags["miva.config_hash"] == server_cfg.digest()
    assert float(tags[f"miva.metric.{ACC}"]) == 0.25
    assert champion.description.startswith("# Promotion decision")

    # Lineage: the parent run with its tags, two child runs, the dataset inputs.
    parent_run = client.get_run(parent)
    assert parent_run.data.tags["miva.kfp_run_id"] == "kfp-run-42"
    assert parent_run.data.tags["miva.config_hash"] == server_cfg.digest()
    assert parent_run.data.tags["miva.git_commit"]
    assert parent_run.info.status == "FINISHED"
    assert parent_run.data.params["registry.model_name"] == name
    children = client.search_runs(
        [experiment_id(server_cfg)], filter_string=f"tags.mlflow.parentRunId = '{parent}'"
    )
    by_stage = {r.data.tags["miva.stage"]: r for r in children}
    assert set(by_stage) == {"evaluate", "register"}
    inputs = by_stage["register"].inputs.dataset_inputs
    assert [i.dataset.digest for i in inputs] == [info.digest]
    assert by_stage["evaluate"].inputs.dataset_inputs[0].dataset.name == "synth-test"
    assert by_stage["register"].data.metrics[ACC] == 0.25
    files = {f.path for f in client.list_artifacts(result.run_id)}
    assert {"promotion.md", "report"} <= files

    # The artifacts really are in the S3 bucket behind the server.
    keys = [
        o["Key"]
        for page in s3_server.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket="miva-mlflow")
        for o in page.get("Contents", [])
    ]
    assert any(k.endswith("model.safetensors") for k in keys)
    assert any(k.endswith("promotion.md") for k in keys)

    # models:/<name>@champion loads and generates, the same as the folder it came from.
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    frame = pd.DataFrame(
        {"question": ["Which image is red?"], "images": [[png("red"), png("blue")]]}
    )
    answers = model.predict(frame)
    assert isinstance(answers, list) and len(answers) == 1 and isinstance(answers[0], str)
    direct = Generator(tiny_model).answer("Which image is red?", [png("red"), png("blue")])
    assert answers[0] == direct


def test_policy_accept_reject_and_manual_moves(server_cfg, tiny_model):
    server_cfg.registry.margin = 0.05
    server_cfg.registry.guards = {FMT: 0.05}
    name = server_cfg.registry.model_name

    def register(acc, fmt=0.9, digest="e1"):
        metrics = {ACC: acc} if fmt is None else {ACC: acc, FMT: fmt}
        return reg.register_model(server_cfg, tiny_model, metrics, eval_digest=digest)

    first = register(0.40)
    assert first.decision.first and first.champion == "1"
    # 0.50 - 0.40 = 0.10 >= margin 0.05; format 0.90 -> 0.88 drops 0.02 <= 0.05: accept.
    better = register(0.50, 0.88)
    assert better.decision.promote and better.champion == "2"
    # 0.52 - 0.50 = 0.02 < margin 0.05: reject.
    small = register(0.52, 0.90)
    assert not small.decision.promote and small.champion == "2"
    # +0.30 on accuracy but format 0.88 -> 0.70 drops 0.18 > 0.05: reject.
    guard = register(0.80, 0.70)
    assert not guard.decision.promote and "guard" in guard.decision.summary()
    # A different eval set: refuse, whatever the numbers.
    other = register(0.99, 0.99, digest="e2")
    assert not other.decision.promote and "eval set differs" in other.decision.summary()
    # Missing guard metric: refuse and say which.
    missing = register(0.99, None)
    assert not missing.decision.promote and FMT in missing.decision.summary()

    client = MlflowClient()
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_model_version_by_alias(name, "challenger").version == "6"
    assert client.get_model_version(name, "5").tags["miva.decision"] == "rejected"
    table = reg.show(server_cfg)
    assert "| 2 | champion |" in table and "| 6 | challenger | rejected |" in table

    assert reg.rollback(server_cfg) == "1"  # back to the previous champion
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    with pytest.raises(Exception, match="no earlier champion"):
        reg.rollback(server_cfg)
    reg.promote(server_cfg, "4")
    assert client.get_model_version_by_alias(name, "champion").version == "4"
    assert client.get_model_version(name, "4").tags["miva.decision"] == "promoted (manual)"


def test_racing_registrations_keep_aliases_consistent(server_cfg, tiny_model, tmp_path):
    name = server_cfg.registry.model_name
    reg.register_model(server_cfg, tiny_model, {ACC: 0.30}, eval_digest="e1")
    procs = []
    for acc in (0.60, 0.70):
        path = tmp_path / f"metrics-{acc}.json"
        path.write_text(json.dumps({ACC: acc, "eval/test/digest": "e1"}))
        cmd = [
            sys.executable,
            "-m",
            "miva.cli",
            "register",
            "--set",
            f"registry.model_name={name}",
            "--set",
            f"workdir={server_cfg.workdir}",
            "--set",
            "registry.experiment=miva-it",
            "--model",
            str(tiny_model),
            "--metrics",
            str(path),
        ]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = [p.communicate(timeout=240)[0].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs

    client = MlflowClient()
    versions = {mv.version: mv for mv in client.search_model_versions(f"name = '{name}'")}
    assert set(versions) == {"1", "2", "3"}  # no version lost
    best = next(v for v, mv in versions.items() if mv.tags.get(f"miva.metric.{ACC}") == "0.7")
    # Whichever decided first, the better one ends as champion: the later one compared
    # against the earlier one's result under the promotion lock.
    assert client.get_model_version_by_alias(name, "champion").version == best
    assert client.get_model_version_by_alias(name, "challenger").version in {"2", "3"}
    assert all("miva.decision" in mv.tags for mv in versions.values())
    assert not client.search_registered_models(f"name = '{name}{LOCK_SUFFIX}'")


def test_tracking_retries_through_server_failing_first_requests(
    server_cfg, mlflow_server, monkeypatch
):
    proxy = FailFirstNProxy(mlflow_server.url, n=2).start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        assert experiment_id(server_cfg)  # two 503s, then through
        assert proxy.failed == 2 and proxy.forwarded >= 1
    finally:
        proxy.stop()


def test_unreachable_tracking_server_is_one_clear_error(server_cfg, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    server_cfg.registry.http_backoff_factor = 1  # waits about 1 + 2 + 4 s in all
    start = time.monotonic()
    with pytest.raises(TrackingError, match=r"after 3 retries") as err:
        reg.show(server_cfg)
    assert url in str(err.value)
    assert time.monotonic() - start < 60


def test_interrupted_upload_is_never_half_registered(
    server_cfg, tiny_model, mlflow_server, monkeypatch
):
    name = server_cfg.registry.model_name
    proxy = FailFirstNProxy(
        mlflow_server.url,
        n=10_000,
        match=lambda method, path: method == "PUT" and path.endswith("model.safetensors"),
    ).start()
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        with pytest.raises(TrackingError, match="upload the model"):
            reg.register_model(server_cfg, tiny_model, {ACC: 0.5}, eval_digest="e1")
        assert proxy.failed > 0
        monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        assert MlflowClient().search_model_versions(f"name = '{name}'") == []
        # The upload is redone in full on the next attempt, which registers exactly once.
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.url)
        proxy.n = 0
        result = reg.register_model(server_cfg, tiny_model, {ACC: 0.5}, eval_digest="e1")
        assert result.version == "1" and result.champion == "1"
    finally:
        proxy.stop()
    assert os.environ.get("MIVA_PARENT_RUN_ID") is None

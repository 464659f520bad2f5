"""Serving the champion from the real MLflow server stack (PostgreSQL backend, artifacts
proxied to a moto S3 bucket): `miva serve models:/NAME@champion` answers the openai client,
each request leaves a trace linked to the version, and the KServe manifest rendered from
the registry validates offline and follows the champion on promotion."""

from __future__ import annotations

import base64
import io

import mlflow
import pytest
import torch
from mlflow import MlflowClient
from PIL import Image

from miva.registry import registry as reg
from tests.eval.trace_helpers import attachment
from tests.infra.conftest import load_script

torch.set_num_threads(1)
ACC = "eval/test/overall/accuracy"


def png_bytes(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (56, 56), color).save(buf, format="PNG")
    return buf.getvalue()


def test_serve_champion_traces_requests_and_deploys_on_promotion(server_cfg, tiny_model, tmp_path):
    from openai import OpenAI

    from miva.registry.deploy import render
    from miva.serve import build
    from miva.serve.app import BackgroundServer

    name = server_cfg.registry.model_name
    cfg = server_cfg.model_copy(deep=True)
    cfg.serve.trace_requests = True
    cfg.registry.deploy.on_promotion = True
    cfg.registry.deploy.output = str(tmp_path / "isvc.yaml")
    first = reg.register_model(cfg, tiny_model, {ACC: 0.25}, eval_digest="e1")
    assert first.champion == "1" and first.deployed == str(tmp_path / "isvc.yaml")
    assert "models:/" + name + "/1" in (tmp_path / "isvc.yaml").read_text()

    # miva serve models:/NAME@champion
    app, served = build(cfg, f"models:/{name}@champion")
    assert served.source.version == "1" and served.source.model_id
    server = BackgroundServer(app).start()
    try:
        client = OpenAI(base_url=server.url + "/v1", api_key="-", max_retries=0, timeout=300)
        models = client.models.list().data
        assert [m.id for m in models] == [name] and models[0].model_extra["miva_version"] == "1"
        image = png_bytes("red")
        url = "data:image/png;base64," + base64.b64encode(image).decode()
        resp = client.chat.completions.create(
            model=name,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What colour is it?"},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
        )
        assert isinstance(resp.choices[0].message.content, str)
    finally:
        server.stop()  # flushes the request traces

    exp = mlflow.get_experiment_by_name(cfg.registry.experiment)
    traces = mlflow.search_traces(
        experiment_ids=[exp.experiment_id],
        filter_string=f"tag.`miva.request_id` = '{resp.id}'",
        return_type="list",
    )
    assert len(traces) == 1
    trace = traces[0]
    assert trace.info.tags["miva.source"] == "serve"
    assert trace.info.tags["miva.model_version"] == "1"
    assert trace.info.trace_metadata["mlflow.modelId"] == served.source.model_id
    assert trace.info.trace_metadata["mlflow.trace.session"] == resp.id
    root = trace.data.spans[0]
    assert root.outputs["answer"] == resp.choices[0].message.content
    assert root.attributes["miva.timing"] == "measured"
    assert [s.span_type for s in trace.data.spans[1:]] == ["CHAT_MODEL"] * (
        len(trace.data.spans) - 1
    )
    # the request's image went to the S3 bucket behind the server as a trace attachment
    assert attachment(trace, root.inputs["images"][0]) == image

    # the manifest rendered from the registry validates offline
    check = load_script("infra/scripts/check_manifests.py", "miva_check_manifests_serving")
    manifest = render(cfg)
    doc = check.Document("rendered", 0, manifest)
    checker, problems = check.check_schema(doc, "1.33")
    assert problems == [] and "kubernetes-validate" in checker
    assert check.check_contract([doc], pods_only=True) == []
    assert manifest["spec"]["predictor"]["automountServiceAccountToken"] is False

    # a better model becomes champion: the manifest follows it
    second = reg.register_model(cfg, tiny_model, {ACC: 0.5}, eval_digest="e1")
    assert second.champion == "2" and second.deployed
    text = (tmp_path / "isvc.yaml").read_text()
    assert f"models:/{name}/2" in text and "miva.ai/model-version: '2'" in text
    # a worse one does not touch it
    third = reg.register_model(cfg, tiny_model, {ACC: 0.1}, eval_digest="e1")
    assert third.champion == "2" and third.deployed is None
    assert MlflowClient().get_model_version_by_alias(name, "champion").version == "2"


def test_unknown_registry_version_is_a_clear_error(server_cfg):
    from miva.errors import ConfigError
    from miva.serve.resolve import resolve_model

    with pytest.raises(ConfigError, match="no such registered model version"):
        resolve_model(f"models:/{server_cfg.registry.model_name}@champion", server_cfg)
    with pytest.raises(ConfigError, match="models:/NAME@ALIAS"):
        resolve_model("models:/a/b/c", server_cfg)

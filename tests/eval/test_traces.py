"""Trajectories as MLflow traces on the local SQLite store: the evaluate stage's run
records one trace per trajectory with model-turn and tool-call spans (crops attached),
and `register` tags them with the version it creates."""

from __future__ import annotations

import io
from pathlib import Path

import mlflow
import pytest
import torch
from PIL import Image

from miva.config import load_config
from tests.eval.trace_helpers import attachment, png, spans_by_name, tool_trajectories

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    from miva.agent.model import load_model, resolve

    folder = Path(resolve("tiny-random")).resolve()  # tests below chdir
    model, processor = load_model(str(folder))
    return folder, model, processor


@pytest.fixture
def local_cfg(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_TRACKING_URI", "MIVA_PARENT_RUN_ID", "KFP_RUN_ID"):
        monkeypatch.delenv(var, raising=False)
    return load_config("tiny-cpu", ["evaluate.trace_samples=2"])


def test_trace_of_one_trajectory_has_turn_and_tool_spans_with_crops(tiny, local_cfg):
    from miva.eval.traces import log_trajectory
    from miva.registry.tracking import configure
    from miva.serve.agent import make_request_sample

    _, _, processor = tiny
    configure(local_cfg)
    sample = make_request_sample("Which colour is the shape?", [png("red"), png("blue")])
    traj = tool_trajectories([sample], processor, local_cfg.agent)[0]
    assert [c.ok for c in traj.tool_calls] == [True, False] and traj.answer == "red"
    with mlflow.start_run() as run:
        trace_id = log_trajectory(
            traj, sample, start_ns=1_000, end_ns=9_000, tags={"miva.source": "test"}
        )
    mlflow.flush_trace_async_logging()
    trace = mlflow.get_trace(trace_id)
    assert trace.info.trace_metadata["mlflow.sourceRun"] == run.info.run_id
    assert trace.info.tags["miva.status"] == "ok" and trace.info.tags["miva.source"] == "test"
    spans = spans_by_name(trace)
    root = spans["miva-agent"][0]
    assert root.span_type == "AGENT" and root.outputs["answer"] == "red"
    assert [s.name for s in trace.data.spans] == [
        "miva-agent",
        "model turn 1",
        "tool zoom",
        "model turn 2",
        "tool zoom",
        "model turn 3",
    ]
    good, bad = spans["tool zoom"]
    assert good.span_type == "TOOL" and good.status.status_code == "OK"
    assert good.inputs == {"image": 1, "bbox": [0, 0, 24, 24]}
    assert bad.status.status_code == "ERROR" and "does not exist" in bad.outputs["result"]
    assert spans["model turn 3"][0].outputs["text"].startswith("<think>red</think><answer>")
    # the crop the zoom returned is attached, byte for byte the image the model saw
    crop = attachment(trace, good.outputs["images"][0])
    expected = io.BytesIO()
    traj.images[2].save(expected, format="PNG")
    assert crop == expected.getvalue()
    # the question's images are attached to the root span
    sent = attachment(trace, root.inputs["images"][1])
    assert Image.open(io.BytesIO(sent)).getpixel((0, 0)) == (0, 0, 255)
    # no measured turn times: spans laid out in order inside the rollout interval
    assert root.attributes["miva.timing"] == "spread"
    starts = [s.start_time_ns for s in trace.data.spans[1:]]
    assert starts == sorted(starts) and all(1_000 <= t <= 9_000 for t in starts)


def test_evaluation_records_traces_and_registration_links_them(tiny, local_cfg, tmp_path):
    from miva.data.io import write_dataset
    from miva.data.schema import Sample
    from miva.eval.runner import regroup
    from miva.registry import registry as reg
    from miva.registry.tracking import pipeline_run
    from miva.stages import evaluate

    folder, _, processor = tiny
    samples = [
        Sample(
            task="attribute",
            images=[png(c), png("white")],
            question=f"What colour is the shape in image 1? ({i})",
            answer_type="text",
            answer=c,
            split="test",
        )
        for i, c in enumerate(["red", "green", "blue"])
    ]
    write_dataset(samples, tmp_path / "ds")

    def factory(model_name, cfg, greedy):
        def generate(batch, es, n):
            return regroup(tool_trajectories(list(batch), processor, cfg.agent), len(batch), 1)

        return generate

    with pipeline_run(local_cfg) as parent:
        evaluate(
            local_cfg, "tiny", tmp_path / "eval", dataset=tmp_path / "ds", generate_factory=factory
        )
        run = mlflow.last_active_run()  # the evaluate stage's run
        assert run.data.tags["miva.stage"] == "evaluate"
        eval_run, experiment = run.info.run_id, run.info.experiment_id
        registration = reg.register_model(
            local_cfg, folder, {"eval/test/overall/accuracy": 0.5}, eval_digest="d1"
        )
    traces = mlflow.search_traces(experiment_ids=[experiment], run_id=eval_run, return_type="list")
    assert len(traces) == 2  # evaluate.trace_samples per set
    for trace in traces:
        info = trace.info
        assert info.tags["miva.source"] == "eval" and info.tags["miva.set"] == "test"
        assert info.tags["miva.parent_run_id"] == parent
        assert info.trace_metadata["mlflow.trace.session"] == f"{eval_run}/test"
        # linked by `register` to the version it created
        assert info.tags["miva.model_name"] == registration.name
        assert info.tags["miva.model_version"] == registration.version
        assert info.tags.get("miva.model_id")
        tools = [s for s in trace.data.spans if s.span_type == "TOOL"]
        assert [s.status.status_code for s in tools] == ["OK", "ERROR"]

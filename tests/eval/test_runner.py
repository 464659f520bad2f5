"""The eval runner on recorded trajectories (scripted answers, no model): metrics with
baseline deltas, agent metrics, pass@k, predictions.parquet and the HTML report."""

import json

import pandas as pd
import pytest

from miva.agent.coords import Frame
from miva.agent.trajectory import ToolCall, Trajectory, Turn
from miva.config import load_config
from miva.data.io import write_dataset
from miva.data.schema import Evidence, Sample
from miva.eval.outputs import write_outputs
from miva.eval.runner import run_eval
from tests.eval.native import png
from tests.eval.test_mig_bench import _folder as mig_folder


def _dataset(tmp_path):
    samples = [
        Sample(
            task="selection",
            images=[png(color="red"), png(color="blue")],
            question="Which image is red?",
            answer_type="image_index",
            answer=1,
            split="test",
        ),
        Sample(
            task="selection",
            images=[png(color="green"), png(color="red")],
            question="Which image is red?",
            answer_type="image_index",
            answer=2,
            split="test",
        ),
        Sample(
            task="grounding",
            images=[png(64, 64), png(64, 64, "blue")],
            question="Box the square in image 2.",
            answer_type="bbox",
            answer=[0, 0, 32, 32],
            evidence=[Evidence(2, (0, 0, 32, 32))],
            split="test",
        ),
    ]
    write_dataset(samples, tmp_path / "ds")
    return tmp_path / "ds", samples


def _traj(sample, answer, tools=(), turns=1, tokens=10):
    frames = [
        Frame(*sample.image(k).size, *sample.image(k).size)
        for k in range(1, len(sample.images) + 1)
    ]
    calls = [
        ToolCall(
            turn=i,
            name=t,
            arguments={"image": 1},
            ok=True,
            result_text="",
            region={"image": 1, "bbox": [0, 0, 8, 8]},
        )
        for i, t in enumerate(tools)
    ]
    return Trajectory(
        sample_id=sample.id,
        token_ids=[0] * tokens,
        loss_mask=[1] * tokens,
        sampled_logprobs=[0.0] * tokens,
        prompt_length=0,
        turns=[Turn("assistant", "x")] * turns,
        tool_calls=calls,
        images=sample.pil_images() + [sample.image(1).crop((0, 0, 8, 8))] * len(tools),
        status="ok" if answer is not None else "truncated",
        answer=answer,
        frames=frames,
    )


def _factory(policy):
    def factory(model, cfg, greedy):
        def generate(samples, es, n):
            return [[_traj(s, *policy(model, s, j)) for j in range(n)] for s in samples]

        return generate

    return factory


def _policy(model, sample, j):
    """Scripted (answer text in model coordinates, tools used, turns) per model."""
    if sample.answer_type == "image_index":
        if model == "main":
            return (str(sample.answer), ("zoom",), 2)  # always right, zooms
        return ("1", (), 1)  # baseline always says 1: right on the first item only
    if sample.answer_type == "bbox":
        return ("[0, 0, 32, 16]", (), 1) if model == "main" else (None, (), 1)  # IoU 0.5 / none
    if sample.answer_type == "image_bbox":
        return (f"image {sample.answer['image']}: {sample.answer['bbox']}", ("view",), 3)
    return (None, (), 1)


def test_run_eval_dataset_and_benchmark_with_baseline(tmp_path):
    ds, _ = _dataset(tmp_path)
    cfg = load_config("tiny-cpu")
    result = run_eval(
        cfg,
        "main",
        dataset=str(ds),
        benches={"mig-bench": str(mig_folder(tmp_path))},
        baseline="base",
        generate_factory=_factory(_policy),
    )
    paths = write_outputs(result, tmp_path / "out")
    m = json.loads(paths["metrics"].read_text())
    # dataset: main 3/3 right (IoU 0.5 counts); baseline: 1 of 2 selections, no box -> 1/3
    assert m["eval/test/overall/accuracy"] == 1.0
    assert m["baseline/test/overall/accuracy"] == pytest.approx(1 / 3)
    assert m["delta/test/overall/accuracy"] == pytest.approx(2 / 3)
    assert m["eval/test/grounding/mean_iou"] == pytest.approx(0.5)
    assert m["baseline/test/overall/invalid_rate"] == pytest.approx(1 / 3)
    # agent metrics: main zooms on the 2 selection items of 3
    assert m["eval/test/overall/tool_call_rate/zoom"] == pytest.approx(2 / 3)
    assert m["eval/test/selection/mean_turns"] == 2.0
    assert m["eval/test/overall/tokens_per_sample"] == 10.0
    assert m["baseline/test/overall/status/truncated"] == pytest.approx(1 / 3)
    # what an accuracy means: items, majority share, Wilson interval, paired p-value
    assert m["eval/test/selection/items"] == 2.0
    assert m["eval/test/selection/majority_share"] == 0.5  # answers 1 and 2
    assert m["eval/test/overall/majority_share"] == pytest.approx(1 / 3)
    assert m["eval/test/overall/accuracy_ci95_low"] == pytest.approx(0.4385, abs=1e-4)
    assert m["eval/test/overall/accuracy_ci95_high"] == 1.0  # 3 of 3: 3 / 6.8416 = 0.4385
    # main right on all 3, baseline on 1 (the same item): b = 2, c = 0 -> p = 2 / 4
    assert m["delta/test/overall/p_value"] == pytest.approx(0.5)
    assert "delta/test/overall/majority_share" not in m
    # MIG-Bench: group grounding answered with the gold image and box
    assert "eval/mig-bench/overall/acc_iou50" in m
    assert m["eval/mig-bench/group_grounding/acc_iou50"] == 1.0
    preds = pd.read_parquet(paths["predictions"])
    assert len(preds) == 2 * (3 + 5)
    assert set(preds.columns) >= {
        "set",
        "model",
        "sample_id",
        "prediction",
        "score",
        "status",
        "tool_calls",
        "num_turns",
        "num_tokens",
    }
    row = preds[(preds.model == "main") & (preds.set == "test")].iloc[0]
    assert json.loads(row.tool_calls)[0]["name"] == "zoom"
    summary = json.loads(paths["summary"].read_text())
    assert len(summary["mig-bench"]["skipped"]) == 6
    page = paths["report"].read_text()
    assert page.count("data:image/png;base64,") >= 10  # plots and gallery images inline
    assert "Skipped items (6)" in page and "tool images" in page and "delta" in page
    assert 'src="http' not in page  # self-contained
    assert "test/overall: accuracy 1.000" in page and "majority share 0.333" in page


def test_pass_at_k_when_sampling(tmp_path):
    ds, _samples = _dataset(tmp_path)
    cfg = load_config("tiny-cpu", ["evaluate.greedy=false", "evaluate.pass_k=3"])

    def policy(model, sample, j):  # right only on the third sample of the first item
        if sample.answer == 1 and j == 2:
            return ("1", (), 1)
        return ("9", (), 1)

    result = run_eval(cfg, "m", dataset=str(ds), generate_factory=_factory(policy))
    m = result.metrics
    # item 1: c=1 of n=3 -> pass@3 = 1; the others 0 -> overall 1/3; first-sample accuracy 0
    assert m["eval/test/overall/pass@3"] == pytest.approx(1 / 3)
    assert m["eval/test/overall/accuracy"] == 0.0

"""`miva eval` with real rollouts of the tiny model (no recorded trajectories): a synth
dataset with a baseline model, and MIG-Bench from its native layout. Also the eval-set
digests and MLflow logging. Kept small: 2 items per set, 16 new tokens per turn."""

import json

import pandas as pd
import pytest

from miva.cli import main
from miva.config import load_config
from miva.data.io import read_info
from miva.eval.runner import benchmark_digest, regroup, split_digest
from tests.eval.test_mig_bench import _folder as mig_folder

FAST = ["--set", "agent.max_new_tokens=16", "--set", "agent.max_turns=2", "--max-items", "2"]
FAST += ["--no-tracking"]
STATUSES = {"ok", "truncated", "malformed", "tool_error", "max_turns", "image_budget"}


@pytest.fixture(scope="module")
def synth_dataset(tmp_path_factory):
    from miva.data.synth.build import run_synth

    cfg = load_config(
        "tiny-cpu", ["synthesize.n=30", "synthesize.image_size=112", "synthesize.workers=1"]
    )
    out = tmp_path_factory.mktemp("synth") / "ds"
    run_synth(cfg.synthesize, out, progress=False)
    return out


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    """A second tiny model: the same architecture from another seed (different weights)."""
    from miva.agent.model import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-seed1", seed=1)


def test_eval_dataset_with_baseline_writes_metrics_predictions_report(
    synth_dataset, other_model, tmp_path, capsys
):
    out = tmp_path / "eval"
    args = ["evaluate", "--model", "tiny-random", "--dataset", str(synth_dataset)]
    args += ["--baseline", str(other_model), "--out", str(out), *FAST]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "eval/test/overall/accuracy = " in printed and "metrics.json" in printed

    metrics = json.loads((out / "metrics.json").read_text())
    # the digest the registry compares: dataset digest + split + item cap
    expected = split_digest(read_info(synth_dataset).digest, "test", 2)
    assert metrics["eval/test/digest"] == expected
    numbers = {k: v for k, v in metrics.items() if not k.endswith("/digest")}
    assert all(isinstance(v, float) for v in numbers.values())
    for prefix in ("eval", "baseline", "delta"):
        assert f"{prefix}/test/overall/accuracy" in metrics
    assert metrics["eval/test/overall/items"] == 2.0
    # the tools of the config are listed even when a random model calls none
    assert "eval/test/overall/tool_call_rate/zoom" in metrics
    assert metrics["delta/test/overall/accuracy"] == pytest.approx(
        metrics["eval/test/overall/accuracy"] - metrics["baseline/test/overall/accuracy"]
    )

    preds = pd.read_parquet(out / "predictions.parquet")
    assert len(preds) == 4  # 2 items x 2 models
    assert set(preds.model) == {"tiny-random", str(other_model)}
    assert set(preds.status) <= STATUSES
    assert (preds.num_tokens > 0).all() and (preds.num_turns >= 1).all()
    main_rows = preds[preds.model == "tiny-random"].sort_values("sample_id")
    base_rows = preds[preds.model == str(other_model)].sort_values("sample_id")
    assert list(main_rows.sample_id) == list(base_rows.sample_id)  # the same items

    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 3 + 4  # 3 plots + item images
    assert "delta</b> = model" in page and expected in page and "baseline: " in page
    summary = json.loads((out / "summary.json").read_text())
    assert summary["_run"]["baseline"] == str(other_model)


def test_eval_mig_bench_native_folder(tmp_path, capsys):
    folder = mig_folder(tmp_path)
    out = tmp_path / "eval"
    args = ["evaluate", "--model", "tiny-random", "--bench", "mig-bench", "--path", str(folder)]
    args += ["--out", str(out), *FAST]
    assert main(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "eval/mig-bench/overall/acc_iou50" in metrics
    assert 0.0 <= metrics["eval/mig-bench/overall/acc_iou50"] <= 1.0
    preds = pd.read_parquet(out / "predictions.parquet")
    assert len(preds) == 2 and set(preds.set) == {"mig-bench"}
    assert metrics["eval/mig-bench/digest"] == benchmark_digest("mig-bench", preds.sample_id)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mig-bench"]["items"] == 2


def test_the_evaluate_stage_logs_metrics_digests_and_report_to_its_mlflow_run(tmp_path):
    """The evaluate stage with a real MLflow tracking store (SQLite file) and the scripted
    generator of test_runner (no model): metrics with MLflow-safe names, the digest tag,
    the report, and the outputs in the folder."""
    from mlflow import MlflowClient

    from miva import stages
    from tests.eval.test_runner import _dataset, _factory, _policy

    ds, _ = _dataset(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load_config(
        "tiny-cpu",
        ["evaluate.greedy=false", "evaluate.pass_k=2", f"registry.tracking_uri={uri}"],
    )
    result = stages.evaluate(
        cfg, "main", tmp_path / "out", dataset=ds, generate_factory=_factory(_policy)
    )
    assert result.metrics["eval/test/overall/accuracy"] == 1.0
    share = result.metrics["eval/test/overall/majority_share"]
    assert 0 < share < 1
    assert result.summary == f"eval/test/overall/accuracy 1.0000 (majority share {share:.4f})"
    assert (tmp_path / "out" / "metrics.json").exists()
    client = MlflowClient(uri)
    (run,) = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string="tags.`miva.stage` = 'evaluate'",
    )
    assert run.data.metrics["eval/test/overall/accuracy"] == 1.0
    assert (
        run.data.metrics["eval/test/overall/pass_2"] == result.metrics["eval/test/overall/pass@2"]
    )
    digest = result.value.digests["eval/test/digest"]
    assert run.data.tags["miva.eval/test/digest"] == digest
    assert [a.path for a in client.list_artifacts(run.info.run_id, "report")] == [
        "report/report.html"
    ]
    (lineage,) = run.inputs.dataset_inputs
    assert {t.key: t.value for t in lineage.tags}["mlflow.data.context"] == "eval"


def test_regroup_is_sample_major():
    # rollout order for 2 samples x 3: a0 a1 a2 b0 b1 b2
    assert regroup(["a0", "a1", "a2", "b0", "b1", "b2"], 2, 3) == [
        ["a0", "a1", "a2"],
        ["b0", "b1", "b2"],
    ]
    with pytest.raises(RuntimeError, match="5 trajectories for 2 x 3"):
        regroup(["a"] * 5, 2, 3)


def test_digests_change_with_items_split_and_cap():
    assert split_digest("d", "test", None) != split_digest("d", "test", 64)
    assert split_digest("d", "test", 64) != split_digest("d", "val", 64)
    assert split_digest("d", "test", 64) == split_digest("d", "test", 64)
    assert benchmark_digest("b", ["x", "y"]) == benchmark_digest("b", ["y", "x"])  # order-free
    assert benchmark_digest("b", ["x", "y"]) != benchmark_digest("b", ["x"])


def test_report_puts_the_overall_bar_last():
    from miva.eval.report import _overall_last

    assert _overall_last({"region", "overall", "common_object"}) == [
        "common_object",
        "region",
        "overall",
    ]


def test_dataset_scorer_converts_a_miva_dataset_folder(tmp_path):
    from miva.config import load_config
    from miva.data.synth.build import run_synth
    from miva.eval.dataset_scorer import DatasetScorer

    cfg = load_config(
        "tiny-cpu", ["synthesize.n=20", "synthesize.image_size=112", "synthesize.workers=1"]
    )
    info = run_synth(cfg.synthesize, tmp_path / "ds")
    converted = DatasetScorer().convert(tmp_path / "ds", limit=5)
    assert len(converted.samples) == 5 and not converted.skipped
    assert len(DatasetScorer().convert(tmp_path / "ds").samples) == info.total

"""The sweep DAG's own steps (pipelines/sweep.py); each body only calls `miva`."""

from typing import NamedTuple, Optional

from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components._base import stage_component


@stage_component("sweep_plan")
def sweep_plan(
    preset: str, overrides: str, sweep: str, image_registry: str, image_tag: str
) -> NamedTuple(
    "SweepPlan",
    [("trials", list), ("sft_enabled", bool), ("base_image", str), ("gpu_image", str)],
):
    """Expand the sweep file into trials; fails before any work on a bad key or value."""
    from collections import namedtuple

    from miva.pipeline.sweep_run import plan_sweep

    p = plan_sweep(preset, overrides, sweep, image_registry, image_tag)
    SweepPlan = namedtuple("SweepPlan", ["trials", "sft_enabled", "base_image", "gpu_image"])
    return SweepPlan(p.trials, p.sft_enabled, p.base_image, p.gpu_image)


@stage_component("sweep_trial")
def sweep_trial(
    preset: str,
    overrides: str,
    index: str,
    settings: str,
    train_image: str,
    validated: Input[Dataset],
    model: Output[Model],
    results: Output[Artifact],
    metrics: Output[Metrics],
    start_model: Optional[Input[Model]] = None,  # noqa: UP045 (KFP parses typing.Optional)
) -> str:
    """GRPO + `miva eval` on the validation split in the trial's MLflow run; returns the
    trial's result (JSON) for the select step."""
    import json

    from miva.pipeline import stage
    from miva.pipeline.sweep import result_json
    from miva.pipeline.sweep_run import run_trial

    result = run_trial(
        preset,
        overrides,
        int(index),
        json.loads(settings),
        stage.clean_dataset(validated.path),
        model.path,
        results.path,
        start_model.path if start_model is not None else None,
        train_image=train_image,
        dataset_uri=stage.clean_dataset(validated.uri),
        start_model_uri=start_model.uri if start_model is not None else None,
        model_uri=model.uri,
    )
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    metrics.log_metric("sweep/seconds", result.seconds)
    return result_json(result)


@stage_component("sweep_select")
def sweep_select(
    preset: str, overrides: str, sweep: str, results: list, summary: Output[Markdown]
) -> NamedTuple("Winner", [("winner_overrides", str), ("model_uri", str), ("winner", int)]):
    """The best trial by the sweep metric; the table of all trials as Markdown."""
    from collections import namedtuple

    from miva.pipeline.stage import write_text
    from miva.pipeline.sweep_run import select

    chosen = select(preset, overrides, sweep, [str(r) for r in results])
    write_text(summary.path, chosen.table + "\n")
    Winner = namedtuple("Winner", ["winner_overrides", "model_uri", "winner"])
    return Winner(chosen.winner_overrides, chosen.winner.model_uri, chosen.winner.index)

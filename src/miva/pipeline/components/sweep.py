"""The sweep DAG's own steps (`miva.pipeline.sweep_dag`): plan, one trial, select."""

from typing import NamedTuple, Optional

from kfp.dsl import Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from miva.pipeline.components._base import stage_component


@stage_component("sweep_plan")
def sweep_plan(
    preset: str, overrides: str, sweep: str, image_registry: str, image_tag: str
) -> NamedTuple(
    "SweepPlan",
    [("trials", list), ("sft_enabled", bool), ("base_image", str), ("gpu_image", str)],
):
    """Expand the sweep file into trials; fails before any work on a bad key or value."""
    from collections import namedtuple

    from miva.pipeline import artifacts
    from miva.pipeline.sweep_run import plan_sweep

    with artifacts.stage_task("sweep_plan", preset, overrides) as task:
        p = plan_sweep(preset, overrides, sweep, image_registry, image_tag)
        task.done(f"{len(p.trials)} trials")
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
    """GRPO + evaluate on the validation split in the trial's MLflow run; returns the
    trial's result (JSON) for the select step."""
    import json

    from miva.pipeline import artifacts
    from miva.pipeline.sweep import result_json
    from miva.pipeline.sweep_run import run_trial
    from miva.stages.locations import clean_dataset

    with artifacts.stage_task("sweep_trial", preset, overrides) as task:
        result = run_trial(
            task.cfg,
            preset,
            overrides,
            int(index),
            json.loads(settings),
            clean_dataset(validated.path),
            model.path,
            results.path,
            start_model.path if start_model is not None else None,
            train_image=train_image,
            dataset_uri=clean_dataset(validated.uri),
            start_model_uri=start_model.uri if start_model is not None else None,
            model_uri=model.uri,
        )
        task.done(f"trial-{index} in {result.seconds:.0f} s")
    artifacts.log_metrics(metrics, {**result.metrics, "sweep/seconds": result.seconds})
    return result_json(result)


@stage_component("sweep_select")
def sweep_select(
    preset: str, overrides: str, sweep: str, results: list, summary: Output[Markdown]
) -> NamedTuple("Winner", [("winner_overrides", str), ("model_uri", str), ("winner", int)]):
    """The best trial by the sweep metric; the table of all trials as Markdown."""
    from collections import namedtuple

    from miva.pipeline import artifacts
    from miva.pipeline.sweep_run import select

    with artifacts.stage_task("sweep_select", preset, overrides) as task:
        chosen = select(preset, overrides, sweep, [str(r) for r in results])
        artifacts.write_text(summary.path, chosen.table + "\n")
        task.done(f"winner trial-{chosen.winner.index} {chosen.winner.settings}")
    Winner = namedtuple("Winner", ["winner_overrides", "model_uri", "winner"])
    return Winner(chosen.winner_overrides, chosen.winner.model_uri, chosen.winner.index)

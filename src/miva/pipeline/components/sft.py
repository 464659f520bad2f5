"""The sft stage: the optional supervised cold start on gold trajectories."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from miva.pipeline.components._base import stage_component


@stage_component("sft")
def sft(
    preset: str,
    overrides: str,
    validated: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
):
    from miva import stages
    from miva.pipeline import artifacts
    from miva.stages.locations import clean_dataset

    with artifacts.stage_task("sft", preset, overrides) as task:
        result = stages.sft(task.cfg, clean_dataset(validated.path), model.path)
        task.done(result.summary)
    artifacts.log_metrics(metrics, result.metrics)

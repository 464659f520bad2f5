"""The grpo stage: GRPO with multi-turn tool use; a Kubeflow Trainer TrainJob when multi-node."""

from typing import Optional

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from miva.pipeline.components._base import stage_component


@stage_component("grpo")
def grpo(
    preset: str,
    overrides: str,
    train_image: str,
    validated: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
    curve: Output[HTML],
    start_model: Optional[Input[Model]] = None,  # noqa: UP045 (KFP parses typing.Optional)
):
    """One process here, or (pipeline.num_nodes > 1) a TrainJob running `train_image`."""
    from miva import stages
    from miva.pipeline import artifacts
    from miva.stages.locations import clean_dataset

    with artifacts.stage_task("grpo", preset, overrides) as task:
        start = start_model.path if start_model is not None else None
        if task.cfg.pipeline.num_nodes > 1:
            from miva.pipeline.trainjob import train_distributed

            train_distributed(
                task.cfg,
                preset=preset,
                overrides=overrides,
                image=train_image,
                dataset_uri=clean_dataset(validated.uri),
                start_model_uri=start_model.uri if start_model is not None else None,
                out_uri=model.uri,
                local_out=model.path,
            )
            from miva.stages.tracking import last_logged

            numbers = last_logged(f"{model.path}/metrics.jsonl")
            task.done(f"TrainJob on {task.cfg.pipeline.num_nodes} nodes finished")
        else:
            result = stages.grpo(task.cfg, clean_dataset(validated.path), model.path, start)
            numbers = result.metrics
            task.done(result.summary)
    artifacts.log_metrics(metrics, numbers)
    artifacts.html_report(model.path, curve.path, "GRPO training", numbers)

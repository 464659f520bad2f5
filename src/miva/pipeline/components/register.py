"""The register stage: a new model version, the promotion decision and its reasons."""

from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from miva.pipeline.components._base import stage_component


@stage_component("register")
def register(
    preset: str,
    overrides: str,
    validated: Input[Dataset],
    model: Input[Model],
    results: Input[Artifact],
    decision: Output[Markdown],
):
    """The last stage: it also closes the run's MLflow parent run."""
    from miva import stages
    from miva.pipeline import artifacts
    from miva.registry.tracking import end_pipeline_run
    from miva.stages.locations import clean_dataset, eval_metrics_file

    with artifacts.stage_task("register", preset, overrides) as task:
        result = stages.register(
            task.cfg,
            model.path,
            eval_metrics_file(results.path),
            dataset=clean_dataset(validated.path),
            report=results.path,
        )
        task.done(result.summary)
        artifacts.write_text(decision.path, f"{result.summary}\n\n{result.value.summary}")
        end_pipeline_run(task.cfg)

"""The validate stage: the gate. Its output folder holds report.json, clean/ and quarantine/."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from miva.pipeline.components._base import stage_component


@stage_component("validate")
def validate(
    preset: str,
    overrides: str,
    dataset: Input[Dataset],
    validated: Output[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
):
    from miva import stages
    from miva.pipeline import artifacts

    with artifacts.stage_task("validate", preset, overrides) as task:
        result = stages.validate(task.cfg, dataset.path, validated.path)
        task.done(result.summary)
    validated.metadata.update(artifacts.validation_metadata(validated.path))
    artifacts.html_report(validated.path, report.path, "Validation report", result.metrics)
    artifacts.log_metrics(metrics, result.metrics)

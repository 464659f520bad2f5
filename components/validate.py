"""`miva validate`: the gate. Its output folder holds report.json, clean/ and quarantine/."""

from kfp.dsl import HTML, Dataset, Input, Metrics, Output

from components._base import stage_component


@stage_component("validate")
def validate(
    preset: str,
    overrides: str,
    dataset: Input[Dataset],
    validated: Output[Dataset],
    report: Output[HTML],
    metrics: Output[Metrics],
):
    from miva.pipeline import stage

    numbers = stage.run_stage(
        "validate",
        preset,
        overrides,
        [dataset.path, "--out", validated.path],
        datasets=[(dataset.path, "validation")],
        metrics=lambda: stage.validation_metrics(validated.path),
    )
    validated.metadata.update(stage.validation_metadata(validated.path))
    stage.html_report(validated.path, report.path, title="Validation report")
    for name, value in numbers.items():
        metrics.log_metric(name, value)

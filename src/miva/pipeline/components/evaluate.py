"""The evaluate stage: the trained model and the starting model on the same held-out items."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from miva.pipeline.components._base import stage_component


@stage_component("evaluate")
def evaluate(
    preset: str,
    overrides: str,
    validated: Input[Dataset],
    model: Input[Model],
    results: Output[Artifact],
    metrics: Output[Metrics],
    report: Output[HTML],
):
    """The baseline is `evaluate.baseline`, else the model the run started from."""
    from miva import stages
    from miva.pipeline import artifacts
    from miva.stages.locations import clean_dataset

    with artifacts.stage_task("evaluate", preset, overrides) as task:
        cfg = task.cfg
        result = stages.evaluate(
            cfg,
            model.path,
            results.path,
            dataset=clean_dataset(validated.path),
            baseline=cfg.evaluate.baseline or cfg.model.name_or_path,
        )
        task.done(result.summary)
    artifacts.log_metrics(metrics, result.metrics)
    artifacts.html_report(results.path, report.path, "Evaluation", result.metrics)

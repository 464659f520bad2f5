"""`miva eval`: the trained model and the starting model on the same held-out items."""

from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components._base import stage_component


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
    from miva.pipeline import stage

    clean = stage.clean_dataset(validated.path)
    args = ["--model", model.path, "--dataset", clean, "--out", results.path]
    stage.run_stage(
        "eval",
        preset,
        overrides,
        [*args, *stage.baseline_args(preset, overrides)],
        datasets=[(clean, "eval")],
    )  # `miva eval` logs its metrics and report into the stage run run_stage opens
    for name, value in stage.eval_metrics(results.path).items():
        metrics.log_metric(name, value)
    stage.html_report(results.path, report.path, title="Evaluation")

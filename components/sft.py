"""`miva sft`: the optional supervised cold start on gold trajectories."""

from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components._base import stage_component


@stage_component("sft")
def sft(
    preset: str,
    overrides: str,
    validated: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
):
    from miva.pipeline import stage

    clean = stage.clean_dataset(validated.path)
    stage.run_stage(
        "sft",
        preset,
        overrides,
        ["--dataset", clean, "--out", model.path],
    )  # `miva sft` opens its MLflow stage run: dataset lineage, per-step metrics, curves
    for name, value in stage.training_metrics(model.path).items():
        metrics.log_metric(name, value)

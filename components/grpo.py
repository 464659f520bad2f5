"""`miva train`: GRPO with multi-turn tool use; a Kubeflow Trainer TrainJob when multi-node."""

from typing import Optional

from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components._base import stage_component


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
    from miva.pipeline import stage

    cfg = stage.resolve(preset, overrides)
    if cfg.pipeline.num_nodes > 1:
        from miva.pipeline.trainjob import train_distributed

        train_distributed(
            cfg,
            preset=preset,
            overrides=overrides,
            image=train_image,
            dataset_uri=stage.clean_dataset(validated.uri),
            start_model_uri=start_model.uri if start_model is not None else None,
            out_uri=model.uri,
            local_out=model.path,
        )
    else:
        clean = stage.clean_dataset(validated.path)
        args = ["--dataset", clean, "--out", model.path]
        if start_model is not None:
            args += ["--model", start_model.path]
        stage.run_stage(
            "train",
            preset,
            overrides,
            args,
        )  # `miva train` opens its MLflow stage run: dataset lineage, per-step metrics, curves
    for name, value in stage.training_metrics(model.path).items():
        metrics.log_metric(name, value)
    stage.html_report(model.path, curve.path, title="GRPO training")

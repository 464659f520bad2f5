"""`miva register`: a new model version, the promotion decision and its reasons."""

from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from components._base import stage_component


@stage_component("register")
def register(
    preset: str,
    overrides: str,
    validated: Input[Dataset],
    model: Input[Model],
    results: Input[Artifact],
    decision: Output[Markdown],
):
    from miva.pipeline import stage

    args = ["--model", model.path, "--metrics", stage.eval_metrics_file(results.path)]
    args += ["--dataset", stage.clean_dataset(validated.path), "--report", results.path]
    with stage.capture_stdout() as out:
        stage.run_stage("register", preset, overrides, args)
    stage.registry_decision(out.getvalue(), decision.path)
    stage.end_pipeline_run(preset, overrides)

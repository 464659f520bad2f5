"""`miva synth`: the multi-image QA dataset and its card."""

from kfp.dsl import Dataset, Markdown, Output

from components._base import stage_component


@stage_component("synthesize")
def synthesize(
    preset: str,
    overrides: str,
    dataset: Output[Dataset],
    card: Output[Markdown],
):
    from miva.pipeline import stage

    stage.run_stage(
        "synth",
        preset,
        overrides,
        ["--out", dataset.path],
        datasets=[(dataset.path, "generated")],
    )
    dataset.metadata.update(stage.dataset_metadata(dataset.path))
    stage.copy_first(dataset.path, ("README.md",), card.path)

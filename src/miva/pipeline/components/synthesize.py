"""The synthesize stage: the multi-image QA dataset and its card."""

from kfp.dsl import Dataset, Markdown, Output

from miva.pipeline.components._base import stage_component


@stage_component("synthesize")
def synthesize(
    preset: str,
    overrides: str,
    dataset: Output[Dataset],
    card: Output[Markdown],
):
    from miva import stages
    from miva.pipeline import artifacts

    with artifacts.stage_task("synthesize", preset, overrides) as task:
        result = stages.synthesize(task.cfg, dataset.path)
        task.done(result.summary)
    dataset.metadata.update(artifacts.dataset_metadata(dataset.path))
    artifacts.copy_first(dataset.path, ("README.md",), card.path)

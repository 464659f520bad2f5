"""The decorator every MIVA component uses: its stage image, nothing installed at run time."""

from __future__ import annotations

from kfp import dsl

from miva.config import PipelineConfig
from miva.pipeline.images import stage_image

_DEFAULTS = PipelineConfig()


def stage_component(stage: str):
    """`@stage_component("grpo")`: a lightweight component on the stage's default image.

    The DAG replaces the image per run with the registry and tag pipeline parameters
    (`set_container_image`); the default here only matters when a component is used alone.
    KFP ships only the function's source to the pod, so its imports sit in the body.
    """
    return dsl.component(
        base_image=stage_image(stage, _DEFAULTS.image_registry, _DEFAULTS.image_tag),
        install_kfp_package=False,
    )

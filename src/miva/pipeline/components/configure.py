"""Resolve the run's config once: decide SFT, the node count and the stage images."""

from typing import NamedTuple

from miva.pipeline.components._base import stage_component


@stage_component("configure")
def configure(preset: str, overrides: str, image_registry: str, image_tag: str) -> NamedTuple(
    "Plan",
    [
        ("sft_enabled", bool),
        ("num_nodes", int),
        ("base_image", str),
        ("gpu_image", str),
        ("config_hash", str),
    ],
):
    """Fails here, before any work, when the preset or an override does not validate."""
    from collections import namedtuple

    from miva.pipeline import artifacts

    with artifacts.stage_task("configure", preset, overrides) as task:
        p = artifacts.plan(preset, overrides, image_registry, image_tag)
        task.done(
            f"sft {'on' if p.sft_enabled else 'off'}, {p.num_nodes} node(s), config {p.config_hash}"
        )
    Plan = namedtuple(
        "Plan", ["sft_enabled", "num_nodes", "base_image", "gpu_image", "config_hash"]
    )
    return Plan(p.sft_enabled, p.num_nodes, p.base_image, p.gpu_image, p.config_hash)

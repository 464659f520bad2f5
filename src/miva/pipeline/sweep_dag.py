"""The sweep DAG: shared data and [SFT], then trials in parallel, then the winner only.

    sweep_plan -> synthesize -> validate -> [sft]
      -> ParallelFor(trials, parallelism): sweep_trial (GRPO + evaluate on val)
      -> sweep_select (best by the sweep metric; summary table)
      -> importer(winner's model) -> evaluate (test split) -> register

`build_sweep_pipeline(cfg, preset, overrides, spec)` returns the `@dsl.pipeline` function;
its run-time parameters are the main DAG's plus `sweep` (the sweep file as JSON). Trials
differ only in their `overrides` (see miva.pipeline.sweep); every task is placed on the
cluster as in the main DAG (`miva.pipeline.dag.place`), so GPU trials queue in the same way.
"""

from kfp import dsl

from miva.config import MivaConfig
from miva.pipeline.artifacts import encode_overrides
from miva.pipeline.components import (
    evaluate,
    register,
    sft,
    sweep_plan,
    sweep_select,
    sweep_trial,
    synthesize,
    validate,
)
from miva.pipeline.dag import place
from miva.pipeline.images import image_ref

PIPELINE_NAME = "miva-sweep"


def build_sweep_pipeline(
    cfg: MivaConfig, preset: str, overrides: list[str] | tuple[str, ...], spec
):
    """The sweep pipeline for `spec` (a `miva.pipeline.sweep.SweepSpec`); its parallelism
    is fixed when the DAG is built (a KFP ParallelFor setting, not a run parameter)."""
    p = cfg.pipeline

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Hyperparameter sweep: trials in parallel on the validation split; the "
        "best is evaluated on the test split and registered.",
        pipeline_root=p.pipeline_root,
    )
    def miva_sweep(
        preset: str = preset,
        overrides: str = encode_overrides(list(overrides)),
        sweep: str = spec.model_dump_json(),
        image_registry: str = p.image_registry,
        image_tag: str = p.image_tag,
    ):
        run = {"preset": preset, "overrides": overrides}
        plan = sweep_plan(
            **run, sweep=sweep, image_registry=image_registry, image_tag=image_tag
        ).set_display_name("sweep-plan")
        plan.set_container_image(
            image_ref(p.image_registry, "base", p.image_tag, p.image_digests.get("base", ""))
        )
        plan.set_caching_options(False)
        base_image, gpu_image = plan.outputs["base_image"], plan.outputs["gpu_image"]

        data = place(synthesize(**run), p, "synthesize", base_image, network=True)
        data.set_caching_options(p.caching)
        gate = place(validate(**run, dataset=data.outputs["dataset"]), p, "validate", base_image)
        gate.set_caching_options(p.caching)
        validated = gate.outputs["validated"]

        def trials_then_winner(start_model=None):
            start = {"start_model": start_model} if start_model is not None else {}
            with dsl.ParallelFor(
                plan.outputs["trials"], parallelism=spec.parallelism, name="trials"
            ) as trial:
                tried = sweep_trial(
                    preset=preset,
                    overrides=trial.overrides,
                    index=trial.index,
                    settings=trial.settings,
                    train_image=gpu_image,
                    validated=validated,
                    **start,
                )
                if p.num_nodes > 1:  # the trial only submits and follows a TrainJob
                    place(tried, p, "sweep-trial", base_image, network=True)
                else:
                    place(tried, p, "sweep-trial", gpu_image, gpu=True, network=True)
                tried.set_caching_options(False)
            best = sweep_select(**run, sweep=sweep, results=dsl.Collected(tried.outputs["Output"]))
            place(best, p, "sweep-select", base_image, network=True).set_caching_options(False)
            winner = dsl.importer(
                artifact_uri=best.outputs["model_uri"], artifact_class=dsl.Model, reimport=False
            ).set_display_name("winner-model")
            final = {"preset": preset, "overrides": best.outputs["winner_overrides"]}
            scored = evaluate(**final, validated=validated, model=winner.output)
            place(scored, p, "evaluate", gpu_image, gpu=True, network=True)
            scored.set_caching_options(False)
            shipped = register(
                **final, validated=validated, model=winner.output, results=scored.outputs["results"]
            )
            place(shipped, p, "register", base_image, network=True).set_caching_options(False)

        with dsl.If(plan.outputs["sft_enabled"] == True, name="with-sft"):  # noqa: E712
            warm = place(sft(**run, validated=validated), p, "sft", gpu_image, gpu=True)
            warm.set_caching_options(False)
            trials_then_winner(start_model=warm.outputs["model"])
        with dsl.Else(name="without-sft"):
            trials_then_winner()

    return miva_sweep

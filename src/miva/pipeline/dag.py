"""The MIVA DAG: synthesize -> validate -> [sft] -> grpo -> evaluate -> register.

`build_pipeline(cfg, preset, overrides)` returns the `@dsl.pipeline` function. Run-time
parameters: `preset` and `overrides` (JSON list of `key.path=value`; every component
resolves them with `miva.config.load_config`), `image_registry` and `image_tag` (the stage
images). Cluster settings (GPU type and count, node pool, secrets, shm size, retries,
caching, pipeline root) are read from `cfg.pipeline` when the DAG is built.

Branching happens at run time on the resolved config: `configure` decides whether SFT
runs, and `dsl.If` / `dsl.Else` hold the two tails (with SFT, grpo starts from its model;
without, from `model.name_or_path`). The tails are the same function called twice, so
kfp.local (which cannot resolve `dsl.OneOf` artifacts) runs the same DAG as a cluster.
"""

from kfp import dsl, kubernetes

from miva.config import KUEUE_QUEUE_LABEL, MivaConfig
from miva.pipeline.artifacts import encode_overrides
from miva.pipeline.components import (
    configure,
    evaluate,
    grpo,
    register,
    sft,
    synthesize,
    validate,
)
from miva.pipeline.images import image_ref
from miva.pipeline.secrets import secret_env

PIPELINE_NAME = "miva"
# The KFP backend labels every pod of a run with its run id; the stages read it from the
# environment, so it never becomes a component input (inputs are the cache key).
RUN_ID_FIELD = "metadata.labels['pipeline/runid']"


def place(
    task: dsl.PipelineTask, p, name: str, image, *, gpu: bool = False, network: bool = False
) -> dsl.PipelineTask:
    """Name, KFP ids, image, secrets and (GPU stages) scheduling from `p` (cfg.pipeline),
    including the Kueue queue label when `p.kueue_queue` is set; the main DAG and the
    sweep DAG (`miva.pipeline.sweep_dag`) place every task with it.

    kfp.local keeps the name and `$KFP_TASK_NAME` and ignores the rest.
    """
    task.set_display_name(name).set_env_variable("KFP_TASK_NAME", name)
    kubernetes.use_field_path_as_env(task, env_name="KFP_RUN_ID", field_path=RUN_ID_FIELD)
    task.set_container_image(image)
    for secret, keys, optional in secret_env(p):
        kubernetes.use_secret_as_env(
            task, secret, secret_key_to_env={k: k for k in keys}, optional=optional
        )
    if network and p.retries:
        task.set_retry(num_retries=p.retries, backoff_duration="30s", backoff_factor=2.0)
    if gpu and p.gpu_count:
        task.set_accelerator_type(p.gpu_type).set_accelerator_limit(p.gpu_count)
        kubernetes.add_toleration(
            task, key=p.gpu_toleration, operator="Exists", effect="NoSchedule"
        )
        for key, value in p.gpu_node_selector.items():
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        kubernetes.empty_dir_mount(
            task,
            volume_name="dshm",
            mount_path="/dev/shm",
            medium="Memory",
            size_limit=p.shm_size,
        )
        if p.kueue_queue:
            kubernetes.add_pod_label(task, label_key=KUEUE_QUEUE_LABEL, label_value=p.kueue_queue)
    return task


def build_pipeline(cfg: MivaConfig, preset: str, overrides: list[str] | tuple[str, ...] = ()):
    """The pipeline function, with the parameter defaults and cluster settings of `cfg`."""
    p = cfg.pipeline

    def on_cluster(task: dsl.PipelineTask, name: str, image, **kwargs):
        return place(task, p, name, image, **kwargs)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description="Synthesize multi-image QA, validate, [SFT], GRPO with tools, evaluate, register.",
        pipeline_root=p.pipeline_root,
    )
    def miva_pipeline(
        preset: str = preset,
        overrides: str = encode_overrides(list(overrides)),
        image_registry: str = p.image_registry,
        image_tag: str = p.image_tag,
    ):
        run = {"preset": preset, "overrides": overrides}

        plan = configure(
            preset=preset, overrides=overrides, image_registry=image_registry, image_tag=image_tag
        ).set_display_name("configure")
        plan.set_container_image(
            image_ref(p.image_registry, "base", p.image_tag, p.image_digests.get("base", ""))
        )
        plan.set_caching_options(False)
        base_image, gpu_image = plan.outputs["base_image"], plan.outputs["gpu_image"]

        synthesized = on_cluster(synthesize(**run), "synthesize", base_image, network=True)
        synthesized.set_caching_options(p.caching)

        gate = on_cluster(
            validate(**run, dataset=synthesized.outputs["dataset"]), "validate", base_image
        )
        gate.set_caching_options(p.caching)
        validated = gate.outputs["validated"]

        def grpo_evaluate_register(start_model=None):
            start = {"start_model": start_model} if start_model is not None else {}
            trained = grpo(**run, train_image=gpu_image, validated=validated, **start)
            if p.num_nodes > 1:  # the task only submits and follows a TrainJob
                on_cluster(trained, "grpo", base_image, network=True)
            else:
                on_cluster(trained, "grpo", gpu_image, gpu=True)
            trained.set_caching_options(False)
            model = trained.outputs["model"]
            scored = evaluate(**run, validated=validated, model=model)
            on_cluster(scored, "evaluate", gpu_image, gpu=True, network=True)
            scored.set_caching_options(False)
            shipped = register(
                **run, validated=validated, model=model, results=scored.outputs["results"]
            )
            on_cluster(shipped, "register", base_image, network=True).set_caching_options(False)

        with dsl.If(plan.outputs["sft_enabled"] == True, name="with-sft"):  # noqa: E712
            warm = on_cluster(sft(**run, validated=validated), "sft", gpu_image, gpu=True)
            warm.set_caching_options(False)
            grpo_evaluate_register(start_model=warm.outputs["model"])
        with dsl.Else(name="without-sft"):
            grpo_evaluate_register()

    return miva_pipeline

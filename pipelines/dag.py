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

from components import configure, evaluate, grpo, register, sft, synthesize, validate
from miva.config import MivaConfig
from miva.pipeline.images import image_ref
from miva.pipeline.secrets import secret_env
from miva.pipeline.stage import encode_overrides

PIPELINE_NAME = "miva"
RUN_ID = dsl.PIPELINE_JOB_ID_PLACEHOLDER
TASK_NAME = dsl.PIPELINE_TASK_NAME_PLACEHOLDER


def build_pipeline(cfg: MivaConfig, preset: str, overrides: list[str] | tuple[str, ...] = ()):
    """The pipeline function, with the parameter defaults and cluster settings of `cfg`."""
    p = cfg.pipeline

    def on_cluster(task: dsl.PipelineTask, image, *, gpu: bool = False, network: bool = False):
        """Image, secrets and (GPU stages) scheduling; kfp.local ignores all of it."""
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
        return task

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
        ids = {"kfp_run_id": RUN_ID, "kfp_task_name": TASK_NAME}

        plan = configure(
            preset=preset, overrides=overrides, image_registry=image_registry, image_tag=image_tag
        ).set_display_name("configure")
        plan.set_container_image(image_ref(p.image_registry, "base", p.image_tag))
        plan.set_caching_options(False)
        base_image, gpu_image = plan.outputs["base_image"], plan.outputs["gpu_image"]

        data = synthesize(**run, **ids).set_display_name("synthesize")
        on_cluster(data, base_image, network=True).set_caching_options(p.caching)

        gate = validate(**run, **ids, dataset=data.outputs["dataset"])
        on_cluster(gate.set_display_name("validate"), base_image).set_caching_options(p.caching)
        validated = gate.outputs["validated"]

        def rl_evaluate_register(start_model=None):
            train_args = {"start_model": start_model} if start_model is not None else {}
            trained = grpo(**run, **ids, train_image=gpu_image, validated=validated, **train_args)
            trained.set_display_name("grpo").set_caching_options(False)
            if p.num_nodes > 1:  # the task only submits and follows a TrainJob
                on_cluster(trained, base_image, network=True)
            else:
                on_cluster(trained, gpu_image, gpu=True)
            model = trained.outputs["model"]
            scored = evaluate(**run, **ids, validated=validated, model=model)
            scored.set_display_name("evaluate").set_caching_options(False)
            on_cluster(scored, gpu_image, gpu=True, network=True)
            shipped = register(
                **run, **ids, validated=validated, model=model, results=scored.outputs["results"]
            )
            shipped.set_display_name("register").set_caching_options(False)
            on_cluster(shipped, base_image, network=True)

        with dsl.If(plan.outputs["sft_enabled"] == True, name="with-sft"):  # noqa: E712
            warm = sft(**run, **ids, validated=validated).set_display_name("sft")
            on_cluster(warm.set_caching_options(False), gpu_image, gpu=True)
            rl_evaluate_register(start_model=warm.outputs["model"])
        with dsl.Else(name="without-sft"):
            rl_evaluate_register()

    return miva_pipeline

"""MLflow lineage, model logging and the promotion policy.

Nothing here imports mlflow at module level; `import miva.registry` is cheap.

API the pipeline, the trainer, the evaluator and the CLI use
-------------------------------------------------------------

Tracking (`miva.registry.tracking`):

- ``configure(cfg) -> str``: point MLflow at ``$MLFLOW_TRACKING_URI`` when set, else at
  ``cfg.registry.tracking_uri`` (default ``sqlite:///.miva/mlflow.db``, artifacts under
  ``./.miva/mlartifacts``); bounded HTTP retries; returns the URI. Every function below
  calls it, so callers rarely need to.
- ``pipeline_run(cfg, kfp_run_id=None)``: context manager, the parent run of one pipeline
  run. Tags: ``miva.kfp_run_id`` (argument or ``$KFP_RUN_ID``), ``miva.git_commit``
  (``$MIVA_GIT_COMMIT`` or ``git rev-parse``), ``miva.config_hash`` (``cfg.digest()``),
  ``miva.image_tag`` / ``miva.image_registry``. Logs the flattened config as params and the
  resolved config as ``config/config.json``. Sets ``$MIVA_PARENT_RUN_ID`` so child processes
  join it. When ``$MIVA_PARENT_RUN_ID`` is already set, it re-opens that run instead of
  creating one (and leaves it open on exit: the creator ends it).
- ``stage_run(cfg, stage)``: context manager, one child run per stage (``synthesize``,
  ``validate``, ``sft``, ``grpo``, ``evaluate``, ``register``) under the parent found from
  ``$MIVA_PARENT_RUN_ID``, else from the ``miva.kfp_run_id`` tag (``$KFP_RUN_ID``), else a
  new parent. Tags ``miva.stage``, ``miva.kfp_run_id``, ``miva.kfp_task_name``
  (``$KFP_TASK_NAME``). Inside it, plain ``mlflow.log_metrics({...}, step=...)`` and
  ``mlflow.log_artifact(...)`` go to the stage's run.
- ``log_dataset(path_or_uri, name, context)``: records a MIVA dataset folder as an input of
  the active run (digest from ``dataset.json`` via ``miva.data.io.read_info``, source URI,
  per-split counts as a tag). ``context`` is ``train``, ``eval``, ``validation``...
- ``log_config(cfg)``, ``log_report(path)``: helpers for the same active run.

Registry (`miva.registry.registry`):

- ``register_model(cfg, model_dir, metrics, eval_digest=None, dataset=None, ...)
  -> Registration``: logs the model (pyfunc; ``mlflow.pyfunc.load_model`` loads it and
  ``predict`` generates answers), creates a new version with tags (``miva.dataset_digest``,
  ``miva.eval_digest``, ``miva.metric.<name>``, ``miva.parent_run_id``,
  ``miva.config_hash``), sets alias ``challenger``, then applies the promotion policy under
  a registry lock; writes ``miva.decision`` / ``miva.decision_reasons`` tags, the version
  description and ``promotion.md``.
- ``promote(cfg, version)``, ``rollback(cfg, version=None)``, ``show(cfg) -> str``.

Metrics input for ``miva register --metrics FILE``: the flat ``name -> float`` map that
``miva evaluate`` writes. The eval-set digest comes from ``--eval-digest``, else from string
values under keys ending in ``/digest`` in the same file (``eval/<set>/digest``), else from
an ``eval_digest`` key in the file or in ``eval.json`` / ``report.json`` next to it (see
``registry.load_metrics``).

Policy (`miva.registry.policy`): ``decide(...) -> Decision`` is pure (no MLflow).
"""

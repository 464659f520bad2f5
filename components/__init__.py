"""KFP v2 lightweight components, one module per stage; each body only calls `miva`.

The images carry `miva` and `kfp` installed (images/), so components install nothing at
run time (`install_kfp_package=False`, no `packages_to_install`). Every component takes
the run's config as `preset` + `overrides` (a JSON list of `key.path=value` strings). The
KFP run id and task name arrive as `$KFP_RUN_ID` / `$KFP_TASK_NAME` (set by the DAG, not
passed as inputs, so they stay out of the cache keys) and tag each stage's MLflow run.
"""

from components.configure import configure
from components.evaluate import evaluate
from components.grpo import grpo
from components.register import register
from components.sft import sft
from components.sweep import sweep_plan, sweep_select, sweep_trial
from components.synthesize import synthesize
from components.validate import validate

__all__ = [
    "configure",
    "evaluate",
    "grpo",
    "register",
    "sft",
    "sweep_plan",
    "sweep_select",
    "sweep_trial",
    "synthesize",
    "validate",
]

"""KFP v2 lightweight components, one module per stage; each body calls one `miva.stages`
function and moves artifacts in and out.

The images carry `miva` and `kfp` installed (images/), so components install nothing at
run time (`install_kfp_package=False`, no `packages_to_install`). Every component takes
the run's config as `preset` + `overrides` (a JSON list of `key.path=value` strings). The
KFP run id and task name arrive as `$KFP_RUN_ID` / `$KFP_TASK_NAME` (set by the DAG, not
passed as inputs, so they stay out of the cache keys) and tag each stage's MLflow run.
"""

from miva.pipeline.components.configure import configure
from miva.pipeline.components.evaluate import evaluate
from miva.pipeline.components.grpo import grpo
from miva.pipeline.components.register import register
from miva.pipeline.components.sft import sft
from miva.pipeline.components.sweep import sweep_plan, sweep_select, sweep_trial
from miva.pipeline.components.synthesize import synthesize
from miva.pipeline.components.validate import validate

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

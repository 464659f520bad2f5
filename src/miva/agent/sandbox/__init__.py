"""The python tool's sandbox: where model-written code runs, and what it cannot reach.

- `local.LocalSandbox`: kernel isolation on this machine (bubblewrap namespaces, a
  read-only runtime, a tmpfs working folder, a cgroup per call with process, memory and
  CPU limits); the weak audit-hook mode only when the config allows it.
- `service`: the same sandbox behind HTTP (`miva sandbox serve`) and its client
  `ServiceSandbox`, for clusters where pods cannot create namespaces.
- `cgroups`: per-call cgroups on v1 and v2.
- `boot.py`: the script that runs first inside each sandbox.

`make_sandbox(cfg.agent.python)` picks the backend; `sandbox_mode(cfg.agent.python)` names
how calls will be isolated (recorded as the MLflow tag `miva.python_sandbox`).
docs/sandbox.md describes exactly what is isolated, by which mechanism.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Protocol

from PIL import Image

from miva.agent.sandbox.limits import OUTPUT_IMAGE, SandboxLimits, SandboxResult

__all__ = [
    "OUTPUT_IMAGE",
    "Sandbox",
    "SandboxLimits",
    "SandboxResult",
    "make_sandbox",
    "sandbox_mode",
]


class Sandbox(Protocol):
    limits: SandboxLimits

    @property
    def mode(self) -> str: ...

    def run(
        self, code: str, images: list[Image.Image], limits: SandboxLimits | None = None
    ) -> SandboxResult: ...

    def close(self) -> None: ...


@lru_cache(maxsize=8)
def _local(limits: SandboxLimits, allow_weak: bool, prestart: int) -> Sandbox:
    from miva.agent.sandbox.local import LocalSandbox

    return LocalSandbox(limits, allow_weak=allow_weak, prestart=prestart)


def make_sandbox(cfg: Any) -> Sandbox:
    """The sandbox of an `agent.python` config section; one per distinct config and process
    (its warm sandboxes are shared by every tool built from the same config)."""
    limits = SandboxLimits.from_config(cfg)
    if cfg.backend == "service":
        from miva.agent.sandbox.service import ServiceSandbox

        return ServiceSandbox(cfg.service_url, limits)
    return _local(limits, cfg.allow_weak_isolation, cfg.prestart)


def sandbox_mode(cfg: Any) -> str:
    """How calls of this config are isolated, e.g. `kernel+cgroup-v1`, `service:kernel+rlimits`,
    or `unavailable: <why>` when the tool would refuse to run."""
    from miva.errors import MivaError

    try:
        return make_sandbox(cfg).mode
    except MivaError as exc:
        return f"unavailable: {exc}"[:500]

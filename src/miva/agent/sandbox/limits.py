"""What one sandboxed call may use, and what it returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from PIL import Image

OUTPUT_IMAGE = "output.png"
FILE_LIMIT_BYTES = 16 * 1024 * 1024  # no file, and no stream (stdout), may grow beyond this
MAX_OUTPUT_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class SandboxLimits:
    """Per-call limits (the `agent.python` config section holds the same names)."""

    cpu_seconds: int = 5
    wall_seconds: float = 10.0
    memory_mb: int = 1024
    output_bytes: int = 8192
    processes: int = 32
    cpus: float = 1.0
    disk_mb: int = 64
    startup_seconds: float = 30.0

    @classmethod
    def from_config(cls, cfg: Any) -> SandboxLimits:
        return cls(**{f.name: getattr(cfg, f.name) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def capped_by(self, ceiling: SandboxLimits) -> SandboxLimits:
        """Each limit at most the ceiling's (a service never grants more than it was set up with)."""
        return SandboxLimits(
            **{f.name: min(getattr(self, f.name), getattr(ceiling, f.name)) for f in fields(self)}
        )


@dataclass
class SandboxResult:
    ok: bool
    stdout: str
    error: str  # "" when ok; the reason (exception text, limit hit) otherwise
    image: Image.Image | None = None
    mode: str = ""  # how the call was isolated, see `miva.agent.sandbox.local.Isolation`
    peak_memory_bytes: int | None = None  # all processes of the call (cgroup), when measured

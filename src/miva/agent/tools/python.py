"""`python(code)`: run model-written Python against the images in a sandbox (Visual-ARFT)."""

from __future__ import annotations

from typing import Any, ClassVar

from miva.agent.sandbox import OUTPUT_IMAGE, Sandbox
from miva.agent.tools.base import Tool, ToolContext, ToolResult


class Python(Tool):
    name = "python"
    description = (
        "Run Python code. `images` is the list of images in the context (images[0] is Image 1) "
        f"as PIL images; `np` (numpy) and `Image` (PIL) are imported. Print results; save an "
        f"image as '{OUTPUT_IMAGE}' to see it. No network, no files outside the working folder."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "maxLength": 20000, "description": "Python source"}
        },
        "required": ["code"],
        "additionalProperties": False,
    }

    def __init__(self, sandbox: Sandbox | None = None):
        self._sandbox = sandbox

    @property
    def sandbox(self) -> Sandbox:
        """The given sandbox, or (first use) the one of the default `agent.python` config."""
        if self._sandbox is None:
            from miva.agent.sandbox import make_sandbox
            from miva.config import PythonToolConfig

            self._sandbox = make_sandbox(PythonToolConfig())
        return self._sandbox

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        res = self.sandbox.run(arguments["code"], ctx.images)
        out = res.stdout.strip()
        if not res.ok:
            return ToolResult(False, f"error: {res.error}" + (f"\nstdout: {out}" if out else ""))
        images = [(res.image, None)] if res.image is not None else []
        return ToolResult(True, f"stdout: {out}" if out else "stdout: (empty)", images)

"""`view(image)`: confirmation — put original image k back into the context."""

from __future__ import annotations

from typing import Any, ClassVar

from miva.agent.tools.base import Tool, ToolContext, ToolResult, image_number


class View(Tool):
    name = "view"
    description = "Look at an original image again: it is added to the context as a new image."
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "image": {
                "type": "integer",
                "minimum": 1,
                "description": "original image number (1-based)",
            }
        },
        "required": ["image"],
        "additionalProperties": False,
    }

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        k = image_number(arguments["image"], ctx, originals_only=True)
        f = ctx.frames[k - 1]
        origin = (k, (0.0, 0.0, float(f.width), float(f.height)))
        return ToolResult(True, f"image {k} again", [(ctx.images[k - 1].copy(), origin)])

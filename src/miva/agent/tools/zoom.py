"""`zoom(image, bbox)`: visual reflection — crop a region of an image and enlarge it."""

from __future__ import annotations

from typing import Any, ClassVar

from PIL import Image

from miva.agent import coords
from miva.agent.tools.base import Tool, ToolArgumentError, ToolContext, ToolResult, image_number

SLACK = 1.0  # model coordinates may overshoot the border by this much (rounding)


class Zoom(Tool):
    name = "zoom"
    description = (
        "Crop a region of an image (an original image or an earlier tool image) and show it "
        "enlarged as a new image. bbox is [x1, y1, x2, y2] in the image's coordinates."
    )
    parameters: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "image": {"type": "integer", "minimum": 1, "description": "image number (1-based)"},
            "bbox": {
                "type": "array",
                "items": {"type": "number", "minimum": 0},
                "minItems": 4,
                "maxItems": 4,
                "description": "[x1, y1, x2, y2]",
            },
        },
        "required": ["image", "bbox"],
        "additionalProperties": False,
    }

    def __init__(self, upscale_to: int = 112):
        self.upscale_to = upscale_to

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        k = image_number(arguments["image"], ctx)
        frame = ctx.frames[k - 1]
        x1, y1, x2, y2 = (float(v) for v in arguments["bbox"])
        lim = coords.to_model([0, 0, frame.width, frame.height], frame, ctx.family)
        if x2 <= x1 or y2 <= y1:
            raise ToolArgumentError(
                f"bbox {arguments['bbox']} has zero area; need x1 < x2 and y1 < y2"
            )
        if x2 > lim[2] + SLACK or y2 > lim[3] + SLACK:
            raise ToolArgumentError(
                f"bbox {arguments['bbox']} goes beyond image {k}, whose box is [0, 0, {lim[2]}, {lim[3]}]"
            )
        px = coords.from_model([x1, y1, min(x2, lim[2]), min(y2, lim[3])], frame, ctx.family)
        px = [
            max(0.0, px[0]),
            max(0.0, px[1]),
            min(float(frame.width), px[2]),
            min(float(frame.height), px[3]),
        ]
        left, top = int(px[0]), int(px[1])
        right, bottom = max(left + 1, round(px[2])), max(top + 1, round(px[3]))
        w, h = right - left, bottom - top
        if max(w, h) / min(w, h) > 50:
            raise ToolArgumentError(f"bbox {arguments['bbox']} is too thin (aspect ratio above 50)")
        crop = ctx.images[k - 1].crop((left, top, right, bottom))
        scale = self.upscale_to / max(w, h)
        crop = crop.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BICUBIC)
        src = ctx.source_of(k)
        origin = region = None
        if src is not None:
            sk, _ = src
            _, sbox = coords.to_source([left, top, right, bottom], _with_origin(frame, src, k, ctx))
            origin = (sk, tuple(sbox))
            region = {"image": sk, "bbox": [float(v) for v in sbox]}
        return ToolResult(
            True, f"zoomed into image {k} at {arguments['bbox']}", [(crop, origin)], region
        )


def _with_origin(frame, src, k, ctx):
    """A frame whose origin is its source box, originals included (identity mapping)."""
    if k <= ctx.n_original:
        return coords.Frame(
            frame.width, frame.height, frame.resized_width, frame.resized_height, src
        )
    return frame

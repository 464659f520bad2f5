"""`zoom(image, bbox)` or `zoom(image, region)`: visual reflection — crop a region of an
image and enlarge it.

`region` names one cell of a 3 x 3 grid over the image ("top left", "top centre", ...,
"centre", ..., "bottom right": the position words of the synthetic captions). A named
cell costs a tiny model a few tokens it already knows, where a box needs four numbers in
the right coordinate convention; the crop is the same kind of image either way.
"""

from __future__ import annotations

from typing import Any, ClassVar

from PIL import Image

from miva.agent import coords
from miva.agent.tools.base import Tool, ToolArgumentError, ToolContext, ToolResult, image_number

SLACK = 1.0  # model coordinates may overshoot the border by this much (rounding)
ROWS = ("top", "middle", "bottom")
COLS = ("left", "centre", "right")
# region name -> (row, column) of the 3 x 3 grid; the centre cell is just "centre"
REGIONS: dict[str, tuple[int, int]] = {
    ("centre" if (r, c) == (1, 1) else f"{ROWS[r]} {COLS[c]}"): (r, c)
    for r in range(3)
    for c in range(3)
}


def region_box(region: str, width: int, height: int) -> list[float]:
    """Pixel box of a named grid cell of a width x height image.

    >>> region_box("top right", 336, 336)
    [224.0, 0.0, 336.0, 112.0]
    """
    r, c = REGIONS[region]
    return [c * width / 3, r * height / 3, (c + 1) * width / 3, (r + 1) * height / 3]


class Zoom(Tool):
    name = "zoom"
    description = (
        "Crop a region of an image (an original image or an earlier tool image) and show it "
        "enlarged as a new image. Give bbox [x1, y1, x2, y2] in the image's coordinates, or "
        "region, one cell of a 3 x 3 grid: top left, top centre, ..., centre, ..., bottom right."
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
            "region": {"type": "string", "maxLength": 16, "description": "grid cell name"},
        },
        "required": ["image"],
        "additionalProperties": False,
    }

    def __init__(self, upscale_to: int = 112):
        self.upscale_to = upscale_to

    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        k = image_number(arguments["image"], ctx)
        frame = ctx.frames[k - 1]
        if ("bbox" in arguments) == ("region" in arguments):
            raise ToolArgumentError("give exactly one of bbox and region")
        if "region" in arguments:
            name = " ".join(str(arguments["region"]).lower().split())
            if name not in REGIONS:
                raise ToolArgumentError(
                    f"region {arguments['region']!r} is not a grid cell; use one of {list(REGIONS)}"
                )
            px = region_box(name, frame.width, frame.height)
            asked: object = name
        else:
            px = self._pixels(arguments["bbox"], frame, ctx, k)
            asked = arguments["bbox"]
        left, top = int(px[0]), int(px[1])
        right, bottom = max(left + 1, round(px[2])), max(top + 1, round(px[3]))
        w, h = right - left, bottom - top
        if max(w, h) / min(w, h) > 50:
            raise ToolArgumentError(f"bbox {asked} is too thin (aspect ratio above 50)")
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
        return ToolResult(True, f"zoomed into image {k} at {asked}", [(crop, origin)], region)

    @staticmethod
    def _pixels(bbox: list[float], frame, ctx: ToolContext, k: int) -> list[float]:
        """A model-coordinate box -> pixels of image k, clipped to the image."""
        x1, y1, x2, y2 = (float(v) for v in bbox)
        lim = coords.to_model([0, 0, frame.width, frame.height], frame, ctx.family)
        if x2 <= x1 or y2 <= y1:
            raise ToolArgumentError(f"bbox {bbox} has zero area; need x1 < x2 and y1 < y2")
        if x2 > lim[2] + SLACK or y2 > lim[3] + SLACK:
            raise ToolArgumentError(
                f"bbox {bbox} goes beyond image {k}, whose box is [0, 0, {lim[2]}, {lim[3]}]"
            )
        px = coords.from_model([x1, y1, min(x2, lim[2]), min(y2, lim[3])], frame, ctx.family)
        return [
            max(0.0, px[0]),
            max(0.0, px[1]),
            min(float(frame.width), px[2]),
            min(float(frame.height), px[3]),
        ]


def _with_origin(frame, src, k, ctx):
    """A frame whose origin is its source box, originals included (identity mapping)."""
    if k <= ctx.n_original:
        return coords.Frame(
            frame.width, frame.height, frame.resized_width, frame.resized_height, src
        )
    return frame

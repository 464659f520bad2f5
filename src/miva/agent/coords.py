"""THE one place where box coordinates change convention.

Conventions (a box is always `[x1, y1, x2, y2]`):
- dataset pixels: pixels of the image as stored in the dataset (`Sample`, rewards,
  `ToolCall.region`);
- model coordinates, by family: `qwen2.5-vl` uses absolute pixels of the *resized* image
  the model saw (after `smart_resize`); `qwen2-vl` uses integers on a 0-1000 grid;
- relative: fractions 0-1 of width and height (MIG-Bench answers).

A `Frame` records how one image was shown: its own size and the resized size. For a tool
image (a zoom crop), `origin` maps the crop back into its source image: the source
image number (1-based) and the crop box in that image's dataset pixels.

Worked example: a 448x448 dataset image shown at 112x112 (Qwen2.5-VL). The model says
`[28, 28, 56, 56]`; scale 448/112 = 4 -> dataset pixels `[112, 112, 224, 224]`. Under
Qwen2-VL the same region is `[250, 250, 500, 500]` (112/448*1000 = 250).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

FAMILIES = ("qwen2.5-vl", "qwen2-vl")


@dataclass(frozen=True)
class Frame:
    width: int
    height: int
    resized_width: int
    resized_height: int
    # for derived images: (source image number, box of this image in the source's dataset pixels)
    origin: tuple[int, tuple[float, float, float, float]] | None = None

    @property
    def resized_pixels(self) -> int:
        return self.resized_width * self.resized_height


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = 56 * 56,
    max_pixels: int = 112 * 112,
) -> tuple[int, int]:
    """(height, width) after Qwen2-VL's resize: multiples of `factor`, pixels within bounds.

    Same rule as `transformers`' `smart_resize`, repeated here so coordinates need no
    torch import. 448x448 with max 112*112 -> 112x112; a 56 wide, 120 high image ->
    (112, 56): 120/28 rounds to 4 -> 112, 56/28 = 2 -> 56, and 112*56 is within bounds.
    """
    if min(height, width) <= 0:
        raise ValueError(f"image of size {width}x{height} has no pixels")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio of a {width}x{height} image is above 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def frame_for(width: int, height: int, image_processor, origin=None) -> Frame:
    """The Frame of a `width` x `height` image under a Qwen2-VL image processor's settings."""
    size = image_processor.size
    min_pixels = _get(size, "shortest_edge", "min_pixels")
    max_pixels = _get(size, "longest_edge", "max_pixels")
    factor = int(image_processor.patch_size) * int(image_processor.merge_size)
    h, w = smart_resize(height, width, factor, min_pixels, max_pixels)
    return Frame(width, height, w, h, origin)


def _get(size, *keys):
    for k in keys:
        v = size.get(k) if isinstance(size, dict) else getattr(size, k, None)
        if v is not None:
            return int(v)
    raise ValueError(f"image processor size {size!r} has none of {keys}")


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known: {FAMILIES}")


def to_model(bbox: Sequence[float], frame: Frame, family: str) -> list[float]:
    """Dataset pixels of `frame`'s image -> the family's model coordinates (rounded to int)."""
    _check_family(family)
    if family == "qwen2.5-vl":
        sx, sy = frame.resized_width / frame.width, frame.resized_height / frame.height
    else:
        sx, sy = 1000.0 / frame.width, 1000.0 / frame.height
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return [round(x1 * sx), round(y1 * sy), round(x2 * sx), round(y2 * sy)]


def from_model(bbox: Sequence[float], frame: Frame, family: str) -> list[float]:
    """The family's model coordinates -> dataset pixels of `frame`'s image (not clipped)."""
    _check_family(family)
    if family == "qwen2.5-vl":
        sx, sy = frame.width / frame.resized_width, frame.height / frame.resized_height
    else:
        sx, sy = frame.width / 1000.0, frame.height / 1000.0
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return [x1 * sx, y1 * sy, x2 * sx, y2 * sy]


def to_source(bbox: Sequence[float], frame: Frame) -> tuple[int | None, list[float]]:
    """Pixels of a (possibly derived) image -> (source image number, source dataset pixels).

    For an original image `origin` is None and the box is returned unchanged with None."""
    if frame.origin is None:
        return None, [float(v) for v in bbox]
    k, (ox1, oy1, ox2, oy2) = frame.origin
    sx, sy = (ox2 - ox1) / frame.width, (oy2 - oy1) / frame.height
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return k, [ox1 + x1 * sx, oy1 + y1 * sy, ox1 + x2 * sx, oy1 + y2 * sy]

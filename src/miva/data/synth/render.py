"""Pillow renderer: scene graph -> images.

Images are drawn in palette mode ("P"): the scene uses a handful of flat colours, so a
palette image is lossless, one byte per pixel, and encodes to PNG several times faster
than RGB (see bench/synth.py). `Sample.image()` converts it to RGB on decode.
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache

from PIL import Image, ImageChops, ImageDraw, ImageFont

from miva.data.synth.scene import BACKGROUNDS, COLOURS, ImageSpec, Obj, Scene

# Palette index of every named colour: backgrounds, object colours, black and white ink.
_NAMES = [*BACKGROUNDS, *COLOURS, "black"]
_RGB = {**BACKGROUNDS, **COLOURS, "black": (0, 0, 0)}
INDEX = {name: i for i, name in enumerate(_NAMES)}
PALETTE = [c for name in _NAMES for c in _RGB[name]]
_DARK = {"red", "green", "blue", "purple"}


@lru_cache(maxsize=64)
def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


def _shape_points(shape: str, box: list[int]) -> list[tuple[float, float]] | None:
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    if shape == "triangle":
        return [(cx, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)]
    if shape == "diamond":
        return [(cx, y1), (x2 - 1, cy), (cx, y2 - 1), (x1, cy)]
    return None


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, box: list[int], fill: int) -> None:
    x1, y1, x2, y2 = box
    if shape == "circle":
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=fill)
    elif shape == "square":
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=fill)
    else:
        points = _shape_points(shape, box)
        if points is None:
            raise ValueError(f"unknown shape {shape!r}")
        draw.polygon(points, fill=fill)


@lru_cache(maxsize=256)
def _texture_mask(shape: str, texture: str, w: int, h: int) -> Image.Image:
    """Mode "1" mask of the texture marks inside a shape of size w x h (cached: sizes repeat)."""
    mask = Image.new("1", (w, h), 0)
    _draw_shape(ImageDraw.Draw(mask), shape, [0, 0, w, h], 1)
    marks = Image.new("1", (w, h), 0)
    d = ImageDraw.Draw(marks)
    period = max(3, w // 5)
    if texture == "striped":
        width = max(1, period // 3)
        for y in range(period // 2, h, period):
            d.rectangle([0, y, w, y + width - 1], fill=1)
    elif texture == "dotted":
        r = max(1, period // 5)
        for y in range(period // 2, h, period):
            for x in range(period // 2, w, period):
                d.ellipse([x - r, y - r, x + r, y + r], fill=1)
    return ImageChops.logical_and(mask, marks)


def _draw_object(img: Image.Image, draw: ImageDraw.ImageDraw, obj: Obj) -> None:
    colour = INDEX[obj.colour]
    _draw_shape(draw, obj.shape, obj.bbox, colour)
    x1, y1, x2, y2 = obj.bbox
    w, h = x2 - x1, y2 - y1
    ink = INDEX["white"] if obj.colour in _DARK else INDEX["black"]
    if obj.texture != "plain":
        img.paste(ink, (x1, y1), _texture_mask(obj.shape, obj.texture, w, h))
    if obj.label:
        px = max(6, int(min(w, h) * (0.34 if obj.shape in ("triangle", "diamond") else 0.45)))
        cy = (y1 + y2) / 2 + (h * 0.15 if obj.shape == "triangle" else 0)
        draw.text(((x1 + x2) / 2, cy), obj.label, fill=ink, font=_font(px), anchor="mm")


def render_image(spec: ImageSpec, size: int) -> Image.Image:
    img = Image.new("P", (size, size), INDEX[spec.background])
    img.putpalette(PALETTE)
    draw = ImageDraw.Draw(img)
    for obj in spec.objects:
        _draw_object(img, draw, obj)
    return img


def encode(img: Image.Image) -> bytes:
    """PNG bytes; zlib level 1 (the scenes are flat colour, so it still compresses well)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def render_scene(scene: Scene) -> list[bytes]:
    """Encoded PNG per image; identical images (the difference task) are drawn once."""
    cache: dict[str, bytes] = {}
    out = []
    for spec in scene.images:
        key = hashlib.sha1(repr((spec.background, spec.objects)).encode()).hexdigest()
        if key not in cache:
            cache[key] = encode(render_image(spec, scene.size))
        out.append(cache[key])
    return out

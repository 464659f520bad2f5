"""Scene designer: the scene graph of a multi-image sample and the agent that builds it.

A scene is a list of images, each a background and a list of objects with a shape, a
colour, a size class, a pixel xyxy box, a texture and an optional short text label. The
graph is plain data (`Scene.to_dict()` is JSON) and is the only thing the solver reads:
answers are derived from it, never from pixels.

Design choices that make the tasks fine-grained yet learnable at low resolution:
- few, well separated colours and four shapes, so a 56-112 px image still shows them;
- "small" targets cover about 1-3 % of the image area, so zooming in helps;
- each sample draws its objects from a small shared vocabulary of (shape, colour) pairs,
  so the same distractors recur across the images of a sample.

The "coarse" detail level is for models that see little (a tiny model at 56 px): one
large, plain, unlabelled object per random image, and targets named by colour alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (30, 160, 60),
    "blue": (40, 80, 230),
    "yellow": (245, 205, 20),
    "purple": (150, 50, 200),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "grey": (215, 215, 215),
}
TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted")
SIZES: tuple[str, ...] = ("small", "large")
LABEL_CHARS = "ABCDEFHKMNPRTX"
# Side of an object as a fraction of the image side.
SIDE_FRACTION = {"small": (0.13, 0.17), "large": (0.24, 0.30)}
# Coarse scenes: the object fills about a quarter of the image, so that at 56 px (four
# vision tokens) every token sees some of it.
COARSE_SIDE_FRACTION = (0.45, 0.55)
ATTRIBUTES: tuple[str, ...] = ("shape", "colour", "size", "texture", "label")

Descriptor = dict[str, str]


@dataclass
class Obj:
    shape: str
    colour: str
    size: str
    bbox: list[int]  # pixel xyxy
    texture: str = "plain"
    label: str | None = None

    def matches(self, desc: Descriptor) -> bool:
        return all(getattr(self, k) == v for k, v in desc.items())

    def attrs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ATTRIBUTES}

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "colour": self.colour,
            "size": self.size,
            "bbox": list(self.bbox),
            "texture": self.texture,
            "label": self.label,
        }


@dataclass
class ImageSpec:
    background: str
    objects: list[Obj] = field(default_factory=list)


@dataclass
class Scene:
    size: int
    images: list[ImageSpec]

    def to_dict(self) -> dict[str, Any]:
        # written out instead of dataclasses.asdict: asdict's recursion was 14 % of generation time
        return {
            "size": self.size,
            "images": [
                {"background": im.background, "objects": [o.to_dict() for o in im.objects]}
                for im in self.images
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scene:
        return cls(
            size=int(d["size"]),
            images=[
                ImageSpec(
                    background=im["background"],
                    objects=[
                        Obj(**{**o, "bbox": [int(v) for v in o["bbox"]]}) for o in im["objects"]
                    ],
                )
                for im in d["images"]
            ],
        )

    def copy(self) -> Scene:
        return Scene.from_dict(self.to_dict())

    def matches(self, desc: Descriptor) -> list[tuple[int, Obj]]:
        """(1-based image number, object) for every object matching `desc`."""
        return [
            (k, o)
            for k, im in enumerate(self.images, start=1)
            for o in im.objects
            if o.matches(desc)
        ]


class PlacementError(RuntimeError):
    """No free space left for an object; the caller retries with a new scene."""


def overlaps(a: list[int], b: list[int], margin: int) -> bool:
    return not (
        a[2] + margin <= b[0]
        or b[2] + margin <= a[0]
        or a[3] + margin <= b[1]
        or b[3] + margin <= a[1]
    )


class SceneDesigner:
    """Builds random scenes and plants targets into them (all randomness from `rng`)."""

    def __init__(
        self,
        rng: random.Random,
        size: int,
        label_p: float = 0.25,
        texture_p: float = 0.2,
        coarse: bool = False,
    ):
        self.rng = rng
        self.size = size
        self.coarse = coarse
        self.label_p = 0.0 if coarse else label_p
        self.texture_p = 0.0 if coarse else texture_p
        self.margin = max(1, size // 64)

    # ------------------------------------------------------------------ objects
    def side(self, size_class: str) -> int:
        lo, hi = COARSE_SIDE_FRACTION if self.coarse else SIDE_FRACTION[size_class]
        return max(3, round(self.size * self.rng.uniform(lo, hi)))

    def free_box(self, image: ImageSpec, side: int, tries: int = 60) -> list[int]:
        pad = self.margin
        hi = self.size - side - pad
        if hi < pad:
            raise PlacementError(f"object of side {side} does not fit in {self.size} px")
        for _ in range(tries):
            x = self.rng.randint(pad, hi)
            y = self.rng.randint(pad, hi)
            box = [x, y, x + side, y + side]
            if not any(overlaps(box, o.bbox, 2 * self.margin) for o in image.objects):
                return box
        raise PlacementError("no free space")

    def random_attrs(self, vocab: list[tuple[str, str]] | None = None) -> dict[str, Any]:
        if vocab and self.rng.random() < 0.75:
            shape, colour = self.rng.choice(vocab)
        else:
            shape, colour = self.rng.choice(SHAPES), self.rng.choice(list(COLOURS))
        return {
            "shape": shape,
            "colour": colour,
            "size": "large" if self.coarse else self.rng.choice(SIZES),
            "texture": self.rng.choice(TEXTURES[1:])
            if self.rng.random() < self.texture_p
            else "plain",
            "label": self.new_label() if self.rng.random() < self.label_p else None,
        }

    def new_label(self) -> str:
        return self.rng.choice(LABEL_CHARS) + str(self.rng.randint(1, 9))

    def add(self, image: ImageSpec, attrs: dict[str, Any], side: int | None = None) -> Obj:
        full = {"texture": "plain", "label": None, **attrs}
        box = self.free_box(image, side or self.side(full["size"]))
        obj = Obj(bbox=box, **full)
        image.objects.append(obj)
        return obj

    # ------------------------------------------------------------------ scenes
    def vocabulary(self, k: int = 3) -> list[tuple[str, str]]:
        """Shared (shape, colour) pairs: the distractors that recur across a sample's images."""
        pairs = [(s, c) for s in SHAPES for c in COLOURS]
        return self.rng.sample(pairs, k)

    def random_image(self, vocab: list[tuple[str, str]], lo: int = 2, hi: int = 4) -> ImageSpec:
        if self.coarse:
            lo = hi = 1
        image = ImageSpec(background=self.rng.choice(list(BACKGROUNDS)))
        for _ in range(self.rng.randint(lo, hi)):
            try:
                self.add(image, self.random_attrs(vocab))
            except PlacementError:
                break
        return image

    def random_scene(
        self, n_images: int, lo: int = 2, hi: int = 4
    ) -> tuple[Scene, list[tuple[str, str]]]:
        vocab = self.vocabulary()
        scene = Scene(self.size, [self.random_image(vocab, lo, hi) for _ in range(n_images)])
        return scene, vocab

    # ------------------------------------------------------------------ planting
    def exclude(self, scene: Scene, desc: Descriptor, keep: list[Obj] | None = None) -> None:
        """Change every object matching `desc` (except `keep`) so that it no longer matches.

        The changed objects stay as near-miss distractors: one attribute differs.
        """
        keep_ids = {id(o) for o in keep or []}
        for image in scene.images:
            for obj in image.objects:
                if id(obj) in keep_ids or not obj.matches(desc):
                    continue
                key = self.rng.choice(sorted(desc))
                setattr(obj, key, self.other_value(key, desc[key]))
                if obj.matches(desc):  # a label change to None cannot fail, others cannot either
                    raise AssertionError("exclude failed")

    def other_value(self, key: str, value: Any) -> Any:
        if key == "label":
            return None
        options = {
            "shape": SHAPES,
            "colour": tuple(COLOURS),
            "size": SIZES,
            "texture": TEXTURES,
        }[key]
        return self.rng.choice([v for v in options if v != value])

    def unique_label(self, scene: Scene) -> str:
        used = {o.label for im in scene.images for o in im.objects}
        for _ in range(100):
            label = self.new_label()
            if label not in used:
                return label
        raise PlacementError("no free label")


# ---------------------------------------------------------------------- text


def position_word(box: list[int], size: int) -> str:
    cx = (box[0] + box[2]) / 2 / size
    cy = (box[1] + box[3]) / 2 / size
    col = 0 if cx < 1 / 3 else (1 if cx < 2 / 3 else 2)
    row = 0 if cy < 1 / 3 else (1 if cy < 2 / 3 else 2)
    rows = ("top", "middle", "bottom")
    cols = ("left", "centre", "right")
    if row == 1 and col == 1:
        return "centre"
    if row == 1:
        return f"middle {cols[col]}"
    if col == 1:
        return f"{rows[row]} centre"
    return f"{rows[row]} {cols[col]}"


def describe(desc: Descriptor | dict[str, Any], plural: bool = False) -> str:
    """Noun phrase for a descriptor: {"size": "small", "colour": "red", "shape": "circle"} ->
    "small red circle"; plural -> "small red circles"; without a shape -> "object(s)"."""
    words = []
    for key in ("size", "texture", "colour"):
        value = desc.get(key)
        if value and value != "plain":
            words.append(value)
    noun = desc.get("shape") or "object"
    words.append(noun + ("s" if plural else ""))
    text = " ".join(words)
    if desc.get("label"):
        text += f" labelled '{desc['label']}'"
    return text


def caption(image: ImageSpec, size: int) -> str:
    """Short machine-usable description of one image, objects in reading order."""
    if not image.objects:
        return f"an empty {image.background} image"
    objs = sorted(
        image.objects, key=lambda o: (min(2, 3 * (o.bbox[1] + o.bbox[3]) // (2 * size)), o.bbox[0])
    )
    parts = [f"a {describe(o.attrs())} at {position_word(o.bbox, size)}" for o in objs]
    return ", ".join(parts)

"""Caption data: scenes paired with descriptions, for pretraining a model to see.

Every item is a `Sample` (task `caption`) whose gold assistant text describes what the
images show: per image, each object's size, colour and shape and where it is, in reading
order ("Image 2: large red circle at top left, small blue square at bottom right."),
sometimes followed by a count ("How many objects are in image 2?"). Scenes mix the two
detail levels the question writer uses (one large object per image, or 1-3 objects of
two sizes), one to three images each, drawn at sizes the tiny preset sees at 56 and
112 px. An image seen at 56 px (four vision tokens) always holds one large object: four
tokens cannot carry more, and training on what the model cannot see wastes steps. No
textures or text labels: at those resolutions the tiny model cannot read them.

`describe_text` and `parse_description` are inverses; `description_scores` grades a
generated description against the scene graph (the pretrained preset's model card).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from miva.data.schema import Sample
from miva.data.synth.render import render_scene
from miva.data.synth.scene import (
    COLOURS,
    SHAPES,
    SIZES,
    ImageSpec,
    Obj,
    PlacementError,
    Scene,
    SceneDesigner,
    position_word,
)

DESCRIBE_ALL = "Describe the images."
DESCRIBE_ONE = "Describe image {k}."
COUNT_ONE = "How many objects are in image {k}?"
POSITIONS: tuple[str, ...] = (
    "top left",
    "top centre",
    "top right",
    "middle left",
    "centre",
    "middle right",
    "bottom left",
    "bottom centre",
    "bottom right",
)
ATTRIBUTES: tuple[str, ...] = ("size", "colour", "shape", "position")


@dataclass(frozen=True)
class CaptionSettings:
    """What the caption scenes look like.

    image_sizes: drawn sizes (the tiny preset shows 56 px as 56 and 112-224 px as 112);
    images: min and max images per item; coarse_p: share of images with one large object
    (all of them at sizes below `busy_from`); max_objects: objects per busy image; kinds:
    weights of describe-all, describe-one and count questions.
    """

    image_sizes: tuple[int, ...] = (56, 112, 224)
    images: tuple[int, int] = (1, 3)
    coarse_p: float = 0.3
    max_objects: int = 3
    kinds: tuple[float, float, float] = (0.3, 0.5, 0.2)
    busy_from: int = 112


def _reading_order(image: ImageSpec, size: int) -> list[Obj]:
    # rows of a 3 x 3 grid from the top, then left to right (as scene.caption orders them)
    return sorted(
        image.objects,
        key=lambda o: (min(2, 3 * (o.bbox[1] + o.bbox[3]) // (2 * size)), o.bbox[0]),
    )


def object_phrase(obj: Obj, size: int) -> str:
    return f"{obj.size} {obj.colour} {obj.shape} at {position_word(obj.bbox, size)}"


def describe_image(k: int, image: ImageSpec, size: int) -> str:
    """'Image k: large red circle at top left, small blue square at bottom right.'"""
    objs = _reading_order(image, size)
    return f"Image {k}: " + ", ".join(object_phrase(o, size) for o in objs) + "."


def describe_text(scene: Scene, only: int | None = None) -> str:
    """The description of every image (or of image `only`), one sentence per image."""
    return " ".join(
        describe_image(k, im, scene.size)
        for k, im in enumerate(scene.images, 1)
        if only is None or k == only
    )


def _random_image(d: SceneDesigner, coarse: bool, max_objects: int) -> ImageSpec:
    image = ImageSpec(background=d.rng.choice(("white", "grey")))
    d.coarse = coarse
    for _ in range(1 if coarse else d.rng.randint(1, max_objects)):
        attrs = {
            "shape": d.rng.choice(SHAPES),
            "colour": d.rng.choice(list(COLOURS)),
            "size": "large" if coarse else d.rng.choice(SIZES),
        }
        try:
            d.add(image, attrs)
        except PlacementError:
            break
    return image


def caption_item(rng: random.Random, settings: CaptionSettings, split: str = "train") -> Sample:
    """One caption sample; `sample.meta["gold"]` is the assistant text to learn."""
    size = rng.choice(settings.image_sizes)
    n = rng.randint(*settings.images)
    d = SceneDesigner(rng, size, label_p=0.0, texture_p=0.0)
    scene = Scene(
        size,
        [
            _random_image(
                d,
                size < settings.busy_from or rng.random() < settings.coarse_p,
                settings.max_objects,
            )
            for _ in range(n)
        ],
    )
    kind = rng.choices(("all", "one", "count"), weights=settings.kinds)[0]
    k = rng.randint(1, n)
    if kind == "all":
        question, answer_type, answer = DESCRIBE_ALL, "text", describe_text(scene)
        gold = f"<answer>{answer}</answer>"
    elif kind == "one":
        question, answer_type = DESCRIBE_ONE.format(k=k), "text"
        answer = describe_text(scene, only=k)
        gold = f"<answer>{answer}</answer>"
    else:
        question, answer_type = COUNT_ONE.format(k=k), "number"
        answer = len(scene.images[k - 1].objects)
        gold = f"<think>{describe_text(scene, only=k)}</think><answer>{answer}</answer>"
    return Sample(
        task="caption",
        images=render_scene(scene),
        question=question,
        answer_type=answer_type,
        answer=answer,
        split=split,
        meta={"scene": scene.to_dict(), "kind": kind, "image": k, "gold": gold},
    )


def caption_items(
    n: int, seed: int, settings: CaptionSettings, split: str = "train"
) -> list[Sample]:
    """`n` caption samples from one seeded generator (the same seed gives the same items)."""
    rng = random.Random(f"miva-captions:{seed}:{split}")
    return [caption_item(rng, settings, split) for _ in range(n)]


# ----------------------------------------------------------------------------- grading

_IMAGE = re.compile(r"Image\s+(\d+)\s*:\s*(.*?)(?=Image\s+\d+\s*:|$)", re.S)


def parse_description(text: str) -> dict[int, list[dict[str, str | None]]]:
    """{image number: [{"size", "colour", "shape", "position"}, ...]} from a description;
    a word the vocabulary does not know leaves that attribute None."""
    out: dict[int, list[dict[str, str | None]]] = {}
    for m in _IMAGE.finditer(text):
        objs = []
        for part in m.group(2).strip().rstrip(".").split(","):
            words = part.strip()
            if not words:
                continue
            head, _, where = words.partition(" at ")
            tokens = head.split()
            objs.append(
                {
                    "size": next((w for w in tokens if w in SIZES), None),
                    "colour": next((w for w in tokens if w in COLOURS), None),
                    "shape": next((w for w in tokens if w in SHAPES), None),
                    "position": where.strip() if where.strip() in POSITIONS else None,
                }
            )
        out[int(m.group(1))] = objs
    return out


def description_scores(text: str, scene: Scene, only: int | None = None) -> dict[str, float]:
    """Per-attribute accuracy of a description against the scene, objects matched in
    reading order (a missing object counts wrong on every attribute, an extra one is
    ignored by the attributes but fails `count`); `count` is the share of images whose
    object count is right; `exact` is 1 when the whole description is right."""
    said = parse_description(text)
    images = [(k, im) for k, im in enumerate(scene.images, 1) if only is None or k == only]
    right = dict.fromkeys(ATTRIBUTES, 0)
    total = counted = 0
    for k, im in images:
        truth = _reading_order(im, scene.size)
        got = said.get(k, [])
        counted += len(got) == len(truth)
        for i, obj in enumerate(truth):
            total += 1
            if i >= len(got):
                continue
            want = {
                "size": obj.size,
                "colour": obj.colour,
                "shape": obj.shape,
                "position": position_word(obj.bbox, scene.size),
            }
            for a in ATTRIBUTES:
                right[a] += got[i][a] == want[a]
    scores = {a: right[a] / max(total, 1) for a in ATTRIBUTES}
    scores["count"] = counted / max(len(images), 1)
    scores["exact"] = float(text.strip() == describe_text(scene, only))
    return scores


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, Any]:
    keys = sorted({k for r in rows for k in r})
    return {k: sum(r.get(k, 0.0) for r in rows) / max(len(rows), 1) for k in keys}

"""Question writer: plants what a task family needs into a scene and phrases the question.

Each writer returns an `Item`: the scene, a structured `query` for the solver, the answer
type, a template id and the question stem; multiple-choice items also carry their option
texts (the generator orders them later so that option letters stay balanced). Writers
never compute answers themselves: the solver does, from the scene graph.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from miva.data.synth.scene import (
    COLOURS,
    SHAPES,
    Descriptor,
    ImageSpec,
    Obj,
    PlacementError,
    Scene,
    SceneDesigner,
    describe,
    position_word,
)
from miva.data.synth.solver import CHANGE_TYPES, RELATIONS, solve

TEMPLATES: dict[str, list[str]] = {
    "counting": [
        "How many {plural} are there across all {n} images?",
        "Count the {plural} in all the images together. How many are there?",
        "Across the {n} images, what is the total number of {plural}?",
    ],
    "selection": [
        "Which image shows the {desc}?",
        "In which of the {n} images can you find the {desc}?",
        "One of the images contains a {desc}. Which one?",
    ],
    "comparison/most": [
        "Which image contains the most {plural}?",
        "Of the {n} images, which one has the largest number of {plural}?",
        "Which image has more {plural} than any other image?",
    ],
    "comparison/relative": [
        "Compared with image {b}, does image {a} contain more, fewer, or the same number of {plural}?",
        "Does image {a} have more, fewer, or the same number of {plural} as image {b}?",
        "Count the {plural} in image {a} and in image {b}. Does image {a} have more, fewer, or the same number?",
    ],
    "attribute/colour": [
        "What colour is the {desc} in image {k}?",
        "In image {k}, which colour does the {desc} have?",
        "Look at image {k}. What is the colour of the {desc}?",
    ],
    "attribute/shape": [
        "What shape is the {desc} in image {k}?",
        "In image {k}, which shape does the {desc} have?",
        "Look at image {k}. What is the shape of the {desc}?",
    ],
    "attribute/label": [
        "What is written on the {desc} in image {k}?",
        "In image {k}, which label does the {desc} carry?",
        "Look at image {k}. What text is on the {desc}?",
    ],
    "closeup": [
        "What colour is the {desc} in the {region} of image {k}?",
        "In image {k}, which colour does the {desc} in the {region} have?",
        "Look at the {region} of image {k}. What is the colour of the {desc} there?",
    ],
    "grounding": [
        "Give the bounding box of the {desc} in image {k}.",
        "Where is the {desc} in image {k}? Give its box.",
        "Locate the {desc} in image {k}.",
    ],
    "group_grounding": [
        "Find the {desc}: which image is it in, and where?",
        "Which image contains the {desc}, and what is its bounding box?",
        "Locate the {desc} among the {n} images.",
    ],
    "difference/odd_image": [
        "All images but one show exactly the same scene. Which image is different?",
        "One of the {n} images differs from the others. Which one?",
        "Spot the odd one out: which image is not identical to the rest?",
    ],
    "difference/changed_colour": [
        "Images {a} and {b} are the same except for one object. What colour is that object in image {b}?",
        "Image {b} is a copy of image {a} in which one object was recoloured. What is its new colour?",
        "Compare image {a} with image {b}: one object has a different colour in image {b}. Which colour?",
    ],
    "difference/change_type": [
        "Image {b} is a copy of image {a} with one change. What changed?",
        "Compare image {a} with image {b}. What is the one difference?",
        "Images {a} and {b} differ in exactly one object. What happened to it in image {b}?",
    ],
}

INSTRUCTIONS = {
    "choice": "Answer with the option letter.",
    "number": "Answer with a number.",
    "text": "Answer with one word or label.",
    "image_index": "Answer with the image number.",
    "bbox": "Answer with the box [x1, y1, x2, y2] in pixels.",
    "image_bbox": "Answer as: image k: [x1, y1, x2, y2] in pixels.",
}


@dataclass
class Item:
    task: str
    scene: Scene
    query: dict[str, Any]
    answer_type: str
    template: str  # "<family>[/<kind>]#<i>"
    stem: str
    options: list[str] | None = None  # option texts (correct one included), unordered


def _phrase(rng: random.Random, family: str, **fields: Any) -> tuple[str, str]:
    i = rng.randrange(len(TEMPLATES[family]))
    return f"{family}#{i}", TEMPLATES[family][i].format(**fields)


def _fine_target(d: SceneDesigner, scene: Scene) -> tuple[Descriptor, dict[str, Any]]:
    """A small target: shape + colour (+ a unique label or a texture half of the time).
    Coarse designers name a large target by its colour alone."""
    rng = d.rng
    if d.coarse:
        colour = rng.choice(list(COLOURS))
        return {"colour": colour}, {"size": "large", "colour": colour, "shape": rng.choice(SHAPES)}
    desc: Descriptor = {
        "size": "small",
        "colour": rng.choice(list(COLOURS)),
        "shape": rng.choice(SHAPES),
    }
    attrs: dict[str, Any] = dict(desc)
    extra = rng.random()
    if extra < 0.3:
        desc["label"] = attrs["label"] = d.unique_label(scene)
    elif extra < 0.45:
        desc["texture"] = attrs["texture"] = rng.choice(("striped", "dotted"))
    return desc, attrs


def _near_misses(
    d: SceneDesigner, scene: Scene, desc: Descriptor, images: list[int], count: int
) -> None:
    """Distractors one attribute away from the target, shared across the given images."""
    for _ in range(count):
        attrs: dict[str, Any] = {**d.random_attrs(), "texture": "plain", "label": None, **desc}
        key = d.rng.choice(sorted(desc))
        attrs[key] = d.other_value(key, desc[key])
        try:
            d.add(scene.images[d.rng.choice(images) - 1], attrs)
        except PlacementError:
            return


def _exclude_in(
    d: SceneDesigner, scene: Scene, desc: Descriptor, images: list[int], keep: list[Obj]
) -> None:
    sub = Scene(scene.size, [scene.images[k - 1] for k in images])
    d.exclude(sub, desc, keep)


def _count_target(rng: random.Random) -> Descriptor:
    r = rng.random()
    if r < 0.4:
        return {"colour": rng.choice(list(COLOURS))}
    if r < 0.7:
        return {"shape": rng.choice(SHAPES)}
    return {"colour": rng.choice(list(COLOURS)), "shape": rng.choice(SHAPES)}


def _plant_counts(d: SceneDesigner, scene: Scene, desc: Descriptor, counts: list[int]) -> None:
    d.exclude(scene, desc)
    for k, c in enumerate(counts, start=1):
        for _ in range(c):
            attrs = {**d.random_attrs(), **desc}
            d.add(scene.images[k - 1], attrs)


def _number_options(rng: random.Random, value: int) -> list[str]:
    pool = [v for v in range(max(0, value - 3), value + 4) if v != value]
    return [str(v) for v in [value, *rng.sample(pool, 3)]]


def _one_holder(d: SceneDesigner, n: int, misses_with_target: bool) -> tuple[Scene, Descriptor]:
    """n images where exactly one holds the fine target, plus 1-2 near misses in the other
    images (in any image, the target's included, when `misses_with_target`). Coarse scenes
    get no near misses."""
    rng = d.rng
    scene, _ = d.random_scene(n)
    desc, attrs = _fine_target(d, scene)
    t = rng.randint(1, n)
    holder = scene.images[t - 1]
    if d.coarse and holder.objects:
        # the target replaces an object, so that the number of objects gives nothing away
        holder.objects.pop(rng.randrange(len(holder.objects)))
    target = d.add(holder, attrs)
    d.exclude(scene, desc, keep=[target])
    if not d.coarse:
        images = [k for k in range(1, n + 1) if misses_with_target or k != t] or [t]
        _near_misses(d, scene, desc, images, rng.randint(1, 2))
    return scene, desc


# ------------------------------------------------------------------------ writers


def write_counting(d: SceneDesigner, n: int, mc: bool) -> Item:
    rng = d.rng
    scene, _ = d.random_scene(n)
    desc = _count_target(rng)
    holders = rng.sample(range(n), rng.randint(2, min(n, 3)))
    counts = [0] * n
    for k in holders:
        counts[k] = 1
    for _ in range(rng.randint(0, 3)):
        counts[rng.choice(holders)] += 1
    _plant_counts(d, scene, desc, counts)
    query = {"task": "counting", "target": desc}
    tid, stem = _phrase(rng, "counting", plural=describe(desc, plural=True), n=n)
    value = solve(scene, query).value
    if mc:
        return Item("counting", scene, query, "choice", tid, stem, _number_options(rng, value))
    return Item("counting", scene, query, "number", tid, stem)


def write_selection(d: SceneDesigner, n: int, mc: bool) -> Item:
    scene, desc = _one_holder(d, n, misses_with_target=False)
    query = {"task": "selection", "target": desc}
    tid, stem = _phrase(d.rng, "selection", desc=describe(desc), n=n)
    return Item("selection", scene, query, "image_index", tid, stem)


def write_comparison(d: SceneDesigner, n: int, mc: bool) -> Item:
    rng = d.rng
    scene, _ = d.random_scene(n, 1, 3)
    desc = _count_target(rng)
    plural = describe(desc, plural=True)
    if rng.random() < 0.5:
        w = rng.randrange(n)
        top = rng.randint(2, 4)
        counts = [rng.randint(0, top - 1) for _ in range(n)]
        counts[w] = top
        if sum(c > 0 for c in counts) < 2:
            counts[(w + 1) % n] = rng.randint(1, top - 1)
        _plant_counts(d, scene, desc, counts)
        query = {"task": "comparison", "kind": "most", "target": desc}
        tid, stem = _phrase(rng, "comparison/most", plural=plural, n=n)
        return Item("comparison", scene, query, "image_index", tid, stem)
    a, b = rng.sample(range(1, n + 1), 2)
    relation = rng.choice(RELATIONS)
    lo = rng.randint(0, 2)
    hi = lo + rng.randint(1, 2)
    ca, cb = {"more": (hi, lo), "fewer": (lo, hi), "the same number": (hi, hi)}[relation]
    counts = [rng.randint(0, 2) for _ in range(n)]
    counts[a - 1], counts[b - 1] = ca, cb
    _plant_counts(d, scene, desc, counts)
    query = {"task": "comparison", "kind": "relative", "target": desc, "a": a, "b": b}
    tid, stem = _phrase(rng, "comparison/relative", plural=plural, a=a, b=b)
    return Item("comparison", scene, query, "choice", tid, stem, list(RELATIONS))


def write_attribute(d: SceneDesigner, n: int, mc: bool) -> Item:
    rng = d.rng
    scene, _ = d.random_scene(n)
    k = rng.randint(1, n)
    if d.coarse:
        return _coarse_attribute(d, scene, k, mc)
    attrs: dict[str, Any] = {
        "size": "small",
        "colour": rng.choice(list(COLOURS)),
        "shape": rng.choice(SHAPES),
    }
    ask = rng.choice(("colour", "colour", "shape", "label"))
    if ask == "label" or rng.random() < 0.3:
        attrs["label"] = d.unique_label(scene)
    target = d.add(scene.images[k - 1], attrs)
    desc: Descriptor = {key: v for key, v in attrs.items() if key != ask}
    _exclude_in(d, scene, desc, [k], keep=[target])
    others = [j for j in range(1, n + 1) if j != k]
    _near_misses(d, scene, {"size": "small", "shape": attrs["shape"]}, others or [k], 1)
    query = {"task": "attribute", "image": k, "target": desc, "ask": ask}
    tid, stem = _phrase(rng, f"attribute/{ask}", desc=describe(desc), k=k)
    if not mc:
        return Item("attribute", scene, query, "text", tid, stem)
    value = attrs[ask]
    if ask == "colour":
        pool = [c for c in COLOURS if c != value]
    elif ask == "shape":
        pool = [s for s in SHAPES if s != value]
    else:
        pool = list({d.new_label() for _ in range(12)} - {value})
    return Item(
        "attribute", scene, query, "choice", tid, stem, [value, *rng.sample(sorted(pool), 3)]
    )


def _coarse_attribute(d: SceneDesigner, scene: Scene, k: int, mc: bool) -> Item:
    """Questions like "What colour is the object in image 2?": coarse images hold one object."""
    rng = d.rng
    ask = rng.choice(("colour", "colour", "shape"))
    query = {"task": "attribute", "image": k, "target": {}, "ask": ask}
    tid, stem = _phrase(rng, f"attribute/{ask}", desc=describe({}), k=k)
    if not mc:
        return Item("attribute", scene, query, "text", tid, stem)
    value = getattr(scene.images[k - 1].objects[0], ask)
    pool = sorted(v for v in (COLOURS if ask == "colour" else SHAPES) if v != value)
    return Item("attribute", scene, query, "choice", tid, stem, [value, *rng.sample(pool, 3)])


def write_grounding(d: SceneDesigner, n: int, mc: bool) -> Item:
    rng = d.rng
    scene, _ = d.random_scene(n)
    desc, attrs = _fine_target(d, scene)
    k = rng.randint(1, n)
    target = d.add(scene.images[k - 1], attrs)
    _exclude_in(d, scene, desc, [k], keep=[target])
    # the same kind of object in another image makes "in image k" matter
    others = [j for j in range(1, n + 1) if j != k]
    if others and rng.random() < 0.5:
        d.add(scene.images[rng.choice(others) - 1], dict(attrs))
    query = {"task": "grounding", "image": k, "target": desc}
    tid, stem = _phrase(rng, "grounding", desc=describe(desc), k=k)
    return Item("grounding", scene, query, "bbox", tid, stem)


def write_group_grounding(d: SceneDesigner, n: int, mc: bool) -> Item:
    scene, desc = _one_holder(d, n, misses_with_target=True)
    query = {"task": "group_grounding", "target": desc}
    tid, stem = _phrase(d.rng, "group_grounding", desc=describe(desc), n=n)
    return Item("group_grounding", scene, query, "image_bbox", tid, stem)


def write_difference(d: SceneDesigner, n: int, mc: bool) -> Item:
    rng = d.rng
    vocab = d.vocabulary()
    base = d.random_image(vocab, 3, 5)
    kinds = ["changed_colour", "change_type"] + (["odd_image"] * 2 if n >= 3 else [])
    kind = rng.choice(kinds)
    change = "its colour changed" if kind == "changed_colour" else rng.choice(CHANGE_TYPES)
    if change != CHANGE_TYPES[3]:  # the changed object is a small one
        small = [o for o in base.objects if o.size == "small"]
        target = (
            rng.choice(small) if small else d.add(base, {**d.random_attrs(vocab), "size": "small"})
        )
        index = base.objects.index(target)
    images = [
        ImageSpec(
            base.background, [Obj(**{**o.__dict__, "bbox": list(o.bbox)}) for o in base.objects]
        )
        for _ in range(n)
    ]
    scene = Scene(d.size, images)
    odd = rng.randint(1, n)
    img = scene.images[odd - 1]
    if change == CHANGE_TYPES[0]:
        img.objects[index].colour = d.other_value("colour", img.objects[index].colour)
    elif change == CHANGE_TYPES[1]:
        img.objects[index].shape = d.other_value("shape", img.objects[index].shape)
    elif change == CHANGE_TYPES[2]:
        del img.objects[index]
    else:
        d.add(img, {**d.random_attrs(vocab), "size": "small"})
    if kind == "odd_image":
        query: dict[str, Any] = {"task": "difference", "kind": "odd_image"}
        tid, stem = _phrase(rng, "difference/odd_image", n=n)
        return Item("difference", scene, query, "image_index", tid, stem)
    a = rng.choice([k for k in range(1, n + 1) if k != odd])
    query = {"task": "difference", "kind": kind, "a": a, "b": odd}
    tid, stem = _phrase(rng, f"difference/{kind}", a=a, b=odd)
    if kind == "change_type":
        return Item("difference", scene, query, "choice", tid, stem, list(CHANGE_TYPES))
    if mc:
        value = img.objects[index].colour
        pool = sorted(c for c in COLOURS if c != value)
        return Item("difference", scene, query, "choice", tid, stem, [value, *rng.sample(pool, 3)])
    return Item("difference", scene, query, "text", tid, stem)


# The closeup task: the asked object is about a twentieth of the image side and lies inside
# one cell of a 3 x 3 grid, so that at the resolution the tiny preset sees a whole image (a
# 336 px image shown at 112 px) it is a 5-6 px blot, while a zoom into its cell (112 px
# shown at 112 px) shows it three times larger, at the size of the small objects of fine
# scenes. Measured zero-shot with tiny-pretrained (40-48 scenes): the description names the
# object's colour 21 % of the time from the whole image with distractors (38 % alone; chance
# 20 %) and 88-100 % from the zoom. The question names the cell ("in the top left of image
# 2"), as a person pointing would: finding a 5 px object unaided is beyond the tiny model
# (the position it names from the whole image is right 15 % of the time, chance 11 %), so
# what is learned is to zoom where the question points, and to read the zoomed image.
CLOSEUP_SIDE_FRACTION = (0.045, 0.057)
GRID_CELLS: tuple[tuple[int, int], ...] = tuple((r, c) for r in range(3) for c in range(3))


def cell_box(row: int, col: int, size: int) -> list[int]:
    """Pixel box of one cell of the 3 x 3 grid (the zoom tool's named regions)."""
    return [col * size // 3, row * size // 3, (col + 1) * size // 3, (row + 1) * size // 3]


def _place_in_cell(d: SceneDesigner, image: ImageSpec, attrs: dict[str, Any]) -> Obj:
    """A small object entirely inside one random cell of the 3 x 3 grid."""
    lo, hi = CLOSEUP_SIDE_FRACTION
    side = max(4, round(d.size * d.rng.uniform(lo, hi)))
    row, col = d.rng.choice(GRID_CELLS)
    x1, y1, x2, y2 = cell_box(row, col, d.size)
    pad = max(2, d.margin)
    x = d.rng.randint(x1 + pad, max(x1 + pad, x2 - side - pad))
    y = d.rng.randint(y1 + pad, max(y1 + pad, y2 - side - pad))
    obj = Obj(bbox=[x, y, x + side, y + side], **{"texture": "plain", "label": None, **attrs})
    image.objects.append(obj)
    return obj


def write_closeup(d: SceneDesigner, n: int, mc: bool) -> Item:
    """ "What colour is the small object in the top left of image k?": every image holds one
    small object in one grid cell and at most one large distractor elsewhere; only a zoom
    into that cell of that image shows its colour (the query names the cell as `region`)."""
    rng = d.rng
    scene = Scene(d.size, [ImageSpec(rng.choice(("white", "grey"))) for _ in range(n)])
    targets = []
    for image in scene.images:
        attrs = {"size": "small", "colour": rng.choice(list(COLOURS)), "shape": rng.choice(SHAPES)}
        targets.append(_place_in_cell(d, image, attrs))
        for _ in range(rng.randint(0, 1)):
            big = {
                "size": "large",
                "colour": rng.choice(list(COLOURS)),
                "shape": rng.choice(SHAPES),
            }
            try:
                d.add(image, big)
            except PlacementError:
                break
    k = rng.randint(1, n)
    target = targets[k - 1]
    query = {
        "task": "closeup",
        "image": k,
        "target": {"size": "small"},
        "ask": "colour",
        "region": position_word(target.bbox, d.size),
    }
    tid, stem = _phrase(
        rng, "closeup", desc=describe({"size": "small"}), k=k, region=query["region"]
    )
    if not mc:
        return Item("closeup", scene, query, "text", tid, stem)
    pool = sorted(v for v in COLOURS if v != target.colour)
    return Item("closeup", scene, query, "choice", tid, stem, [target.colour, *rng.sample(pool, 3)])


WRITERS: dict[str, Callable[[SceneDesigner, int, bool], Item]] = {
    "counting": write_counting,
    "selection": write_selection,
    "comparison": write_comparison,
    "attribute": write_attribute,
    "grounding": write_grounding,
    "group_grounding": write_group_grounding,
    "difference": write_difference,
    "closeup": write_closeup,
}


def format_question(stem: str, answer_type: str, choices: list[str] | None) -> str:
    """Stem + options block (for choice items) + the answer-format instruction."""
    parts = [stem]
    if choices:
        parts.append("Options: " + " ".join(f"({chr(65 + i)}) {c}" for i, c in enumerate(choices)))
    parts.append(INSTRUCTIONS[answer_type])
    return "\n".join(parts)

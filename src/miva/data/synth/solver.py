"""Solver: derives every answer and its evidence from the scene graph, never from pixels.

A question is stored as a structured `query` (JSON) next to the scene. `solve(scene, query)`
returns the canonical answer value and where it is visible, plus what the verifier needs
to judge the item: how many answers would be equally valid (`candidates`) and which images
the answer depends on (`images_used`). Queries:

- counting       {"task", "target"}                         -> number of matches, all images
- selection      {"task", "target"}                         -> the one image holding a match
- comparison     {"task", "kind": "most", "target"}         -> image with strictly most matches
                 {"task", "kind": "relative", "target", "a", "b"} -> "more" | "fewer" | "the same number"
- attribute      {"task", "image", "target", "ask"}         -> attribute `ask` of the one match in image
- closeup        {"task", "image", "target", "ask", "region"} -> as attribute (region: the grid
                 cell that holds the target, for the gold zoom)
- grounding      {"task", "image", "target"}                -> box of the one match in image
- group_grounding{"task", "target"}                         -> {"image", "bbox"} of the one match
- difference     {"task", "kind": "odd_image"}              -> the one image unlike the others
                 {"task", "kind": "changed_colour"|"change_type", "a", "b"} -> colour in b | change
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from miva.data.synth.scene import Obj, Scene

CHANGE_TYPES = (
    "its colour changed",
    "its shape changed",
    "it was removed",
    "a new object was added",
)
RELATIONS = ("more", "fewer", "the same number")


@dataclass
class Solution:
    value: Any  # number | int image | str | list bbox | {"image", "bbox"}; None when unanswerable
    evidence: list[tuple[int, list[int]]] = field(default_factory=list)  # (image 1-based, xyxy)
    candidates: int = 1  # how many answers are equally valid (1 = unique)
    images_used: set[int] = field(default_factory=set)  # images the answer depends on


def scene_from_dict(d: dict[str, Any]) -> Scene:
    """The scene graph stored in `Sample.meta["scene"]` (synthetic or COCO)."""
    if d.get("source") == "coco":
        from miva.data.synth.coco_scene import CocoScene

        return CocoScene.from_dict(d)  # type: ignore[return-value]
    return Scene.from_dict(d)


def rederive(meta: dict[str, Any], answer_type: str, choices: list[str] | None) -> Any:
    """The stored answer of a sample, derived again from `meta["scene"]` and `meta["query"]`:
    the option letter for choice items, else the value (boxes as floats)."""
    value = solve(scene_from_dict(meta["scene"]), meta["query"]).value
    if choices is not None:
        return "ABCDEFGHIJ"[choices.index(str(value))]
    if answer_type == "bbox":
        return [float(v) for v in value]
    if answer_type == "image_bbox":
        return {"image": int(value["image"]), "bbox": [float(v) for v in value["bbox"]]}
    return value


def solve(scene: Scene, query: dict[str, Any]) -> Solution:
    task = query["task"]
    solver = _SOLVERS.get(task)
    if solver is None:
        raise ValueError(f"no solver for task {task!r}")
    return solver(scene, query)


def _evidence(pairs: list[tuple[int, Obj]]) -> list[tuple[int, list[int]]]:
    return [(k, list(o.bbox)) for k, o in pairs]


def _counting(scene: Scene, q: dict[str, Any]) -> Solution:
    found = scene.matches(q["target"])
    return Solution(len(found), _evidence(found), 1, {k for k, _ in found})


def _unique_in_all(
    scene: Scene, q: dict[str, Any]
) -> tuple[list[tuple[int, Obj]], Solution | None]:
    found = scene.matches(q["target"])
    if len(found) != 1:
        return found, Solution(None, _evidence(found), len(found), {k for k, _ in found})
    return found, None


def _selection(scene: Scene, q: dict[str, Any]) -> Solution:
    found = scene.matches(q["target"])
    images = sorted({k for k, _ in found})
    if len(images) != 1:
        return Solution(None, _evidence(found), len(images), set(images))
    return Solution(images[0], _evidence(found), 1, {images[0]})


def _counts(scene: Scene, target: dict[str, str]) -> list[int]:
    return [sum(o.matches(target) for o in im.objects) for im in scene.images]


def _comparison(scene: Scene, q: dict[str, Any]) -> Solution:
    found = scene.matches(q["target"])
    counts = _counts(scene, q["target"])
    if q["kind"] == "most":
        best = max(counts)
        winners = [k for k, c in enumerate(counts, start=1) if c == best]
        used = {k for k, c in enumerate(counts, start=1) if c > 0}
        value = winners[0] if len(winners) == 1 and best > 0 else None
        return Solution(value, _evidence(found), len(winners) if best > 0 else 0, used)
    a, b = int(q["a"]), int(q["b"])
    ca, cb = counts[a - 1], counts[b - 1]
    value = RELATIONS[0] if ca > cb else RELATIONS[1] if ca < cb else RELATIONS[2]
    ev = [(k, box) for k, box in _evidence(found) if k in (a, b)]
    return Solution(value, ev, 1, {a, b})


def _in_image(scene: Scene, q: dict[str, Any]) -> tuple[list[Obj], int]:
    k = int(q["image"])
    if not 1 <= k <= len(scene.images):
        return [], k
    return [o for o in scene.images[k - 1].objects if o.matches(q["target"])], k


def _attribute(scene: Scene, q: dict[str, Any]) -> Solution:
    found, k = _in_image(scene, q)
    ev = [(k, list(o.bbox)) for o in found]
    if len(found) != 1:
        return Solution(None, ev, len(found), {k})
    value = getattr(found[0], q["ask"])
    return Solution(value, ev, 1 if value is not None else 0, {k})


def _grounding(scene: Scene, q: dict[str, Any]) -> Solution:
    found, k = _in_image(scene, q)
    ev = [(k, list(o.bbox)) for o in found]
    if len(found) != 1:
        return Solution(None, ev, len(found), {k})
    return Solution(list(found[0].bbox), ev, 1, {k})


def _group_grounding(scene: Scene, q: dict[str, Any]) -> Solution:
    found, bad = _unique_in_all(scene, q)
    if bad is not None:
        return bad
    k, obj = found[0]
    return Solution({"image": k, "bbox": list(obj.bbox)}, _evidence(found), 1, {k})


def image_diff(scene: Scene, a: int, b: int) -> list[tuple[str, Obj | None, Obj | None]]:
    """Differences from image a to image b; objects are matched by their box."""
    objs_a = {tuple(o.bbox): o for o in scene.images[a - 1].objects}
    objs_b = {tuple(o.bbox): o for o in scene.images[b - 1].objects}
    diffs: list[tuple[str, Obj | None, Obj | None]] = []
    for box in sorted(set(objs_a) | set(objs_b)):
        oa, ob = objs_a.get(box), objs_b.get(box)
        if oa is None:
            diffs.append((CHANGE_TYPES[3], None, ob))
        elif ob is None:
            diffs.append((CHANGE_TYPES[2], oa, None))
        elif oa.attrs() != ob.attrs():
            changed = {k for k in oa.attrs() if oa.attrs()[k] != ob.attrs()[k]}
            kind = (
                CHANGE_TYPES[0]
                if changed == {"colour"}
                else CHANGE_TYPES[1]
                if changed == {"shape"}
                else "other"
            )
            diffs.append((kind, oa, ob))
    if scene.images[a - 1].background != scene.images[b - 1].background:
        diffs.append(("background", None, None))
    return diffs


def _difference(scene: Scene, q: dict[str, Any]) -> Solution:
    n = len(scene.images)
    if q["kind"] == "odd_image":
        # the odd image is the one whose content differs from every other, all others equal
        keys = [
            repr((im.background, sorted((*o.bbox, repr(o.attrs())) for o in im.objects)))
            for im in scene.images
        ]
        counts = Counter(keys)
        odd = [k for k, key in enumerate(keys, start=1) if counts[key] == 1]
        if n < 3 or len(counts) != 2 or len(odd) != 1:
            return Solution(None, [], max(len(odd), 2), set(range(1, n + 1)))
        ref = 1 if odd[0] != 1 else 2
        ev = _diff_evidence(image_diff(scene, ref, odd[0]), ref, odd[0])
        return Solution(odd[0], ev, 1, {ref, odd[0]})
    a, b = int(q["a"]), int(q["b"])
    diffs = image_diff(scene, a, b)
    ev = _diff_evidence(diffs, a, b)
    if len(diffs) != 1:
        return Solution(None, ev, len(diffs), {a, b})
    kind, _, ob = diffs[0]
    if q["kind"] == "changed_colour":
        if kind != CHANGE_TYPES[0] or ob is None:
            return Solution(None, ev, 0, {a, b})
        return Solution(ob.colour, ev, 1, {a, b})
    if kind not in CHANGE_TYPES:
        return Solution(None, ev, 0, {a, b})
    return Solution(kind, ev, 1, {a, b})


def _diff_evidence(
    diffs: list[tuple[str, Obj | None, Obj | None]], a: int, b: int
) -> list[tuple[int, list[int]]]:
    ev: list[tuple[int, list[int]]] = []
    for _, oa, ob in diffs:
        if oa is not None:
            ev.append((a, list(oa.bbox)))
        if ob is not None:
            ev.append((b, list(ob.bbox)))
    return ev


_SOLVERS = {
    "counting": _counting,
    "selection": _selection,
    "comparison": _comparison,
    "attribute": _attribute,
    "closeup": _attribute,
    "grounding": _grounding,
    "group_grounding": _group_grounding,
    "difference": _difference,
}

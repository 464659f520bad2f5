"""MIG-Bench (Li et al., 2025, "Migician"): 4,295 multi-image grounding items, 2-6 images,
10 tasks. Each answer is one box, given relative (0-1) to the image it lies in.

Native layout (the Hugging Face release `Michael4933/MIG-Bench`): `MIG_data.json`, a list
of {`task`, `images` [paths], `question`, `answer` [x1, y1, x2, y2] relative,
`additional_info`, `need_format`}, and `images/<task>/...`. Image paths in the file start
with `./MIG-Bench/...`; they are resolved against the folder and its parent.

Conversion: the box is turned into pixels of its target image. For `group_grounding`
the target image is named in `additional_info` (an image number, "Image-3", or a file
name) and the answer is (image, box); elsewhere the question names the image ("... in
Image-2", "the second image") or, when it does not, the last image is the target, and the
answer is a box. IoU is invariant to scaling both boxes by the same image size, so the
official relative-coordinate IoU is preserved.

Metric: Acc@IoU>=0.5 per task; the headline `overall/acc_iou50` is the mean over the
tasks present (all 10 in the full release). `group_grounding` needs the right image too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from miva.data.benchmarks.base import (
    Benchmark,
    Converted,
    ItemScore,
    convert_items,
    expect_list,
    image_size,
    load_json,
    read_image_file,
    require,
)
from miva.data.schema import Evidence, Sample
from miva.errors import DataError
from miva.scoring import box_iou, macro_mean, mean, parse_box, parse_image_box, per_group_means

TASKS = (
    "region",
    "common_object",
    "object_tracking",
    "diff",
    "group_grounding",
    "multi_view",
    "correspondence",
    "reasoning",
    "refer_grounding",
    "view_diff",
)
ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6}
_TARGET = re.compile(
    r"\b(?:in|on|within|from)\s+(?:the\s+)?(?:image[-\s_]?(\d)|(first|second|third|fourth|fifth|sixth)\s+image)",
    re.I,
)


def relative_box(raw: Any) -> tuple[float, float, float, float]:
    """The native answer as a checked relative box; ValueError when it is not one."""
    if not isinstance(raw, list | tuple) or len(raw) != 4:
        raise ValueError(f"answer {raw!r} is not a list of four numbers")
    try:
        box = tuple(float(v) for v in raw)
    except (TypeError, ValueError):
        raise ValueError(f"answer {raw!r} is not a list of four numbers") from None
    if not all(math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in box):
        raise ValueError(f"answer {list(raw)} is not relative (0-1) coordinates")
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"answer {list(raw)} is an empty or inverted box")
    return box  # type: ignore[return-value]


def reference_image(info: Any, images: Sequence[str]) -> int:
    """Group grounding: the 1-based image that `additional_info` names."""
    n = len(images)
    if isinstance(info, int) and not isinstance(info, bool):
        k = info
    else:
        text = str(info or "").strip()
        names = [Path(str(p)).name for p in images]
        if Path(text).name in names:
            return names.index(Path(text).name) + 1
        match = re.search(r"image[-\s_]?(\d+)", text, re.I) or re.fullmatch(r"\s*(\d+)\s*", text)
        ordinal = re.search(r"\b(first|second|third|fourth|fifth|sixth)\b", text, re.I)
        if match:
            k = int(match.group(1))
        elif ordinal:
            k = ORDINALS[ordinal.group(1).lower()]
        else:
            raise ValueError(f"additional_info {info!r} names no reference image")
    if not 1 <= k <= n:
        raise ValueError(f"additional_info {info!r} names image {k}, but the item has {n} images")
    return k


def target_image(question: str, n_images: int) -> int:
    """The image a grounding question asks about: the last one it names, else the last image."""
    hits = _TARGET.findall(question)
    for digit, ordinal in reversed(hits):
        k = int(digit) if digit else ORDINALS[ordinal.lower()]
        if 1 <= k <= n_images:
            return k
    return n_images


def to_pixels(box: Sequence[float], size: tuple[int, int]) -> list[float]:
    """Relative (0-1) xyxy -> pixel xyxy of an image of `size` = (width, height), rounded
    to 0.01. MIG-Bench is the only source with relative boxes, so they become dataset
    pixels here, at ingest; model conventions change only in `miva.agent.coords`."""
    width, height = size
    x1, y1, x2, y2 = (float(v) for v in box)
    return [round(v, 2) for v in (x1 * width, y1 * height, x2 * width, y2 * height)]


class MigBench(Benchmark):
    name = "mig-bench"
    title = "MIG-Bench: multi-image grounding, Acc@IoU>=0.5 averaged over its 10 tasks"
    expects = (
        "<folder>/MIG_data.json (list of {task, images[], question, answer [x1,y1,x2,y2] in 0-1, "
        "additional_info, need_format}) and the image files it lists (./MIG-Bench/images/<task>/...)"
    )
    metric = "acc_iou50"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        path = folder / "MIG_data.json"
        if not path.is_file():
            raise DataError(f"{path}: missing; expected MIG-Bench's MIG_data.json in {folder}")
        entries = expect_list(load_json(path), path, "MIG-Bench items")
        return convert_items(
            enumerate(entries),
            lambda i, entry: self._sample(entry, folder, i),
            lambda i, _: f"MIG_data.json[{i}]",
            limit,
        )

    def _sample(self, entry: Any, folder: Path, i: int) -> Sample:
        require(entry, ["task", "images", "question", "answer"])
        paths = [str(p) for p in entry["images"]]
        if not paths:
            raise ValueError("images is empty")
        images = [_read_mig_image(folder, p) for p in paths]
        rel = relative_box(entry["answer"])
        task = str(entry["task"])
        question = str(entry["question"])
        if task == "group_grounding":
            k = reference_image(entry.get("additional_info"), paths)
        else:
            k = target_image(question, len(images))
        box = to_pixels(rel, image_size(images[k - 1]))
        grouped = task == "group_grounding"
        answer_type = "image_bbox" if grouped else "bbox"
        answer: Any = {"image": k, "bbox": box} if grouped else box
        if entry.get("need_format"):
            question += (
                " Answer with the image number and the box as image k: [x1, y1, x2, y2]."
                if grouped
                else f" Answer with the box in image {k} as [x1, y1, x2, y2]."
            )
        return self.test_sample(
            f"MIG_data.json[{i}]",
            {"target_image": k, "relative_box": list(rel)},
            task=task,
            images=images,
            question=question,
            answer_type=answer_type,
            answer=answer,
            evidence=[Evidence(k, tuple(box))],  # type: ignore[arg-type]
        )

    def score_item(self, sample: Sample, prediction: Any) -> ItemScore:
        text = None if prediction is None else str(prediction)
        if sample.answer_type == "image_bbox":
            image, box = parse_image_box(text) if text is not None else (None, None)
            valid = image is not None and box is not None
            image_ok = image == sample.answer["image"]
            iou = box_iou(box, sample.answer["bbox"]) if (image_ok and box is not None) else 0.0
            details = {"iou": iou, "image_correct": float(image_ok)}
        else:
            box = parse_box(text) if text is not None else None
            valid = box is not None
            iou = box_iou(box, sample.answer) if box is not None else 0.0
            details = {"iou": iou}
        hit = iou >= 0.5
        return ItemScore(sample.id, sample.task, float(hit), hit, valid, details)

    def aggregate(
        self,
        samples: Sequence[Sample],
        items: Sequence[ItemScore],
        predictions: Mapping[str, Any],
    ) -> dict[str, float]:
        tasks = [it.task for it in items]
        acc = per_group_means(tasks, [it.score for it in items])
        ious = per_group_means(tasks, [it.details["iou"] for it in items])
        out: dict[str, float] = {}
        for task in acc:
            out[f"{task}/acc_iou50"] = acc[task]
            out[f"{task}/accuracy"] = acc[task]
            out[f"{task}/mean_iou"] = ious[task]
        grouped = [it for it in items if "image_correct" in it.details]
        if grouped:
            out["group_grounding/image_accuracy"] = mean(
                it.details["image_correct"] for it in grouped
            )
        out["overall/acc_iou50"] = macro_mean(acc)
        out["overall/accuracy"] = out["overall/acc_iou50"]
        out["overall/micro_acc_iou50"] = mean(it.score for it in items)
        out["overall/mean_iou"] = mean(it.details["iou"] for it in items)
        out["overall/invalid_rate"] = mean(0.0 if it.valid else 1.0 for it in items)
        out["overall/tasks"] = float(len(acc))
        out["overall/items"] = float(len(items))
        return out


def _read_mig_image(folder: Path, rel: str) -> bytes:
    """Paths in MIG_data.json start with ./MIG-Bench/; accept the folder itself or its parent."""
    parts = Path(rel.removeprefix("./")).parts
    tries = [rel, str(Path(*parts[1:])) if len(parts) > 1 else rel]
    for candidate in tries:
        try:
            return read_image_file(folder, candidate)
        except FileNotFoundError:
            continue
    return read_image_file(folder.parent, rel)

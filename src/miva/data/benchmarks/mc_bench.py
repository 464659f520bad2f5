"""MC-Bench (Xu et al., 2024): multi-context visual grounding on 2,000 image pairs; a text
prompt (referring, comparison or reasoning style) names zero or more target instances
across the two images. Negative prompts name none.

Release layout (the authors' download, XuYunqiu/MC-Bench):

    MC-Bench/MC-Bench_coco_format.json   COCO: images {id, file_name, pair_id, id_in_pair,
                                         pair_image_id, height, width, description},
                                         annotations {image_id, pair_id, category_id (the
                                         target group), bbox [x, y, w, h] pixels}, categories
    MC-Bench/mc-bench_v0.2_val.json      the same items as images {id, file_name,
                                         inter_img_id, text_id}, annotations {image_id,
                                         text_id, bbox}, descriptions {id, images_id [2],
                                         text, positive_sample, text_style}
    MC-Bench/MC-Bench_images/<file_name> (or mc-bench_images/, images/)

The official evaluation (`eval_mc_bench.py` in github.com/XuYunqiu/MC-Bench, checked
2026-11-27) reads `MC-Bench_coco_format.json` as its ground truth (`--gt_json_path`,
default `./MC-Bench_coco_format.json`), so that file is the source of items and boxes when
present; `mc-bench_v0.2_val.json` beside it only contributes each item's `text_style` (the
per-style metrics), matched by the pair's two file names and the text. A folder with only
the v0.2 file (or one COCO-like JSON with `descriptions`) is read as before.

A sample is one description over its two images; its answer is text listing every target
as `image k: [x1, y1, x2, y2]` joined by "; " (or `none`), the structured targets (with their
group) sit in `meta["targets"]`. Predictions are written the same way.

Metrics: instance-level AP50 (COCO 101-point AP at IoU 0.5 over all predicted boxes; the
agent gives no confidences, so every box has confidence 1 and keeps its answer order) and
image-level accuracy (for both images, "has a target" predicted right). The official AP50
is a mean over target groups weighted by their box counts, with predicted groups matched
to the reference groups; predictions here carry no groups, so AP50 pools all boxes.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from miva.data.benchmarks.base import (
    AnswerReader,
    Benchmark,
    Converted,
    ItemScore,
    convert_items,
    load_json,
    read_image_file,
    require,
    with_id,
)
from miva.data.schema import Evidence, Sample, format_answer
from miva.errors import DataError
from miva.scoring import Detection, average_precision, box_iou, match_detections, mean, parse_box

INSTRUCTION = (
    "List every object the text refers to in the two images as image k: [x1, y1, x2, y2], "
    "separated by '; '. Answer none if no image contains it."
)
_PART = re.compile(r"image\s*(\d+)\s*[:,]?\s*(\[[^\]]*\])", re.I)
_NONE = re.compile(r"^\W*(none|no target|no object|nothing)\W*$", re.I)


def xywh_to_xyxy(raw: Any) -> list[float]:
    if not isinstance(raw, list | tuple) or len(raw) != 4:
        raise ValueError(f"bbox {raw!r} is not [x, y, w, h]")
    x, y, w, h = (float(v) for v in raw)
    if w <= 0 or h <= 0:
        raise ValueError(f"bbox {list(raw)} has no area")
    return [x, y, x + w, y + h]


def parse_targets(text: str | None) -> tuple[list[tuple[int, tuple[float, ...]]], bool]:
    """`image 1: [..]; image 2: [..]` -> ([(1, box), (2, box)], valid). `none` -> ([], True)."""
    if text is None:
        return [], False
    if _NONE.match(text):
        return [], True
    out = []
    for image, bracket in _PART.findall(text):
        box = parse_box(bracket)
        if box is not None:
            out.append((int(image), box))
    return out, bool(out)


COCO_FILE = "MC-Bench_coco_format.json"  # what the official evaluation reads
DESCRIPTIONS_FILE = "mc-bench_v0.2_val.json"
IMAGE_FOLDERS = ("MC-Bench_images", "mc-bench_images", "images")


def _read_release_image(folder: Path, name: str) -> bytes:
    for sub in IMAGE_FOLDERS:
        if (folder / sub / name).is_file():
            return read_image_file(folder / sub, name)
    return read_image_file(folder, name)


def _styles_from_descriptions(path: Path) -> dict[tuple[str, str, str], str]:
    """(file name 1, file name 2, text) -> text_style, from the v0.2 file when it is there."""
    if not path.is_file():
        return {}
    data = load_json(path)
    if not isinstance(data, dict):
        return {}
    names = {
        im.get("id"): str(im.get("file_name"))
        for im in data.get("images", [])
        if isinstance(im, dict)
    }
    out: dict[tuple[str, str, str], str] = {}
    for desc in data.get("descriptions", []):
        if not isinstance(desc, dict) or not desc.get("text_style"):
            continue
        ids = desc.get("images_id") or []
        if len(ids) == 2 and all(i in names for i in ids):
            out[(names[ids[0]], names[ids[1]], str(desc.get("text")))] = str(desc["text_style"])
    return out


class McBench(Benchmark):
    name = "mc-bench"
    title = "MC-Bench: multi-context grounding on image pairs, instance AP50 and image accuracy"
    expects = (
        "<folder>/MC-Bench_coco_format.json (read by the official evaluation; "
        "mc-bench_v0.2_val.json beside it adds text styles) and the images in "
        "<folder>/MC-Bench_images/<file_name>; or one COCO-like JSON with images, "
        "annotations and descriptions{id,images_id[2],text,positive_sample,text_style}"
    )
    metric = "ap50"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        coco = folder / COCO_FILE
        if coco.is_file():
            return self._convert_coco(coco, folder, limit)
        files = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if len(files) != 1:
            raise DataError(
                f"{folder}: expected {COCO_FILE} (what the official evaluation reads) or exactly "
                f"one MC-Bench annotation *.json, found {[p.name for p in files]}"
            )
        return self._convert_descriptions(files[0], folder, limit)

    # ------------------------------------------------------------------ the official file
    def _convert_coco(self, path: Path, folder: Path, limit: int | None) -> Converted:
        data = load_json(path)
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list) for k in ("images", "annotations")
        ):
            raise DataError(
                f"{path}: expected a COCO JSON object with lists 'images' and 'annotations'"
            )
        pairs: dict[Any, list[dict]] = defaultdict(list)
        for im in data["images"]:
            if isinstance(im, dict):
                pairs[im.get("pair_id")].append(im)
        boxes: dict[Any, list[dict]] = defaultdict(list)
        for ann in data["annotations"]:
            if isinstance(ann, dict):
                boxes[ann.get("image_id")].append(ann)
        styles = _styles_from_descriptions(folder / DESCRIPTIONS_FILE)
        return convert_items(
            ((pair_id, members) for pair_id, members in pairs.items()),
            lambda pair_id, members: self._coco_sample(pair_id, members, boxes, styles, folder),
            lambda pair_id, _: f"{COCO_FILE} pair {pair_id}",
            limit,
        )

    def _coco_sample(
        self, pair_id: Any, members: list[dict], boxes: dict, styles: dict, folder: Path
    ) -> Sample:
        if pair_id is None:
            raise KeyError("image without pair_id")
        if len(members) != 2:
            raise ValueError(f"pair {pair_id} has {len(members)} images, not two")
        members = sorted(members, key=lambda im: im.get("id_in_pair", 0))
        for im in members:
            require(im, ["id", "file_name", "description"], "image")
        texts = {str(im["description"]) for im in members}
        if len(texts) != 1:
            raise ValueError(f"the two images of pair {pair_id} carry different descriptions")
        text = texts.pop()
        blobs, targets = [], []
        for k, im in enumerate(members, start=1):
            blobs.append(_read_release_image(folder, str(im["file_name"])))
            for ann in boxes.get(im["id"], []):
                targets.append(
                    {
                        "image": k,
                        "bbox": xywh_to_xyxy(ann.get("bbox")),
                        "group": ann.get("category_id"),
                    }
                )
        names = tuple(str(im["file_name"]) for im in members)
        return self._sample(
            str(pair_id), text, blobs, targets, bool(targets), styles.get((*names, text))
        )

    # ------------------------------------------------------------------ descriptions file
    def _convert_descriptions(self, path: Path, folder: Path, limit: int | None) -> Converted:
        data = load_json(path)
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), list) for k in ("images", "annotations", "descriptions")
        ):
            raise DataError(
                f"{path}: expected a JSON object with lists 'images', 'annotations' and 'descriptions'"
            )
        images = {im.get("id"): im for im in data["images"] if isinstance(im, dict)}
        boxes: dict[tuple[Any, Any], list[Any]] = defaultdict(list)
        for ann in data["annotations"]:
            if isinstance(ann, dict):
                boxes[(ann.get("image_id"), ann.get("text_id"))].append(ann)
        return convert_items(
            enumerate(data["descriptions"]),
            lambda _, desc: self._description_sample(desc, images, boxes, folder),
            lambda i, desc: f"descriptions[{i}]" + with_id(desc),
            limit,
        )

    def _description_sample(self, desc: Any, images: dict, boxes: dict, folder: Path) -> Sample:
        require(desc, ["id", "images_id", "text"], "description")
        ids = list(desc["images_id"])
        if len(ids) != 2:
            raise ValueError(f"images_id {ids} does not name two images")
        blobs, targets = [], []
        for k, image_id in enumerate(ids, start=1):
            if image_id not in images:
                raise KeyError(f"image id {image_id} is not in 'images'")
            blobs.append(_read_release_image(folder, str(images[image_id]["file_name"])))
            for ann in boxes.get((image_id, desc["id"]), []):
                targets.append(
                    {
                        "image": k,
                        "bbox": xywh_to_xyxy(ann.get("bbox")),
                        "group": ann.get("category_id"),
                    }
                )
        positive = bool(desc.get("positive_sample", True))
        if positive and not targets:
            raise ValueError("positive description without any annotated box")
        if not positive and targets:
            raise ValueError("negative description (positive_sample false) with annotated boxes")
        return self._sample(
            str(desc["id"]), str(desc["text"]), blobs, targets, positive, desc.get("text_style")
        )

    def _sample(
        self,
        native_id: str,
        text: str,
        blobs: list[bytes],
        targets: list[dict],
        positive: bool,
        style: Any,
    ) -> Sample:
        answer = (
            "; ".join(
                format_answer("image_bbox", {"image": t["image"], "bbox": t["bbox"]})
                for t in targets
            )
            if targets
            else "none"
        )
        return self.test_sample(
            native_id,
            {"targets": targets, "positive": positive},
            task=str(style or "mc-bench"),
            images=blobs,
            question=f"{text}\n{INSTRUCTION}",
            answer_type="text",
            answer=answer,
            evidence=[Evidence(t["image"], tuple(t["bbox"])) for t in targets],  # type: ignore[arg-type]
        )

    def prediction_from_model(
        self, text: str | None, sample: Sample, reader: AnswerReader
    ) -> str | None:
        """Every `image k: [box]` part is converted from model coordinates of image k."""
        preds, valid = parse_targets(text)
        if not valid:
            return None
        parts = []
        for k, box in preds:
            pixels = reader.box(box, k) if 1 <= k <= len(sample.images) else None
            if pixels is not None:
                parts.append(format_answer("image_bbox", {"image": k, "bbox": pixels}))
        return "; ".join(parts) if parts else "none"

    def score_item(self, sample: Sample, prediction: Any) -> ItemScore:
        preds, valid = parse_targets(None if prediction is None else str(prediction))
        gold_images = {t["image"] for t in sample.meta["targets"]}
        pred_images = {k for k, _ in preds}
        right = valid and all((k in gold_images) == (k in pred_images) for k in (1, 2))
        return ItemScore(
            sample.id,
            sample.task,
            float(right),
            right,
            valid,
            {"predicted_boxes": float(len(preds)), "image_accuracy": float(right)},
        )

    def aggregate(
        self,
        samples: Sequence[Sample],
        items: Sequence[ItemScore],
        predictions: Mapping[str, Any],
    ) -> dict[str, float]:
        out: dict[str, float] = {}
        styles = sorted({s.task for s in samples})
        for style in [*styles, "overall"]:
            chosen = [i for i, s in enumerate(samples) if style in ("overall", s.task)]
            ap = self.ap50([samples[i] for i in chosen], predictions)
            if ap is not None:
                out[f"{style}/ap50"] = ap
            out[f"{style}/image_accuracy"] = mean(items[i].score for i in chosen)
            out[f"{style}/accuracy"] = out[f"{style}/image_accuracy"]
        out["overall/invalid_rate"] = mean(0.0 if it.valid else 1.0 for it in items)
        out["overall/items"] = float(len(items))
        return out

    @staticmethod
    def ap50(samples: Sequence[Sample], predictions: Any) -> float | None:
        """Instance AP at IoU 0.5 over the given samples; None when they hold no target."""
        detections, gts = [], defaultdict(list)
        for s in samples:
            for t in s.meta["targets"]:
                gts[(s.id, t["image"])].append(t["bbox"])
            preds, _ = parse_targets(predictions.get(s.id))
            detections += [Detection((s.id, k), box) for k, box in preds]
        n_gt = sum(len(v) for v in gts.values())
        if n_gt == 0:
            return None
        return average_precision(match_detections(detections, gts, box_iou, 0.5), n_gt)

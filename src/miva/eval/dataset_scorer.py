"""Scoring of MIVA dataset splits (synthetic or COCO-built) with the same interface as the
benchmark adapters, so the eval runner treats a split and a benchmark alike.

Per item, through `miva.scoring` (the one implementation of each metric):
choice / number / image_index -> exact; bbox -> IoU (correct at IoU >= 0.5); image_bbox ->
image right and IoU of the box on it; text -> token F1 and EM (correct = EM).
Per task and overall: `accuracy`, plus `acc_iou50` and `mean_iou` for boxes,
`image_accuracy` for image+box answers, `em` and `f1` for text; `overall/accuracy` is the
mean over items.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from miva.data.benchmarks.base import Benchmark, Converted, ItemScore
from miva.data.schema import Sample
from miva.scoring import mean


class DatasetScorer(Benchmark):
    name = "dataset"
    title = "a MIVA dataset split"
    expects = "a MIVA dataset folder (data/*.parquet, dataset.json)"
    metric = "accuracy"

    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        from miva.data.io import read_samples

        return Converted(read_samples(folder, limit=limit), [])

    def score_item(self, sample: Sample, prediction: Any) -> ItemScore:
        from miva import scoring as acc

        text = None if prediction is None else str(prediction)
        valid = text is not None and text.strip() != ""
        kind = sample.answer_type
        details: dict[str, float] = {}
        if not valid:
            score = 0.0
            if kind in ("bbox", "image_bbox"):
                details["iou"] = 0.0
            if kind == "image_bbox":
                details["image_correct"] = 0.0
            if kind == "text":
                details.update(f1=0.0, em=0.0)
            return ItemScore(sample.id, sample.task, 0.0, False, False, details)
        assert text is not None
        if kind == "bbox":
            iou = acc.score_bbox(text, sample.answer)
            details["iou"] = iou
            score = float(iou >= 0.5)
        elif kind == "image_bbox":
            image_ok, iou = acc.image_bbox_rewards(text, sample.answer)
            details.update(iou=iou, image_correct=image_ok)
            score = float(iou >= 0.5)
        elif kind == "text":
            f1, em = acc.token_f1(text, sample.answer), acc.exact_match(text, sample.answer)
            details.update(f1=f1, em=em)
            score = em
        else:
            score = acc.score_answer(kind, text, sample.answer, sample.choices)
        return ItemScore(sample.id, sample.task, score, score >= 1.0, valid, details)

    def aggregate(
        self,
        samples: Sequence[Sample],
        items: Sequence[ItemScore],
        predictions: Mapping[str, Any],
    ) -> dict[str, float]:
        groups: dict[str, list[ItemScore]] = defaultdict(list)
        for it in items:
            groups[it.task].append(it)
        out: dict[str, float] = {}
        for task, group in [*groups.items(), ("overall", list(items))]:
            out[f"{task}/accuracy"] = mean(it.score for it in group)
            for key, name in (
                ("iou", "mean_iou"),
                ("image_correct", "image_accuracy"),
                ("f1", "f1"),
                ("em", "em"),
            ):
                vals = [it.details[key] for it in group if key in it.details]
                if vals:
                    out[f"{task}/{name}"] = mean(vals)
            ious = [it for it in group if "iou" in it.details]
            if ious:
                out[f"{task}/acc_iou50"] = mean(float(it.details["iou"] >= 0.5) for it in ious)
        out["overall/invalid_rate"] = mean(0.0 if it.valid else 1.0 for it in items)
        out["overall/items"] = float(len(items))
        return out

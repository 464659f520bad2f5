"""COCO ingestion on a small COCO folder drawn by the test (Pillow images + instances JSON)."""

from __future__ import annotations

import json
import logging

import pytest
from PIL import Image, ImageDraw

from miva.config import SynthesizeConfig
from miva.data.coco import load_coco, synthesize_coco
from miva.data.synth.solver import rederive
from miva.errors import DataError

CATS = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "ball"}]


def _coco_folder(tmp_path, dangling: bool = True, missing_file: bool = True):
    """12 images of 160x120 with 1-3 boxes each, drawn so the boxes are real pixels."""
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    images, anns = [], []
    colours = {1: "red", 2: "blue", 3: "green"}
    for i in range(12):
        img = Image.new("RGB", (160, 120), "white")
        draw = ImageDraw.Draw(img)
        boxes = [(1 + i % 3, [10, 10, 40, 30])]  # category cycles over images
        if i % 2 == 0:
            boxes.append((3, [90, 50, 30, 40]))
        if i % 4 == 0:
            boxes.append((2, [50, 70, 25, 25]))
        for cat, (x, y, w, h) in boxes:
            draw.rectangle([x, y, x + w - 1, y + h - 1], fill=colours[cat])
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i + 1,
                    "category_id": cat,
                    "bbox": [x, y, w, h],
                    "iscrowd": 0,
                }
            )
        draw.line([0, 119, 10 * i, 119], fill="black")  # every image distinct in content too
        img.save(root / "images" / f"{i:03d}.png")
        images.append({"id": i + 1, "file_name": f"{i:03d}.png", "width": 160, "height": 120})
    if missing_file:
        images.append({"id": 50, "file_name": "not-there.png", "width": 160, "height": 120})
        anns.append({"id": 900, "image_id": 50, "category_id": 1, "bbox": [0, 0, 20, 20]})
    if dangling:
        anns.append({"id": 901, "image_id": 999, "category_id": 2, "bbox": [0, 0, 20, 20]})
    path = root / "annotations" / "instances_test.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATS}))
    return root, path


def test_dangling_ids_and_missing_files_are_skipped_with_reasons(tmp_path, caplog):
    root, path = _coco_folder(tmp_path)
    with caplog.at_level(logging.WARNING, logger="miva.data.coco"):
        index = load_coco(root)
    assert len(index.images) == 12
    assert index.annotation_file == path
    assert len(index.skipped) == 2
    assert any("image id 50" in s and "not-there.png" in s for s in index.skipped)
    assert any("dangling image id 999" in s and "annotation 901" in s for s in index.skipped)
    assert str(path) in caplog.text and "999" in caplog.text
    # boxes are converted from xywh to xyxy
    first = index.images[0]
    assert first.objects[0].bbox == [10.0, 10.0, 50.0, 40.0]


def test_strict_mode_raises_a_data_error_naming_file_and_id(tmp_path):
    root, path = _coco_folder(tmp_path, missing_file=False)
    with pytest.raises(DataError) as err:
        load_coco(root, strict=True)
    assert str(path) in str(err.value) and "999" in str(err.value)


def test_unreadable_json_and_missing_folder(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "instances.json").write_text("{not json")
    with pytest.raises(DataError, match="instances.json"):
        load_coco(bad)
    (bad / "instances.json").write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="annotations"):
        load_coco(bad)
    with pytest.raises(DataError, match="no such COCO folder"):
        load_coco(tmp_path / "nope")


def test_coco_samples_rederive_and_keep_splits_apart(tmp_path):
    root, _ = _coco_folder(tmp_path)
    cfg = SynthesizeConfig(
        n=16,
        seed=1,
        workers=1,
        image_size=128,
        images_per_sample=(2, 3),
        splits={"train": 0.5, "test": 0.5},
        coco_path=str(root),
        tasks=["counting", "selection", "grounding", "group_grounding", "attribute"],
    )
    result = synthesize_coco(cfg, progress=False)
    samples = result.samples
    assert len(samples) == 16
    assert {s.task for s in samples} == {"counting", "selection", "grounding", "group_grounding"}
    assert len(result.skipped) == 2
    assert result.dropped_shared_images == 0
    used: dict[str, set[int]] = {}
    for s in samples:
        assert s.source == "coco"
        assert rederive(s.meta, s.answer_type, s.choices) == s.answer, s.question
        assert max(s.image(1).size) == 128  # 160x120 resized to 128x96
        used.setdefault(s.split, set()).update(im["image_id"] for im in s.meta["scene"]["images"])
        for e in s.evidence:
            assert 1 <= e.image <= len(s.images)
    assert not used["train"] & used["test"]
    # grounding boxes are scaled with the image: 128 / 160 = 0.8
    g = next(s for s in samples if s.task == "grounding")
    assert all(v == round(v, 1) for v in g.answer)

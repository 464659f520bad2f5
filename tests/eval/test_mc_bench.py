"""MC-Bench adapter: COCO-like annotations with xywh boxes and negatives -> AP50, image accuracy."""

import pytest

from miva.data.benchmarks import load_benchmark
from miva.errors import DataError
from tests.eval.native import save_png, write_json


def _folder(tmp_path):
    root = tmp_path / "mcbench"
    for i in range(1, 7):
        save_png(root / "images" / f"{i}.png", 40, 40)
    images = [
        {
            "id": i,
            "file_name": f"{i}.png",
            "height": 40,
            "width": 40,
            "inter_img_id": (i + 1) // 2,
            "text_id": (i + 1) // 2,
        }
        for i in range(1, 7)
    ] + [{"id": 7, "file_name": "missing.png", "height": 40, "width": 40}]
    annotations = [
        {"image_id": 1, "text_id": 1, "category_id": 1, "bbox": [0, 0, 10, 10]},  # -> [0,0,10,10]
        {
            "image_id": 2,
            "text_id": 1,
            "category_id": 1,
            "bbox": [20, 20, 10, 10],
        },  # -> [20,20,30,30]
        {"image_id": 4, "text_id": 2, "category_id": 1, "bbox": [0, 0, 20, 20]},  # -> [0,0,20,20]
        {"image_id": 1, "text_id": 4, "category_id": 1, "bbox": [0, 0, 0, 5]},  # no area
    ]
    descriptions = [
        {
            "id": 1,
            "images_id": [1, 2],
            "text": "the red squares",
            "positive_sample": True,
            "text_style": "referring",
        },
        {
            "id": 2,
            "images_id": [3, 4],
            "text": "the one that differs",
            "positive_sample": True,
            "text_style": "comparison",
        },
        {
            "id": 3,
            "images_id": [5, 6],
            "text": "a unicorn",
            "positive_sample": False,
            "text_style": "reasoning",
        },
        {"id": 4, "images_id": [1, 2], "text": "bad box", "positive_sample": True},
        {"id": 5, "images_id": [7, 2], "text": "missing file", "positive_sample": True},
        {"id": 6, "images_id": [1], "text": "one image only"},
    ]
    write_json(
        root / "mc_bench_val.json",
        {"images": images, "annotations": annotations, "descriptions": descriptions},
    )
    return root


def test_convert_xywh_and_negatives(tmp_path):
    _, conv = load_benchmark("mc-bench", _folder(tmp_path))
    s = conv.samples
    assert [x.task for x in s] == ["referring", "comparison", "reasoning"]
    assert s[0].meta["targets"] == [
        {"image": 1, "bbox": [0, 0, 10, 10], "group": 1},
        {"image": 2, "bbox": [20, 20, 30, 30], "group": 1},
    ]
    assert s[0].answer == "image 1: [0, 0, 10, 10]; image 2: [20, 20, 30, 30]"
    # the target of pair (3, 4) is on image 4, the second image of the pair
    assert s[1].meta["targets"] == [{"image": 2, "bbox": [0, 0, 20, 20], "group": 1}]
    assert s[2].answer == "none" and s[2].meta["positive"] is False
    reasons = [k.reason for k in conv.skipped]
    assert len(reasons) == 3
    assert "no area" in reasons[0] and "not found" in reasons[1] and "two images" in reasons[2]


def test_ap50_and_image_accuracy_hand_computed(tmp_path):
    bench, conv = load_benchmark("mc-bench", _folder(tmp_path))
    s = conv.samples
    preds = {
        # TP (IoU 1) then FP (misses [20,20,30,30]); presence right on both images
        s[0].id: "image 1: [0, 0, 10, 10]; image 2: [0, 0, 5, 5]",
        # [0,0,20,10] vs [0,0,20,20]: IoU 200/400 = 0.5 -> TP; the image-1 box is a FP;
        # presence wrong on image 1
        s[1].id: "image 2: [0, 0, 20, 10]; image 1: [0, 0, 5, 5]",
        s[2].id: "image 1: [1, 1, 4, 4]",  # negative: FP, presence wrong
    }
    m = bench.score(s, preds).metrics
    # 3 ground truths; TP, FP, TP, FP, FP -> AP = 56/101 (see test_metrics)
    assert m["overall/ap50"] == pytest.approx(56 / 101)
    assert m["overall/image_accuracy"] == pytest.approx(1 / 3)
    # referring alone: 2 gts, TP, FP -> recall 0.5 reached with precision 1: 51 points -> 51/101
    assert m["referring/ap50"] == pytest.approx(51 / 101)
    assert m["comparison/ap50"] == pytest.approx(1.0)
    assert "reasoning/ap50" not in m  # no ground truth in negatives
    assert m["reasoning/image_accuracy"] == 0.0


def test_negative_answered_none_is_right(tmp_path):
    bench, conv = load_benchmark("mc-bench", _folder(tmp_path))
    neg = conv.samples[2]
    assert bench.score_item(neg, "none").correct
    assert bench.score_item(neg, "None.").correct
    assert not bench.score_item(neg, "I am not sure").valid


def test_bad_layout(tmp_path):
    with pytest.raises(DataError, match="MC-Bench_coco_format.json .* or exactly one"):
        load_benchmark("mc-bench", tmp_path)
    write_json(tmp_path / "x.json", {"images": []})
    with pytest.raises(DataError, match="'descriptions'"):
        load_benchmark("mc-bench", tmp_path)


def _release(tmp_path):
    """The release as shipped: both annotation files side by side, images in MC-Bench_images/."""
    root = tmp_path / "MC-Bench"
    names = ["D3/018_a.jpg", "D3/020_b.jpg", "COCO/1.jpg", "COCO/2.jpg"]
    for name in names:
        save_png(root / "MC-Bench_images" / name, 40, 40)

    def image(i, pair, k, other, text):
        return {
            "id": i,
            "file_name": names[i],
            "pair_id": pair,
            "id_in_pair": k,
            "height": 40,
            "width": 40,
            "pair_image_id": other,
            "description": text,
        }

    golf = "The man who has already swung a golf club"
    write_json(
        root / "MC-Bench_coco_format.json",
        {
            # listed second image first: id_in_pair decides which one is image 1
            "images": [
                image(1, 0, 2, 0, golf),
                image(0, 0, 1, 1, golf),
                image(2, 1, 1, 3, "A unicorn"),
                image(3, 1, 2, 2, "A unicorn"),
            ],
            "annotations": [
                {"id": 0, "image_id": 1, "pair_id": 0, "category_id": 2, "bbox": [5, 5, 10, 20]},
                {"id": 1, "image_id": 0, "pair_id": 0, "category_id": 1, "bbox": [0, 0, 4, 4]},
            ],
            "categories": [{"id": 1, "name": "group 1"}, {"id": 2, "name": "group 2"}],
        },
    )
    write_json(
        root / "mc-bench_v0.2_val.json",
        {
            "images": [{"id": 10 + i, "file_name": n} for i, n in enumerate(names)],
            "annotations": [],
            "descriptions": [
                {"id": 7, "images_id": [10, 11], "text": golf, "text_style": "referring"},
                {"id": 8, "images_id": [12, 13], "text": "A unicorn", "text_style": "reasoning"},
            ],
        },
    )
    return root


def test_release_folder_reads_the_file_the_official_evaluation_reads(tmp_path):
    bench, conv = load_benchmark("mc-bench", _release(tmp_path))
    assert not conv.skipped
    golf, unicorn = conv.samples
    assert golf.meta["native_id"] == "0" and golf.task == "referring"  # style from v0.2
    assert golf.meta["targets"] == [
        {"image": 1, "bbox": [0.0, 0.0, 4.0, 4.0], "group": 1},
        {"image": 2, "bbox": [5.0, 5.0, 15.0, 25.0], "group": 2},
    ]
    assert golf.question.startswith("The man who has already swung a golf club\n")
    assert unicorn.answer == "none" and unicorn.meta["positive"] is False
    assert unicorn.task == "reasoning"
    m = bench.score(
        conv.samples,
        {golf.id: "image 1: [0, 0, 4, 4]; image 2: [5, 5, 15, 25]", unicorn.id: "none"},
    ).metrics
    assert m["overall/ap50"] == 1.0 and m["overall/image_accuracy"] == 1.0

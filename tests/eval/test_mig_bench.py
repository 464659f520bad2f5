"""MIG-Bench adapter: native MIG_data.json + images -> samples -> Acc@0.5 (hand-computed)."""

import pytest

from miva.data.benchmarks import get_benchmark, load_benchmark
from miva.errors import DataError
from tests.eval.native import save_png, write_json


def _folder(tmp_path):
    root = tmp_path / "MIG-Bench"
    img = root / "images"
    save_png(img / "common" / "a.png", 100, 50)  # w=100, h=50
    save_png(img / "common" / "b.png", 200, 100)
    save_png(img / "group" / "g1.png", 100, 100)
    save_png(img / "group" / "g2.png", 100, 100, "blue")
    save_png(img / "group" / "g3.png", 100, 100, "green")
    p = "./MIG-Bench/images/"  # paths as the release writes them
    items = [
        # 0: the question names Image-1 -> target image 1 (100x50): [0.1,0.2,0.5,0.6] -> [10,10,50,30]
        {
            "task": "common_object",
            "images": [p + "common/a.png", p + "common/b.png"],
            "question": "Find the cup in Image-1 and locate it.",
            "answer": [0.1, 0.2, 0.5, 0.6],
            "additional_info": "",
            "need_format": False,
        },
        # 1: "in the second image" -> image 2 (200x100): [0.25,0.25,0.75,0.75] -> [50,25,150,75]
        {
            "task": "reasoning",
            "images": [p + "common/a.png", p + "common/b.png"],
            "question": "Which item shares the feature? Locate it in the second image.",
            "answer": [0.25, 0.25, 0.75, 0.75],
            "additional_info": "x",
            "need_format": True,
        },
        # 2: group grounding, reference named "Image-3" -> (3, [0,0,50,50])
        {
            "task": "group_grounding",
            "images": [p + "group/g1.png", p + "group/g2.png", p + "group/g3.png"],
            "question": "Find the green square.",
            "answer": [0, 0, 0.5, 0.5],
            "additional_info": "Image-3",
            "need_format": False,
        },
        # 3: group grounding, reference named by file name -> (2, [0,0,100,100])
        {
            "task": "group_grounding",
            "images": [p + "group/g1.png", p + "group/g2.png"],
            "question": "Find the blue square.",
            "answer": [0, 0, 1, 1],
            "additional_info": "g2.png",
            "need_format": False,
        },
        # 4: no image named -> last image (100x50): [0,0,0.5,1] -> [0,0,50,50]
        {
            "task": "region",
            "images": [p + "common/b.png", p + "common/a.png"],
            "question": "Ground the region.",
            "answer": [0, 0, 0.5, 1.0],
        },
        # bad items, each skipped with its reason
        {
            "task": "region",
            "images": [p + "common/missing.png"],
            "question": "q",
            "answer": [0, 0, 1, 1],
        },
        {
            "task": "region",
            "images": [p + "common/a.png"],
            "question": "q",
            "answer": [0.5, 0.5, 0.2, 0.9],
        },
        {
            "task": "region",
            "images": [p + "common/a.png"],
            "question": "q",
            "answer": [10, 20, 30, 40],
        },
        {
            "task": "group_grounding",
            "images": [p + "group/g1.png"],
            "question": "q",
            "answer": [0, 0, 1, 1],
            "additional_info": "the big dog",
        },
        {"task": "region", "question": "no images key", "answer": [0, 0, 1, 1]},
        "not an object",
    ]
    write_json(root / "MIG_data.json", items)
    return root


def test_convert_relative_boxes_and_group_reference(tmp_path):
    _, conv = load_benchmark("mig-bench", _folder(tmp_path))
    s = conv.samples
    assert [x.task for x in s] == [
        "common_object",
        "reasoning",
        "group_grounding",
        "group_grounding",
        "region",
    ]
    assert s[0].answer_type == "bbox" and s[0].answer == [10, 10, 50, 30]
    assert s[0].evidence[0].image == 1
    assert s[1].answer == [50, 25, 150, 75] and s[1].evidence[0].image == 2
    assert s[1].question.endswith("Answer with the box in image 2 as [x1, y1, x2, y2].")
    assert s[2].answer_type == "image_bbox" and s[2].answer == {"image": 3, "bbox": [0, 0, 50, 50]}
    assert s[3].answer == {"image": 2, "bbox": [0, 0, 100, 100]}
    assert s[4].answer == [0, 0, 50, 50] and s[4].meta["target_image"] == 2
    reasons = {k.item: k.reason for k in conv.skipped}
    assert len(conv.skipped) == 6
    assert "not found" in reasons["MIG_data.json[5]"]
    assert "inverted" in reasons["MIG_data.json[6]"]
    assert "relative" in reasons["MIG_data.json[7]"]
    assert "names no reference image" in reasons["MIG_data.json[8]"]
    assert "images" in reasons["MIG_data.json[9]"]
    assert "not an object" in reasons["MIG_data.json[10]"]


def test_score_acc_at_05_hand_computed(tmp_path):
    bench, conv = load_benchmark("mig-bench", _folder(tmp_path))
    s = conv.samples
    preds = {
        s[0].id: "[10, 10, 50, 30]",  # IoU 1 -> hit
        # pred 50x50=2500 inside gt 100x50=5000 -> IoU 2500/5000 = 0.5 -> hit (>= 0.5)
        s[1].id: "[50, 25, 100, 75]",
        s[2].id: "image 2: [0, 0, 50, 50]",  # wrong image -> miss, IoU counted 0
        # right image; [0,0,100,40] vs [0,0,100,100]: 4000/10000 = 0.4 -> miss
        s[3].id: "image 2: [0, 0, 100, 40]",
        # s[4]: no prediction -> invalid, miss
    }
    res = bench.score(s, preds, conv.skipped)
    m = res.metrics
    # per task: common_object 1, reasoning 1, group_grounding 0/2, region 0
    assert m["common_object/acc_iou50"] == 1.0
    assert m["group_grounding/acc_iou50"] == 0.0
    assert m["group_grounding/image_accuracy"] == 0.5
    # headline = mean over the 4 tasks present = (1 + 1 + 0 + 0) / 4; micro = 2/5
    assert m["overall/acc_iou50"] == pytest.approx(0.5)
    assert m["overall/micro_acc_iou50"] == pytest.approx(0.4)
    # mean IoU: (1 + 0.5 + 0 + 0.4 + 0) / 5 = 0.38
    assert m["overall/mean_iou"] == pytest.approx(0.38)
    assert m["overall/invalid_rate"] == pytest.approx(0.2)
    assert len(res.summary()["skipped"]) == 6


def test_bad_folder_names_the_file(tmp_path):
    with pytest.raises(DataError, match="MIG_data.json"):
        get_benchmark("mig-bench").convert(tmp_path)
    write_json(tmp_path / "MIG_data.json", {"task": "region"})
    with pytest.raises(DataError, match="expected a JSON list"):
        get_benchmark("mig-bench").convert(tmp_path)
    (tmp_path / "MIG_data.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        get_benchmark("mig-bench").convert(tmp_path)

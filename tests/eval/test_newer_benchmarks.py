"""MMSI-Bench, TreeBench and VisualProbe: fixtures in each release's layout -> samples ->
metrics worked out by hand in the comments."""

import base64
import csv

import pyarrow as pa
import pytest

from miva.agent.coords import Frame
from miva.data.benchmarks import get_benchmark, load_benchmark
from miva.errors import DataError
from miva.eval.runner import ModelAnswers
from tests.eval.native import png, save_png, write_json, write_parquet

# ------------------------------------------------------------------------------ MMSI-Bench

MMSI_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("images", pa.list_(pa.binary())),
        ("question_type", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("thought", pa.string()),
        ("difficulty", pa.string()),
    ]
)
OPTIONS = "Options: A: Left, B: Right, C: Forward, D: Backward"


def _mmsi_row(i, qtype, n_images, answer, question=None):
    return {
        "id": i,
        "images": [
            png(color=c) for c in ["red", "blue", "green", "white", "black", "orange"][:n_images]
        ],
        "question_type": qtype,
        "question": question or f"Question {i}: which way did the camera move?\n{OPTIONS}",
        "answer": answer,
        "thought": "step by step",
        "difficulty": "hard",
    }


def _mmsi_folder(tmp_path):
    rows = [
        _mmsi_row(0, "Motion (Cam.)", 2, "C"),
        _mmsi_row(1, "Motion (Cam.)", 3, "A"),
        _mmsi_row(2, "Positional Relationship (Cam.–Obj.)", 2, "B"),
        _mmsi_row(3, "MSR", 6, "D"),
        _mmsi_row(7, "MSR", 2, "B"),
        _mmsi_row(4, "MSR", 0, "A"),  # no images
        _mmsi_row(5, "MSR", 2, "E"),  # no option E
        _mmsi_row(6, "MSR", 2, "A", question="Which way? Left or right."),  # no options
    ]
    write_parquet(tmp_path / "MMSI_Bench.parquet", rows, MMSI_SCHEMA)
    return tmp_path


def test_mmsi_reads_inline_options_and_skips_bad_rows(tmp_path):
    bench, conv = load_benchmark("mmsi", _mmsi_folder(tmp_path))
    assert bench.name == "mmsi-bench"
    s = conv.samples
    assert [x.meta["native_id"] for x in s] == ["0", "1", "2", "3", "7"]
    assert [x.task for x in s] == [
        "motion_cam",
        "motion_cam",
        "positional_relationship_cam_obj",
        "msr",
        "msr",
    ]
    assert s[0].choices == ["Left", "Right", "Forward", "Backward"]
    assert s[0].answer == "C" and len(s[0].images) == 2 and len(s[3].images) == 6
    assert s[2].meta["question_type"] == "Positional Relationship (Cam.–Obj.)"
    assert s[0].meta["difficulty"] == "hard" and s[0].meta["options_in_question"]
    reasons = {k.item: k.reason for k in conv.skipped}
    assert "images is empty" in reasons["MMSI_Bench.parquet#4"]
    assert "option letters" in reasons["MMSI_Bench.parquet#5"]
    assert "no options" in reasons["MMSI_Bench.parquet#6"]


def test_mmsi_accuracy_by_hand(tmp_path):
    bench, conv = load_benchmark("mmsi-bench", _mmsi_folder(tmp_path))
    s = conv.samples
    # motion_cam: C right, B for A wrong -> 1/2; positional: (B) right -> 1; msr: none, A for B -> 0
    preds = {s[0].id: "C", s[1].id: "B", s[2].id: "(B)", s[3].id: None, s[4].id: "A"}
    m = bench.score(s, preds, conv.skipped).metrics
    assert m["motion_cam/accuracy"] == 0.5
    assert m["positional_relationship_cam_obj/accuracy"] == 1.0
    assert m["msr/accuracy"] == 0.0
    assert m["overall/accuracy"] == pytest.approx(2 / 5)  # micro, the official overall
    assert m["overall/macro_accuracy"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert m["overall/invalid_rate"] == pytest.approx(1 / 5)


def test_mmsi_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="MMSI_Bench"):
        load_benchmark("mmsi-bench", tmp_path)


# ------------------------------------------------------------------------------- TreeBench

TREE_COLUMNS = [
    "index",
    "image",
    "question",
    "multi-choice options",
    "answer",
    "category",
    "target_instances",
]
TREE_OPTIONS = "A. red\nB. blue\nC. green\nD. white"


def _tree_row(index, category, answer, targets, options=TREE_OPTIONS):
    return {
        "index": index,
        "image": base64.b64encode(png(100, 80, "gray")).decode(),
        "question": f"Question {index}?",
        "multi-choice options": options,
        "answer": answer,
        "category": category,
        "target_instances": str(targets),
    }


def _tree_folder(tmp_path):
    rows = [
        _tree_row(0, "Perception/Attributes", "B", [[10, 10, 30, 30]]),
        _tree_row(1, "Reasoning/Ordering", "A", [[0, 0, 20, 20], [50, 40, 70, 60]]),
        _tree_row(2, "Reasoning/Comparison", "D", [[60, 20, 80, 40]]),
        _tree_row(3, "Reasoning/Ordering", "A", [[30, 30, 10, 10]]),  # inverted box
        _tree_row(4, "Perception/OCR", "E", [[0, 0, 5, 5]]),  # no option E
        _tree_row(5, "Perception/OCR", "A", [[90, 70, 150, 90]]),  # outside the 100x80 image
    ]
    # pandas-style TSV: the multi-line options field is quoted
    tmp_path.mkdir(parents=True, exist_ok=True)
    with (tmp_path / "TreeBench.tsv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, TREE_COLUMNS, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


def test_treebench_reads_tsv_targets_and_skips_bad_rows(tmp_path):
    _, conv = load_benchmark("treebench", _tree_folder(tmp_path))
    s = conv.samples
    assert [x.task for x in s] == [
        "perception_attributes",
        "reasoning_ordering",
        "reasoning_comparison",
    ]
    assert s[0].choices == ["red", "blue", "green", "white"] and s[0].answer == "B"
    assert s[1].meta["targets"] == [[0, 0, 20, 20], [50, 40, 70, 60]]
    assert [e.bbox for e in s[1].evidence] == [(0, 0, 20, 20), (50, 40, 70, 60)]
    assert "Options:\nA. red" in s[0].question and s[0].meta["category"] == "Perception/Attributes"
    reasons = {k.item: k.reason for k in conv.skipped}
    assert "inverted" in reasons["TreeBench.tsv#3"]
    assert "option letters" in reasons["TreeBench.tsv#4"]
    assert "outside" in reasons["TreeBench.tsv#5"]


def test_treebench_accuracy_and_mean_iou_by_hand(tmp_path):
    bench, conv = load_benchmark("treebench", _tree_folder(tmp_path))
    s = conv.samples
    preds = {
        # right letter, the exact box: IoU 1
        s[0].id: "B [10, 10, 30, 30]",
        # wrong letter; target [0,0,20,20]: best of [0,0,10,20] (200/400 = 0.5) and
        # [0,0,5,5] (25/400) -> 0.5; target [50,40,70,60]: exact -> 1; mean 0.75
        s[1].id: "C [0, 0, 10, 20] <box>[50, 40, 70, 60]</box> [0, 0, 5, 5]",
        # right letter, no box: IoU 0
        s[2].id: "D",
    }
    result = bench.score(s, preds)
    m = result.metrics
    assert m["overall/accuracy"] == pytest.approx(2 / 3)
    assert m["overall/mean_iou"] == pytest.approx((1.0 + 0.75 + 0.0) / 3)
    assert m["reasoning_ordering/mean_iou"] == pytest.approx(0.75)
    assert m["reasoning_ordering/accuracy"] == 0.0
    assert m["overall/perception_accuracy"] == 1.0
    assert m["overall/reasoning_accuracy"] == 0.5
    assert [it.details["predicted_boxes"] for it in result.items] == [1.0, 3.0, 0.0]


def test_treebench_model_boxes_are_converted_to_dataset_pixels(tmp_path):
    bench, conv = load_benchmark("treebench", _tree_folder(tmp_path))
    sample = conv.samples[0]
    # the 100x80 image was shown at 50x40: model [5, 5, 15, 15] -> dataset [10, 10, 30, 30]
    reader = ModelAnswers("qwen2.5-vl", [Frame(100, 80, 50, 40)])
    pred = bench.prediction_from_model("B [5, 5, 15, 15]", sample, reader)
    assert pred == "B [10, 10, 30, 30]"
    assert bench.score_item(sample, pred).details["iou"] == 1.0
    assert bench.prediction_from_model("I cannot tell", sample, reader) is None


# ----------------------------------------------------------------------------- VisualProbe


def _probe_folder(tmp_path):
    root = tmp_path / "probe"
    save_png(root / "VisualProbe_Easy" / "data" / "visual_probe_easy_0.jpg", 64, 48)
    save_png(root / "VisualProbe_Easy" / "data" / "visual_probe_easy_1.jpg", 64, 48, "blue")
    save_png(root / "VisualProbe_Hard" / "data" / "visual_probe_hard_0.jpg", 64, 48, "green")
    save_png(root / "VisualProbe_Hard" / "data" / "visual_probe_hard_1.jpg", 64, 48, "white")
    write_json(
        root / "VisualProbe_Easy" / "val.json",
        [
            {
                "problem": "<image>\nWhat color is the car?",
                "images": ["VisualProbe_Easy/data/visual_probe_easy_0.jpg"],
                "solution": "red",
                "data_source": "visual_probe_easy",
            },
            {
                "problem": "<image>\nHow many letters are under the sign?",
                "images": ["VisualProbe_Easy/data/visual_probe_easy_1.jpg"],
                "solution": "eight",
            },
            {
                "problem": "<image>\nmissing image",
                "images": ["VisualProbe_Easy/data/nope.jpg"],
                "solution": "x",
            },
        ],
    )
    write_json(
        root / "VisualProbe_Hard" / "val.json",
        [
            {
                "problem": "<image>\nWhat is the line of English text?",
                "images": ["VisualProbe_Hard/data/visual_probe_hard_0.jpg"],
                "solution": "YE OLDE.",
            },
            {
                "problem": "<image>\nWhat colors are the clothes?",
                "images": ["VisualProbe_Hard/data/visual_probe_hard_1.jpg"],
                "solution": "black and white",
            },
            {"problem": "<image>\nno solution", "images": ["x.jpg"]},
        ],
    )
    return root


def test_visualprobe_reads_split_folders(tmp_path):
    bench, conv = load_benchmark("visual-probe", _probe_folder(tmp_path))
    assert bench.name == "visualprobe"
    assert [x.task for x in conv.samples] == ["easy", "easy", "hard", "hard"]
    assert conv.samples[0].question == "What color is the car?"
    assert conv.samples[0].answer_type == "text"
    reasons = {k.item: k.reason for k in conv.skipped}
    assert "not found" in reasons["VisualProbe_Easy/val.json[2]"]
    assert "solution" in reasons["VisualProbe_Hard/val.json[2]"]
    # one split folder on its own
    _, hard = load_benchmark("visualprobe", _probe_folder(tmp_path / "again") / "VisualProbe_Hard")
    assert [x.task for x in hard.samples] == ["hard", "hard"]


def test_visualprobe_rule_accuracy_em_f1_by_hand(tmp_path):
    bench, conv = load_benchmark("visualprobe", _probe_folder(tmp_path))
    s = conv.samples
    preds = {
        # "red" inside the answer -> hit; EM 0; F1 tokens [car, is, red] vs [red]: P 1/3, R 1 -> 0.5
        s[0].id: "The car is red.",
        # number word as digit -> hit; EM 0, F1 0 (SQuAD knows no number words)
        s[1].id: "8",
        # same words -> hit, EM 1, F1 1
        s[2].id: "ye olde",
        # "white" does not contain "black and white" -> miss; F1 P 1, R 1/3 -> 0.5
        s[3].id: "white",
    }
    m = bench.score(s, preds).metrics
    assert m["easy/accuracy"] == 1.0 and m["hard/accuracy"] == 0.5
    assert m["easy/em"] == 0.0 and m["hard/em"] == 0.5
    assert m["easy/f1"] == pytest.approx(0.25) and m["hard/f1"] == pytest.approx(0.75)
    assert m["overall/accuracy"] == 0.75
    assert m["overall/em"] == 0.25 and m["overall/f1"] == pytest.approx(0.5)


def test_visualprobe_empty_folder_names_the_layout(tmp_path):
    with pytest.raises(DataError, match="VisualProbe_"):
        get_benchmark("visualprobe").convert(tmp_path)


@pytest.mark.parametrize(
    "name",
    [
        "miva.data.benchmarks.base",
        "miva.data.benchmarks.mmsi_bench",
        "miva.data.benchmarks.treebench",
        "miva.data.benchmarks.visualprobe",
    ],
)
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0 and result.attempted > 0

"""MAT-Search / MAT-Coding: multiple references, simple/hard split, Chinese per character."""

import pytest

from miva.data.benchmarks import load_benchmark
from miva.data.benchmarks.mat import f1_em
from tests.eval.native import save_png, write_json


def test_mat_search_max_over_references_and_chinese(tmp_path):
    save_png(tmp_path / "images" / "1.png")
    items = [
        {
            "id": "s1",
            "question": "Which landmark?",
            "answer": ["Eiffel Tower", "La tour Eiffel"],
            "image_path": "images/1.png",
            "split": "simple",
        },
        {
            "id": "s2",
            "question": "哪个城市?",
            "answer": "北京市",
            "image_path": "images/1.png",
            "split": "hard",
        },
        {
            "id": "s3",
            "question": "Who?",
            "answer": "Ada Lovelace",
            "image_path": "images/1.png",
            "split": "hard",
        },
        {"id": "s4", "question": "no answer", "answer": [], "image_path": "images/1.png"},
        {"id": "s5", "question": "no image", "answer": "x", "image_path": "images/none.png"},
    ]
    write_json(tmp_path / "MAT-Search.json", items)
    bench, conv = load_benchmark("mat-search", tmp_path)
    s = conv.samples
    assert [x.task for x in s] == ["simple", "hard", "hard"]
    assert s[0].answer == ["Eiffel Tower", "La tour Eiffel"]
    assert [k.reason for k in conv.skipped] == [
        "no reference answer",
        f"image file images/none.png not found under {tmp_path}",
    ]
    preds = {
        s[0].id: "the eiffel tower",  # EM 1, F1 1 (articles dropped)
        # chars 北 京 vs 北 京 市: common 2 -> P 1, R 2/3 -> F1 0.8; EM 0
        s[1].id: "北京",
        # "Lovelace" vs "Ada Lovelace": P 1, R 1/2 -> F1 2/3
        s[2].id: "Lovelace",
    }
    m = bench.score(s, preds).metrics
    assert m["simple/em"] == 1.0 and m["simple/f1"] == 1.0
    assert m["hard/f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["hard/em"] == 0.0
    assert m["overall/f1"] == pytest.approx((1 + 0.8 + 2 / 3) / 3)
    assert m["overall/em"] == pytest.approx(1 / 3)
    assert bench.tools == ("search",)


def test_chinese_punctuation_and_whole_string_em():
    assert f1_em("北京市。", ["北京市"]) == (1.0, 1.0)
    assert f1_em("", ["x"]) == (0.0, 0.0)
    assert f1_em(None, ["x"]) == (0.0, 0.0)


def test_mat_coding_uses_processed_image_and_answers_list(tmp_path):
    save_png(tmp_path / "ori" / "1.png", color="red")
    save_png(tmp_path / "proc" / "1.png", color="black")
    items = [
        {
            "id": 1,
            "question": "What is written?",
            "answers": ["STOP", "stop sign"],
            "ori_image_path": "ori/1.png",
            "processed_image_path": "proc/1.png",
            "type": ["rotation", "dark"],
            "split": "hard",
        },
    ]
    write_json(tmp_path / "MAT-Coding.json", items)
    bench, conv = load_benchmark("mat-coding", tmp_path)
    (s,) = conv.samples
    assert s.image(1).getpixel((0, 0)) == (0, 0, 0)  # the processed (degraded) image
    assert s.meta["types"] == ["rotation", "dark"] and bench.tools == ("python",)
    m = bench.score([s], {s.id: "a stop sign"}).metrics
    assert m["overall/em"] == 1.0 and m["hard/f1"] == 1.0

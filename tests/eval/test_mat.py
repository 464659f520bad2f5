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


def test_mat_reads_the_release_layout(tmp_path):
    """The release as shipped (laolao77/MAT): JSON files in MAT/MAT-Benchmark/, images in
    MAT-Search-image/ and MAT-Coding-image/ beside them; crop items show the original."""
    bench_dir = tmp_path / "MAT" / "MAT-Benchmark"
    save_png(bench_dir / "MAT-Search-image" / "search_1.jpg", color="blue")
    save_png(bench_dir / "MAT-Coding-image" / "rotation180_1_ori.png", color="white")
    save_png(bench_dir / "MAT-Coding-image" / "rotation180_1_proc.png", color="black")
    save_png(bench_dir / "MAT-Coding-image" / "crop_8_ori.png", color="red")
    save_png(bench_dir / "MAT-Coding-image" / "crop_8_proc.png", color="green")
    write_json(
        bench_dir / "MAT-Search.json",
        [{"id": "0", "question": "Where?", "answer": ["Paris"], "image_path": "search_1.jpg"}],
    )
    write_json(
        bench_dir / "MAT-Coding.json",
        [
            {
                "id": 12,
                "question": "What is the serving size?",
                "answers": ["1 Can (473ml)"],
                "ori_image_path": "rotation180_1_ori.png",
                "processed_image_path": "rotation180_1_proc.png",
                "type": ["rotation180"],
                "split": "simple",
            },
            {
                "id": 119,
                "question": "Recognize the text within the [366, 723, 506, 851] of the image.",
                "answers": ["SINCE 1994"],
                "ori_image_path": "crop_8_ori.png",
                "processed_image_path": "crop_8_proc.png",
                "type": ["crop"],
                "split": "hard",
            },
        ],
    )
    for folder in (tmp_path, tmp_path / "MAT", bench_dir):  # any level of the release
        _, search = load_benchmark("mat-search", folder)
        assert not search.skipped and search.samples[0].image(1).getpixel((0, 0)) == (0, 0, 255)
        assert search.samples[0].task == "simple"  # no split field: the first 75 are simple
        _, coding = load_benchmark("mat-coding", folder)
        assert not coding.skipped
        rotated, crop = coding.samples
        assert rotated.image(1).getpixel((0, 0)) == (0, 0, 0)  # the processed image
        assert crop.image(1).getpixel((0, 0)) == (255, 0, 0)  # crop: the original
        assert [s.task for s in coding.samples] == ["simple", "hard"]


def test_mat_names_the_expected_layout_when_the_json_is_missing(tmp_path):
    from miva.errors import DataError

    with pytest.raises(
        DataError,
        match="MAT-Benchmark/MAT-Coding.json with images in MAT-Benchmark/MAT-Coding-image/",
    ):
        load_benchmark("mat-coding", tmp_path)

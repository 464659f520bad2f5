"""BLINK, MuirBench, MMIU, HR-Bench and V*: native files -> choice samples -> accuracy."""

import pyarrow as pa
import pytest

from miva.data.benchmarks import BENCHMARKS, get_benchmark, load_benchmark
from miva.errors import ConfigError, DataError
from tests.eval.native import (
    IMAGE_STRUCT,
    b64png,
    hf_image,
    png,
    save_png,
    write_json,
    write_jsonl,
    write_parquet,
)

BLINK_SCHEMA = pa.schema(
    [("idx", pa.string()), ("question", pa.string()), ("sub_task", pa.string())]
    + [(f"image_{k}", IMAGE_STRUCT) for k in range(1, 5)]
    + [("choices", pa.list_(pa.string())), ("answer", pa.string()), ("prompt", pa.string())]
)


def _blink_row(idx, task, images, answer, choices=("yes", "no")):
    row = {
        "idx": idx,
        "question": f"q {idx}?",
        "sub_task": task,
        "choices": list(choices),
        "answer": answer,
        "prompt": f"q {idx}? Select from the following choices. (A) yes (B) no",
    }
    for k in range(4):
        row[f"image_{k + 1}"] = hf_image(images[k] if k < len(images) else None)
    return row


def test_blink_null_image_slots_and_unknown_letters(tmp_path):
    a, b = png(color="red"), png(color="blue")
    write_parquet(
        tmp_path / "Art_Style" / "val-00000-of-00001.parquet",
        [
            _blink_row("art_1", "Art_Style", [a, b, a], "(B)"),
            _blink_row("art_2", "Art_Style", [a], "(A)"),
        ],
        BLINK_SCHEMA,
    )
    write_parquet(
        tmp_path / "Counting" / "val-00000-of-00001.parquet",
        [
            _blink_row("cnt_1", "Counting", [a, None, b], "(A)"),  # null slot in the middle
            _blink_row("cnt_2", "Counting", [a], "(E)", ("1", "2", "3", "4")),  # no option E
            _blink_row("cnt_3", "Counting", [], "(A)"),  # every image slot null
        ],
        BLINK_SCHEMA,
    )
    # the hidden-answer test split is not read
    write_parquet(
        tmp_path / "Counting" / "test-00000-of-00001.parquet",
        [_blink_row("t", "Counting", [a], "")],
        BLINK_SCHEMA,
    )
    bench, conv = load_benchmark("blink", tmp_path)
    s = conv.samples
    assert [len(x.images) for x in s] == [3, 1, 2]
    assert s[2].images == [a, b]
    assert s[0].answer == "B" and s[0].question.startswith("q art_1? Select")
    reasons = sorted(k.reason for k in conv.skipped)
    assert len(reasons) == 2
    assert "option letters" in reasons[0] and "no image" in reasons[1]
    # art_1 right, art_2 answered with a letter that is not an option, cnt_1 right
    res = bench.score(s, {s[0].id: "B", s[1].id: "(C)", s[2].id: "A. yes"})
    m = res.metrics
    assert m["Art_Style/accuracy"] == 0.5 and m["Counting/accuracy"] == 1.0
    assert m["overall/accuracy"] == 0.75  # mean over sub-tasks
    assert m["overall/micro_accuracy"] == pytest.approx(2 / 3)


def test_blink_wrong_columns_names_the_file(tmp_path):
    schema = pa.schema([("idx", pa.string()), ("question", pa.string())])
    write_parquet(tmp_path / "X" / "val-0.parquet", [{"idx": "1", "question": "q"}], schema)
    with pytest.raises(DataError, match=r"val-0.parquet: missing column"):
        load_benchmark("blink", tmp_path)


def test_muirbench(tmp_path):
    schema = pa.schema(
        [
            ("idx", pa.string()),
            ("task", pa.string()),
            ("image_relation", pa.string()),
            ("image_type", pa.string()),
            ("question", pa.string()),
            ("options", pa.list_(pa.string())),
            ("answer", pa.string()),
            ("image_list", pa.list_(IMAGE_STRUCT)),
        ]
    )
    imgs = [hf_image(png()), hf_image(png(color="blue"))]
    rows = [
        {
            "idx": "1",
            "task": "Counting",
            "image_relation": "r",
            "image_type": "t",
            "question": "<image><image> How many?",
            "options": ["1", "2", "3"],
            "answer": "C",
            "image_list": imgs,
        },
        {
            "idx": "2",
            "task": "Ordering",
            "image_relation": "r",
            "image_type": "t",
            "question": "Order?",
            "options": ["x", "y"],
            "answer": "A",
            "image_list": imgs,
        },
        {
            "idx": "3",
            "task": "Ordering",
            "image_relation": "r",
            "image_type": "t",
            "question": "Order?",
            "options": ["x", "y"],
            "answer": "B",
            "image_list": imgs,
        },
        {
            "idx": "4",
            "task": "Ordering",
            "image_relation": "r",
            "image_type": "t",
            "question": "bad image",
            "options": ["x", "y"],
            "answer": "B",
            "image_list": [{"bytes": b"not an image", "path": None}],
        },
    ]
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", rows, schema)
    bench, conv = load_benchmark("muirbench", tmp_path)
    s = conv.samples
    assert len(s) == 3 and len(conv.skipped) == 1
    assert "not a readable image" in conv.skipped[0].reason
    assert "C. 3" in s[0].question and s[0].choices == ["1", "2", "3"]
    # Counting right, Ordering 1 of 2 (the second answered by option text "x", which is A)
    m = bench.score(s, {s[0].id: "C", s[1].id: "x", s[2].id: "x"}).metrics
    assert m["overall/accuracy"] == pytest.approx(2 / 3)  # micro: 2 of 3 items
    assert m["Ordering/accuracy"] == 0.5


def test_mmiu_accuracy_averaged_per_task(tmp_path):
    for name in ("a.png", "b.png"):
        save_png(tmp_path / "Low-level" / name)
    opts = "A: left\nB: right\nC: up"
    items = [
        {
            "task": "ego",
            "options": opts,
            "question": "Where?",
            "context": "Look.",
            "input_image_path": ["./Low-level/a.png", "./Low-level/b.png"],
            "output": "B",
        },
        {
            "task": "ego",
            "options": opts,
            "question": "Where?",
            "context": "",
            "input_image_path": ["./Low-level/a.png"],
            "output": "A",
        },
        {
            "task": "pose",
            "options": opts,
            "question": "Pose?",
            "context": "",
            "input_image_path": ["./Low-level/b.png"],
            "output": "C",
        },
        {
            "task": "pose",
            "options": opts,
            "question": "Pose?",
            "context": "",
            "input_image_path": ["./Low-level/zzz.png"],
            "output": "C",
        },  # missing file
        {
            "task": "pose",
            "options": "left or right",
            "question": "?",
            "context": "",
            "input_image_path": ["./Low-level/b.png"],
            "output": "A",
        },  # unlettered options
    ]
    write_json(tmp_path / "all.json", items)
    bench, conv = load_benchmark("mmiu", tmp_path)
    s = conv.samples
    assert len(s) == 3 and len(conv.skipped) == 2
    assert s[0].choices == ["left", "right", "up"]
    # ego: 1 of 2 right -> 0.5; pose: 1 of 1 -> 1.0; mean over tasks 0.75 (micro 2/3)
    m = bench.score(s, {s[0].id: "B", s[1].id: "C", s[2].id: "(C)"}).metrics
    assert m["overall/accuracy"] == 0.75
    assert m["overall/micro_accuracy"] == pytest.approx(2 / 3)


def test_hr_bench_cycle_accuracy(tmp_path):
    header = "index\tquestion\tanswer\tcategory\tA\tB\tC\tD\tcycle_category\timage\n"
    rows = [
        ("0", "Color of the car?", "A", "single", "red", "blue", "green", "white", "c0", b64png()),
        ("1", "Color of the car?", "B", "single", "blue", "red", "green", "white", "c1", b64png()),
        ("2", "Which is left?", "C", "cross", "a", "b", "c", "d", "c1", b64png("blue")),
        ("3", "broken", "A", "cross", "a", "b", "c", "d", "c1", "!!notbase64!!"),
        ("4", "bad letter", "E", "cross", "a", "b", "c", "d", "c1", b64png()),
    ]
    (tmp_path / "hr_bench_4k.tsv").write_text(header + "".join("\t".join(r) + "\n" for r in rows))
    bench, conv = load_benchmark("hr-bench", tmp_path)
    s = conv.samples
    assert len(s) == 3 and len(conv.skipped) == 2
    assert s[0].task == "hr_bench_4k" and s[0].meta["cycle"] == "c0"
    # c0: 1/1 right; c1: 1/2 right -> (1 + 0.5) / 2 = 0.75 (micro 2/3)
    m = bench.score(s, {s[0].id: "A", s[1].id: "B", s[2].id: "A"}).metrics
    assert m["overall/accuracy"] == pytest.approx(0.75)
    assert m["overall/micro_accuracy"] == pytest.approx(2 / 3)
    assert m["hr_bench_4k_cross/accuracy"] == 0.0
    assert m["hr_bench_4k_single/accuracy"] == 1.0  # c0: 1/1, c1: 1/1


def test_hr_bench_missing_columns(tmp_path):
    (tmp_path / "hr.tsv").write_text("index\tquestion\n0\tq\n")
    with pytest.raises(DataError, match=r"hr.tsv: missing column"):
        load_benchmark("hr-bench", tmp_path)


def test_vstar(tmp_path):
    save_png(tmp_path / "direct_attributes" / "sa_1.jpg")
    save_png(tmp_path / "relative_position" / "sa_2.jpg")
    lines = [
        {
            "question_id": 0,
            "image": "direct_attributes/sa_1.jpg",
            "category": "direct_attributes",
            "text": "What is the color of the cup?\n(A) red\n(B) blue\nAnswer with the option's "
            "letter from the given choices directly.",
            "label": "A",
        },
        {
            "question_id": 1,
            "image": "relative_position/sa_2.jpg",
            "text": "Is the dog left or right of the cat? (A) left (B) right",
            "label": 1,
        },
        {
            "question_id": 2,
            "image": "direct_attributes/none.jpg",
            "category": "direct_attributes",
            "text": "(A) x (B) y",
            "label": "A",
        },
    ]
    write_jsonl(tmp_path / "test_questions.jsonl", lines)
    bench, conv = load_benchmark("vstar", tmp_path)
    s = conv.samples
    assert [x.answer for x in s] == ["A", "B"]
    assert s[0].choices == ["red", "blue"] and s[1].choices == ["left", "right"]
    assert s[1].task == "relative_position"
    assert len(conv.skipped) == 1 and "not found" in conv.skipped[0].reason
    m = bench.score(s, {s[0].id: "red", s[1].id: "A"}).metrics
    assert m["overall/accuracy"] == 0.5 and m["direct_attributes/accuracy"] == 1.0


def test_registry_lists_every_adapter():
    assert set(BENCHMARKS) == {
        "mig-bench",
        "mc-bench",
        "blink",
        "mmiu",
        "muirbench",
        "mat-search",
        "mat-coding",
        "hr-bench",
        "vstar",
        "mmsi-bench",
        "treebench",
        "visualprobe",
    }
    for name in BENCHMARKS:
        text = get_benchmark(name).describe()
        assert "expects:" in text and name in text
    assert get_benchmark("MIG_Bench").name == "mig-bench"
    with pytest.raises(ConfigError, match="known"):
        get_benchmark("mmmu")


MUIR_SCHEMA = pa.schema(
    [
        ("idx", pa.string()),
        ("task", pa.string()),
        ("image_relation", pa.string()),
        ("image_type", pa.string()),
        ("question", pa.string()),
        ("options", pa.list_(pa.string())),
        ("answer", pa.string()),
        ("image_list", pa.list_(IMAGE_STRUCT)),
    ]
)


def _muir_row(idx, question, options, answer, colors):
    return {
        "idx": idx,
        "task": "Visual Retrieval",
        "image_relation": "Similar",
        "image_type": "Photo",
        "question": question,
        "options": options,
        "answer": answer,
        "image_list": [hf_image(png(color=c)) for c in colors],
    }


def test_muirbench_markers_interleave_the_images_in_the_agent_prompt(tmp_path):
    """The release's `<image>` markers (in the question and in the options) each take the
    next image, in order; the rollout places them structurally and never crashes, also
    when markers and images do not pair up."""
    from miva.agent.engines.scripted import ScriptedEngine
    from miva.agent.model import load_processor
    from miva.agent.rollout import Agent
    from miva.config import load_config

    rows = [
        _muir_row(
            "1",
            "Which candidate shows the same place as <image>?",
            ["<image>", "<image>", "<image>"],
            "B",
            ["red", "green", "blue", "yellow"],
        ),
        _muir_row("2", "<image> or <image> <image>: which?", ["a", "b"], "A", ["red", "blue"]),
    ]
    write_parquet(tmp_path / "data" / "test-00000-of-00001.parquet", rows, MUIR_SCHEMA)
    _bench, conv = load_benchmark("muirbench", tmp_path)
    first, mismatched = conv.samples
    assert first.meta["question_segments"][0] == "Which candidate shows the same place as "
    assert first.question.startswith("Which candidate shows the same place as [Image 1]?")
    assert "A. [Image 2]\nB. [Image 3]\nC. [Image 4]" in first.question
    assert mismatched.meta["marker_mismatch"] == {"markers": 3, "images": 2}

    cfg = load_config("tiny-cpu")
    processor = load_processor("tiny-random")
    engine = ScriptedEngine(processor, lambda key, turn: "<answer>B</answer>")
    trajs = Agent(processor, cfg.agent, {}, engine).rollout(conv.samples)
    user = next(t.text for t in trajs[0].turns if t.role == "user")
    assert user.startswith(
        "Which candidate shows the same place as Image 1: <image>?\nA. Image 2: <image>"
    )
    # the images in the order the markers name them
    colors = [img.getpixel((0, 0)) for img in trajs[0].images]
    assert colors == [(255, 0, 0), (0, 128, 0), (0, 0, 255), (255, 255, 0)]
    assert [t.status for t in trajs] == ["ok", "ok"]  # placeholders == features (checked)
    second_user = next(t.text for t in trajs[1].turns if t.role == "user")
    assert second_user.startswith("Image 1: <image> or Image 2: <image> [image]: which?")


def test_hr_bench_release_reports_single_and_cross_instance_per_file(tmp_path):
    """The release (DreamMr/HR-Bench): hr_bench_4k.tsv and hr_bench_8k.tsv side by side;
    FSP (single) and FCP (cross) accuracy of each file next to the file's own."""
    header = "index\tquestion\tanswer\tcategory\tA\tB\tC\tD\tcycle_category\timage\n"

    def row(i, category, cycle, answer="A"):
        question = f"question {i} of {res}?"  # items differ, as in the release
        fields = (str(i), question, answer, category, "a", "b", "c", "d", cycle, b64png())
        return "\t".join(fields) + "\n"

    for res in ("4k", "8k"):
        rows = [
            row(0, "single", "c0"),
            row(1, "single", "c1"),
            row(2, "cross", "c0"),
            row(3, "cross", "c1"),
        ]
        (tmp_path / f"hr_bench_{res}.tsv").write_text(header + "".join(rows))
    bench, conv = load_benchmark("hr-bench", tmp_path)
    assert len(conv.samples) == 8 and not conv.skipped
    by_key = {(s.task, s.meta["category"], s.meta["cycle"]): s.id for s in conv.samples}
    preds = {sid: "B" for sid in by_key.values()}  # wrong everywhere, then:
    preds[by_key[("hr_bench_4k", "single", "c0")]] = "A"
    preds[by_key[("hr_bench_4k", "single", "c1")]] = "A"
    preds[by_key[("hr_bench_4k", "cross", "c0")]] = "A"
    preds[by_key[("hr_bench_8k", "cross", "c1")]] = "A"
    m = bench.score(conv.samples, preds).metrics
    assert m["hr_bench_4k_single/accuracy"] == 1.0
    assert m["hr_bench_4k_cross/accuracy"] == 0.5  # c0 right, c1 wrong
    assert m["hr_bench_4k/accuracy"] == 0.75  # c0: 2/2, c1: 1/2
    assert m["hr_bench_8k_single/accuracy"] == 0.0 and m["hr_bench_8k_cross/accuracy"] == 0.5
    assert m["hr_bench_8k/accuracy"] == 0.25
    assert m["overall/accuracy"] == 0.5  # mean of the two files

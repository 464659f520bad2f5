import io

import pytest
from PIL import Image

from miva.data.io import read_info, read_samples, write_dataset
from miva.data.schema import Evidence, Sample
from miva.errors import DataError


def _png(color: str, size: int = 32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def _samples() -> list[Sample]:
    return [
        Sample(
            task="selection",
            images=[_png("red"), _png("blue")],
            question="Which image is red?",
            answer_type="image_index",
            answer=1,
            split="train",
            evidence=[Evidence(1, (0.0, 0.0, 32.0, 32.0))],
        ),
        Sample(
            task="grounding",
            images=[_png("green"), _png("white")],
            question="Box of the green square in image 1?",
            answer_type="bbox",
            answer=[1.0, 2.0, 30.0, 31.5],
            split="test",
            meta={"k": 1},
        ),
        Sample(
            task="attribute",
            images=[_png("black"), _png("white")],
            question="What colour is image 1?",
            answer_type="choice",
            answer="B",
            choices=["white", "black"],
            split="test",
        ),
        Sample(
            task="group_grounding",
            images=[_png("black"), _png("gray")],
            question="Where is the gray square?",
            answer_type="image_bbox",
            answer={"image": 2, "bbox": [0, 0, 5, 5]},
            split="val",
        ),
    ]


def test_round_trip_keeps_every_field(tmp_path):
    samples = _samples()
    info = write_dataset(samples, tmp_path / "ds", generator={"seed": 0})
    assert info.counts == {
        "test": {"attribute": 1, "grounding": 1},
        "train": {"selection": 1},
        "val": {"group_grounding": 1},
    }
    back = {s.id: s for s in read_samples(tmp_path / "ds")}
    for s in samples:
        r = back[s.id]
        assert (r.task, r.question, r.answer_type, r.answer, r.choices, r.split, r.meta) == (
            s.task,
            s.question,
            s.answer_type,
            s.answer,
            s.choices,
            s.split,
            s.meta,
        )
        assert r.images == s.images
        assert r.evidence == s.evidence
    assert read_info(tmp_path / "ds").digest == info.digest


def test_digest_is_order_independent_and_content_sensitive(tmp_path):
    a = write_dataset(_samples(), tmp_path / "a")
    b = write_dataset(list(reversed(_samples())), tmp_path / "b")
    assert a.digest == b.digest
    changed = _samples()
    changed[0] = Sample(**{**changed[0].__dict__, "question": "Which image is blue?", "id": ""})
    assert write_dataset(changed, tmp_path / "c").digest != a.digest


def test_loads_with_hf_datasets(tmp_path):
    from datasets import load_dataset

    write_dataset(_samples(), tmp_path / "ds")
    ds = load_dataset("parquet", data_files={"test": str(tmp_path / "ds/data/test-*.parquet")})[
        "test"
    ]
    assert len(ds) == 2
    assert isinstance(ds[0]["images"][0], Image.Image)


def test_missing_folder_and_corrupt_shard_name_the_file(tmp_path):
    with pytest.raises(DataError, match="dataset.json"):
        read_info(tmp_path)
    write_dataset(_samples(), tmp_path / "ds")
    shard = next((tmp_path / "ds/data").glob("test-*.parquet"))
    shard.write_bytes(b"not parquet")
    with pytest.raises(DataError, match=shard.name):
        read_samples(tmp_path / "ds", "test")

"""Hand-made datasets in the sample contract, and tools to plant defects in their shards."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from miva.data.io import write_dataset
from miva.data.schema import Evidence, Sample

SIZE = 32


def png(i: int, k: int, size: int = SIZE) -> bytes:
    """A solid image whose colour is unique for (i, k): distinct pixel hashes per sample."""
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (i % 256, (i // 256) % 256, 40 * k + 1)).save(buf, format="PNG")
    return buf.getvalue()


def sample(i: int, split: str = "train", kind: str | None = None) -> Sample:
    kinds = ["choice", "number", "text", "image_index", "bbox", "image_bbox"]
    kind = kind or kinds[i % len(kinds)]
    images = [png(i, 1), png(i, 2)]
    q = f"Question {i} of split {split}: what does the {kind} answer say about these images?"
    common: dict[str, Any] = {"images": images, "question": q, "split": split, "meta": {"n": i}}
    if kind == "choice":
        return Sample(
            task="attribute",
            answer_type="choice",
            answer="ABCD"[i % 4],
            choices=["red", "blue", "green", "white"],
            **common,
        )
    if kind == "number":
        return Sample(task="counting", answer_type="number", answer=i % 5, **common)
    if kind == "text":
        return Sample(task="attribute", answer_type="text", answer="red", **common)
    if kind == "image_index":
        return Sample(task="selection", answer_type="image_index", answer=1 + i % 2, **common)
    if kind == "bbox":
        return Sample(
            task="grounding",
            answer_type="bbox",
            answer=[2.0, 2.0, 20.0, 20.0],
            evidence=[Evidence(1, (2.0, 2.0, 20.0, 20.0))],
            **common,
        )
    return Sample(
        task="group_grounding",
        answer_type="image_bbox",
        answer={"image": 2, "bbox": [1.0, 1.0, 10.0, 10.0]},
        evidence=[Evidence(2, (1.0, 1.0, 10.0, 10.0))],
        **common,
    )


def make_dataset(folder: Path, n_train: int = 30, n_val: int = 6, n_test: int = 6) -> list[Sample]:
    samples = [sample(i, "train") for i in range(n_train)]
    samples += [sample(1000 + i, "val") for i in range(n_val)]
    samples += [sample(2000 + i, "test") for i in range(n_test)]
    write_dataset(samples, folder, generator={"test": True}, name="planted")
    return samples


def edit_rows(folder: Path, shard: str, fn: Callable[[list[dict[str, Any]]], None]) -> None:
    """Rewrite one shard after `fn` edits its rows (plain dicts) in place."""
    path = folder / "data" / shard
    table = pq.read_table(path)
    rows = table.to_pylist()
    fn(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


def set_column(folder: Path, shard: str, name: str, values: pa.Array) -> None:
    """Replace a column with an array of another type (a wrong-column-type defect)."""
    path = folder / "data" / shard
    table = pq.read_table(path)
    i = table.schema.get_field_index(name)
    pq.write_table(table.set_column(i, name, values), path)


def answer(v: Any) -> str:
    return json.dumps(v)

"""Dataset folders: parquet shards per split with embedded images, `dataset.json`, a card.

Layout (DESIGN.md): `data/{split}-{shard:05d}.parquet`, `dataset.json`, `README.md`.
The shards carry the Hugging Face `datasets` feature metadata, so
`datasets.load_dataset("parquet", data_dir=folder + "/data")` decodes `images` as PIL images.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from miva import storage
from miva.data.schema import SCHEMA_VERSION, Sample
from miva.errors import DataError

ROWS_PER_SHARD = 512
DATA_DIR = "data"
MANIFEST = "dataset.json"


def hf_features():
    """The `datasets` Features of a shard (imported lazily: `datasets` is slow to import)."""
    from datasets import Features, Image, List, Value

    return Features(
        {
            "id": Value("string"),
            "task": Value("string"),
            "source": Value("string"),
            "images": List(Image()),
            "question": Value("string"),
            "answer_type": Value("string"),
            "answer": Value("string"),
            "choices": List(Value("string")),
            "evidence": List({"image": Value("int32"), "bbox": List(Value("float32"))}),
            "split": Value("string"),
            "meta": Value("string"),
        }
    )


def arrow_schema() -> pa.Schema:
    features = hf_features()
    schema = features.arrow_schema
    return schema


@dataclass
class DatasetInfo:
    """Contents of `dataset.json`."""

    schema_version: int
    counts: dict[str, dict[str, int]]  # split -> task -> count
    digest: str
    generator: dict[str, Any]
    name: str = "miva-dataset"

    @property
    def total(self) -> int:
        return sum(sum(t.values()) for t in self.counts.values())

    def to_json(self) -> str:
        return json.dumps(
            {
                "schema_version": self.schema_version,
                "name": self.name,
                "total": self.total,
                "counts": self.counts,
                "digest": self.digest,
                "generator": self.generator,
            },
            indent=2,
            sort_keys=True,
        )


def dataset_digest(ids_by_split: dict[str, list[str]]) -> str:
    """Content digest: sample ids (themselves content hashes) per split, order-independent."""
    h = hashlib.sha256()
    for split in sorted(ids_by_split):
        h.update(split.encode())
        for sid in sorted(ids_by_split[split]):
            h.update(sid.encode())
    return h.hexdigest()[:32]


def write_dataset(
    samples: Iterable[Sample],
    dest: str | Path,
    generator: dict[str, Any] | None = None,
    name: str = "miva-dataset",
    rows_per_shard: int = ROWS_PER_SHARD,
) -> DatasetInfo:
    """Write samples into a dataset folder (local path or s3:// URI); returns its info.

    An existing folder is replaced, so re-running a stage is safe.
    """
    with storage.local_dir(dest, prefix="miva-dataset-") as folder:
        data_dir = folder / DATA_DIR
        if folder.exists():
            shutil.rmtree(folder)
        data_dir.mkdir(parents=True)
        schema = arrow_schema()
        buffers: dict[str, list[dict[str, Any]]] = {}
        shard_index: Counter[str] = Counter()
        counts: dict[str, Counter[str]] = {}
        ids: dict[str, list[str]] = {}

        def flush(split: str) -> None:
            rows = buffers.pop(split, [])
            if not rows:
                return
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, data_dir / f"{split}-{shard_index[split]:05d}.parquet")
            shard_index[split] += 1

        for sample in samples:
            buffers.setdefault(sample.split, []).append(sample.to_row())
            counts.setdefault(sample.split, Counter())[sample.task] += 1
            ids.setdefault(sample.split, []).append(sample.id)
            if len(buffers[sample.split]) >= rows_per_shard:
                flush(sample.split)
        for split in list(buffers):
            flush(split)

        info = DatasetInfo(
            schema_version=SCHEMA_VERSION,
            counts={s: dict(sorted(c.items())) for s, c in sorted(counts.items())},
            digest=dataset_digest(ids),
            generator=generator or {},
            name=name,
        )
        (folder / MANIFEST).write_text(info.to_json())
        (folder / "README.md").write_text(dataset_card(info))
    return info


def dataset_card(info: DatasetInfo) -> str:
    tasks = sorted({t for c in info.counts.values() for t in c})
    splits = sorted(info.counts)
    header = "| task | " + " | ".join(splits) + " |\n|---|" + "---|" * len(splits) + "\n"
    rows = "".join(
        f"| {t} | " + " | ".join(str(info.counts[s].get(t, 0)) for s in splits) + " |\n"
        for t in tasks
    )
    return (
        f"# {info.name}\n\n"
        f"A MIVA multi-image QA dataset (schema version {info.schema_version}), {info.total} samples.\n\n"
        f"- digest: `{info.digest}`\n"
        f'- load: `datasets.load_dataset("parquet", data_dir="<this folder>/data")`\n'
        "- images are embedded; boxes are pixel `[x1, y1, x2, y2]`; image numbers are 1-based\n\n"
        f"## Counts\n\n{header}{rows}\n"
        f"## Generator\n\n```json\n{json.dumps(info.generator, indent=2, sort_keys=True, default=str)}\n```\n"
    )


def read_info(source: str | Path) -> DatasetInfo:
    folder = storage.localize(source)
    path = folder / MANIFEST
    if not path.exists():
        raise DataError(f"{path}: missing {MANIFEST}; is {source} a MIVA dataset folder?")
    try:
        raw = json.loads(path.read_text())
        return DatasetInfo(
            schema_version=int(raw["schema_version"]),
            counts=raw["counts"],
            digest=raw["digest"],
            generator=raw.get("generator", {}),
            name=raw.get("name", "miva-dataset"),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{path}: not a valid {MANIFEST} ({exc})") from exc


def shard_paths(source: str | Path, split: str | None = None) -> list[Path]:
    folder = storage.localize(source)
    data_dir = folder / DATA_DIR
    if not data_dir.is_dir():
        raise DataError(
            f"{data_dir}: no such folder; a dataset keeps its parquet shards under {DATA_DIR}/"
        )
    pattern = f"{split}-*.parquet" if split else "*.parquet"
    return sorted(data_dir.glob(pattern))


def read_table(path: Path) -> pa.Table:
    """Read one shard, turning pyarrow's errors into a message that names the file."""
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read parquet shard ({exc})") from exc


def iter_samples(source: str | Path, split: str | None = None) -> Iterator[Sample]:
    """Samples of one split (or all), in shard order."""
    for path in shard_paths(source, split):
        table = read_table(path)
        for i, row in enumerate(table.to_pylist()):
            try:
                yield Sample.from_row(row)
            except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
                raise DataError(
                    f"{path}, row {i}: does not follow the sample contract ({exc!r})"
                ) from exc


def read_samples(
    source: str | Path, split: str | None = None, limit: int | None = None
) -> list[Sample]:
    out: list[Sample] = []
    for sample in iter_samples(source, split):
        out.append(sample)
        if limit is not None and len(out) >= limit:
            break
    return out

"""Reading the Hugging Face parquet files some benchmarks ship (BLINK, MuirBench)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from miva.errors import DataError


def find_parquet(folder: Path, pattern: str, what: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder; expected {what}")
    files = sorted(folder.glob(pattern))
    if not files:
        raise DataError(f"{folder}: no files matching {pattern}; expected {what}")
    return files


def iter_rows(path: Path, required: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of one parquet file; a file without the expected columns is a DataError."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read parquet ({exc})") from exc
    missing = [c for c in required if c not in table.column_names]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {missing}; expected columns {required} "
            f"(found {table.column_names})"
        )
    rows = (row for batch in table.to_batches(max_chunksize=64) for row in batch.to_pylist())
    yield from enumerate(rows)

"""Robust reading of a dataset folder: every shard, every row, whatever state it is in.

`miva.data.io.iter_samples` stops at the first bad row; the gate must not. Here a shard
that cannot be read at all becomes a `Shard` with `error` set (its rows, when the footer
still tells how many there were, are counted as lost on disk), and a column whose Arrow
type differs from the contract is recorded in `bad_columns` so that the rows of that
shard are quarantined with the reason instead of crashing a later step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from miva.data.io import DATA_DIR

# Columns a row cannot do without; the others may be absent (Sample.from_row has defaults).
REQUIRED_COLUMNS = ("id", "task", "images", "question", "answer_type", "answer", "split")
OPTIONAL_COLUMNS = ("source", "choices", "evidence", "meta")
CONTRACT_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


@dataclass
class Shard:
    """One parquet file of a dataset, read as far as it can be."""

    path: Path
    name: str  # path relative to the dataset folder, e.g. data/train-00000.parquet
    table: pa.Table | None = None
    error: str | None = None
    rows_on_disk: int | None = None  # from the footer when the data itself is unreadable
    bad_columns: dict[str, str] = field(default_factory=dict)  # column -> why
    extra_columns: list[str] = field(default_factory=list)

    num_rows: int = 0  # rows read (kept after `table` is dropped)

    @property
    def lost_rows(self) -> int | None:
        """Rows on disk that could not be read (None when not even the footer is readable)."""
        if self.error is None:
            return 0
        if self.rows_on_disk is None:
            return None
        return max(self.rows_on_disk - self.num_rows, 0)

    def rows(self) -> Iterator[dict[str, Any]]:
        """Rows as plain Python dicts; missing contract columns read as None."""
        if self.table is None:
            return
        names = set(self.table.column_names)
        columns = {c: self.table.column(c).to_pylist() for c in CONTRACT_COLUMNS if c in names}
        for i in range(self.table.num_rows):
            yield {c: (columns[c][i] if c in columns else None) for c in CONTRACT_COLUMNS}


def shard_files(folder: Path) -> list[Path]:
    return sorted((folder / DATA_DIR).glob("*.parquet"))


def split_of_file(path: Path) -> str:
    """`train-00003.parquet` -> `train` (the split a shard claims by its name)."""
    return path.name.split("-", 1)[0]


def read_shard(path: Path, folder: Path) -> Shard:
    """Read one shard; never raises for a damaged file (the error is kept on the Shard)."""
    shard = Shard(path=path, name=str(path.relative_to(folder)))
    try:
        shard.table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        shard.error = f"cannot read parquet ({type(exc).__name__}: {exc})"
        _salvage(shard)
    if shard.table is not None:
        shard.num_rows = shard.table.num_rows
        check_columns(shard)
    return shard


def _salvage(shard: Shard) -> None:
    """After a failed full read: learn the row count from the footer, keep readable row groups."""
    try:
        pf = pq.ParquetFile(shard.path)
    except (pa.ArrowException, OSError, ValueError):
        return  # not even the footer: rows on disk unknown
    shard.rows_on_disk = pf.metadata.num_rows
    groups = []
    for g in range(pf.num_row_groups):
        try:
            groups.append(pf.read_row_group(g))
        except (pa.ArrowException, OSError, ValueError):
            continue
    if groups:
        try:
            shard.table = pa.concat_tables(groups)
        except (pa.ArrowException, ValueError):
            shard.table = None


def check_columns(shard: Shard) -> None:
    """Record contract columns that are missing or of the wrong Arrow type."""
    from miva.data.io import arrow_schema

    assert shard.table is not None
    expected = arrow_schema()
    schema = shard.table.schema
    for name in CONTRACT_COLUMNS:
        if name not in schema.names:
            if name in REQUIRED_COLUMNS:
                shard.bad_columns[name] = "column is missing"
            continue
        actual = schema.field(name).type
        if not compatible(actual, expected.field(name).type, column=name):
            shard.bad_columns[name] = (
                f"column has type {actual}, expected {expected.field(name).type}"
            )
    shard.extra_columns = [n for n in schema.names if n not in CONTRACT_COLUMNS]


_STRINGS = (pa.string(), pa.large_string(), pa.string_view())
_BINARIES = (pa.binary(), pa.large_binary(), pa.binary_view())


def compatible(actual: pa.DataType, expected: pa.DataType, column: str = "") -> bool:
    """Whether values of Arrow type `actual` can stand for the contract type `expected`.

    Equivalent encodings are accepted (large/view strings, any integer or float width,
    an all-null column); `images` may also be a plain list of binary blobs.
    """
    if actual == expected or pa.types.is_null(actual):
        return True
    if expected in _STRINGS:
        return actual in _STRINGS
    if expected in _BINARIES:
        return actual in _BINARIES
    if pa.types.is_integer(expected):
        return pa.types.is_integer(actual)
    if pa.types.is_floating(expected):
        return pa.types.is_floating(actual) or pa.types.is_integer(actual)
    if _is_list(expected):
        if not _is_list(actual):
            return False
        if column == "images" and actual.value_type in _BINARIES:
            return True
        return compatible(actual.value_type, expected.value_type)
    if pa.types.is_struct(expected):
        if not pa.types.is_struct(actual):
            return False
        fields = {actual.field(i).name: actual.field(i).type for i in range(actual.num_fields)}
        for i in range(expected.num_fields):
            f = expected.field(i)
            if f.name == "path":  # datasets.Image's optional path
                continue
            if f.name not in fields or not compatible(fields[f.name], f.type):
                return False
        return True
    return False


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t)

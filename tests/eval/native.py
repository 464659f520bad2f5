"""Builders of small benchmark folders in their native formats, with generated images."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

COLORS = ["red", "green", "blue", "yellow", "white", "black", "orange", "purple"]


def png(width: int = 32, height: int = 32, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: Path, width: int = 32, height: int = 32, color: str = "red") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png(width, height, color))
    return str(path)


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False))
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return path


def hf_image(blob: bytes | None) -> dict[str, Any] | None:
    return None if blob is None else {"bytes": blob, "path": None}


def write_parquet(path: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


IMAGE_STRUCT = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def b64png(color: str = "red") -> str:
    return base64.b64encode(png(40, 30, color)).decode()

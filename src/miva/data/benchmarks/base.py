"""What every benchmark adapter provides, and the records they exchange.

An adapter does two separate things, so that scoring never needs a model:

- `convert(folder)` reads the benchmark's native files and returns `Sample`s in the
  MIVA contract (pixel xyxy boxes, 1-based image numbers) plus the items it had to skip,
  each with its reason. Scoring metadata (native id, cycle, references, ...) goes into
  `Sample.meta`.
- `score(samples, predictions)` turns one prediction per sample (the answer in dataset
  conventions, or None when the model gave none) into the benchmark's official metrics.

Reading the model's answer (`prediction_from_model`) needs the model's coordinate
convention; the eval stage passes an `AnswerReader` built from the agent runtime, so the
adapters stay below the agent in the layers.

Metric names are relative (`<task>/<metric>`, `overall/<metric>`); the eval runner
prefixes them with `eval/<set>/`.
"""

from __future__ import annotations

import io
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from PIL import Image

from miva.data.schema import Sample
from miva.errors import DataError


class AnswerReader(Protocol):
    """Reads one trajectory's answer in dataset conventions (`miva.eval.runner.ModelAnswers`)."""

    def answer(self, text: str, sample: Sample) -> Any:
        """The typed answer of `sample.answer_type` (boxes in dataset pixels), or None."""

    def box(self, box: Sequence[float], image: int) -> list[float] | None:
        """A box in the model's coordinates on image `image` (1-based) -> dataset pixels;
        None when the model was not shown that image."""


@dataclass(frozen=True)
class Skipped:
    """An item of the native files that did not become a scored sample, and why."""

    item: str
    reason: str


@dataclass
class Converted:
    samples: list[Sample]
    skipped: list[Skipped] = field(default_factory=list)


@dataclass
class ItemScore:
    """The score of one item under the benchmark's rule.

    `score` is the value averaged into the headline (1/0 for accuracy, F1 for open text);
    `correct` is the binary verdict shown in galleries; `valid` is False when the
    prediction was missing or could not be read (it is then scored as wrong).
    """

    sample_id: str
    task: str
    score: float
    correct: bool
    valid: bool
    details: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    metrics: dict[str, float]
    items: list[ItemScore]
    skipped: list[Skipped] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The per-benchmark summary: headline metrics and every skipped item with its reason."""
        return {
            "metrics": self.metrics,
            "scored": len(self.items),
            "skipped": [asdict(s) for s in self.skipped],
        }


class Benchmark(ABC):
    """One public benchmark: native files in, samples out; predictions in, metrics out."""

    name: ClassVar[str]
    title: ClassVar[str]
    expects: ClassVar[str]  # the files on disk, for `miva bench list`
    metric: ClassVar[str]  # the headline metric name under overall/
    tools: ClassVar[tuple[str, ...]] = ()  # tools the benchmark is meant to be run with

    @abstractmethod
    def convert(self, folder: Path, limit: int | None = None) -> Converted:
        """Read the native files under `folder`."""

    @abstractmethod
    def score_item(self, sample: Sample, prediction: Any) -> ItemScore:
        """Score one prediction (dataset conventions; None = no answer)."""

    @abstractmethod
    def aggregate(
        self,
        samples: Sequence[Sample],
        items: Sequence[ItemScore],
        predictions: Mapping[str, Any],
    ) -> dict[str, float]:
        """Benchmark-level metrics from per-item scores (same order as `samples`); the raw
        `predictions` are there for metrics that rank detections (MC-Bench AP50)."""

    def score(
        self,
        samples: Sequence[Sample],
        predictions: Mapping[str, Any],
        skipped: Sequence[Skipped] = (),
    ) -> BenchResult:
        """Official metrics; a sample without a prediction is scored as wrong."""
        items = [self.score_item(s, predictions.get(s.id)) for s in samples]
        return BenchResult(
            metrics=self.aggregate(samples, items, predictions), items=items, skipped=list(skipped)
        )

    def prediction_from_model(
        self, text: str | None, sample: Sample, reader: AnswerReader
    ) -> str | None:
        """The model's answer text -> answer text in dataset conventions (boxes in dataset
        pixels), read by `reader`; None when it cannot be read."""
        from miva.data.schema import format_answer

        if text is None:
            return None
        typed = reader.answer(text, sample)
        if typed is None:
            return None
        return typed if isinstance(typed, str) else format_answer(sample.answer_type, typed)

    def test_sample(
        self, native_id: str, meta: Mapping[str, Any] | None = None, **fields: Any
    ) -> Sample:
        """A test-split `Sample` from this benchmark; `meta` gains `benchmark` and `native_id`."""
        return Sample(
            split="test",
            source=self.name,
            meta={"benchmark": self.name, "native_id": native_id, **(meta or {})},
            **fields,
        )

    def describe(self) -> str:
        return (
            f"{self.name}: {self.title}\n  expects: {self.expects}\n  metric: overall/{self.metric}"
        )


# ---------------------------------------------------------------------------- shared helpers

# What a malformed native item raises while it is turned into a Sample; it is then skipped.
ITEM_ERRORS: tuple[type[Exception], ...] = (KeyError, ValueError, TypeError, FileNotFoundError)


def convert_items(
    items: Iterable[tuple[Any, ...]],
    make: Callable[..., Sample],
    name: Callable[..., str],
    limit: int | None = None,
) -> Converted:
    """`make(*item)` for each item until `limit` samples; an item that raises one of
    `ITEM_ERRORS` becomes `Skipped(name(*item), reason)`. `items` is consumed lazily, so
    files after the limit are never read."""
    samples: list[Sample] = []
    skipped: list[Skipped] = []
    for item in items:
        try:
            samples.append(make(*item))
        except ITEM_ERRORS as exc:
            skipped.append(Skipped(name(*item), str(exc)))
        if limit is not None and len(samples) >= limit:
            break
    return Converted(samples, skipped)


def load_json(path: Path) -> Any:
    """Read a JSON (or JSON lines) file; a clear DataError names the file when it is not."""
    if not path.is_file():
        raise DataError(f"{path}: missing; expected this file in the benchmark folder")
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        try:
            return [json.loads(ln) for ln in lines]
        except json.JSONDecodeError:
            raise DataError(f"{path}: not valid JSON or JSON lines ({exc})") from exc


def with_id(entry: Any) -> str:
    """' (id 7)' for an item with an `id`, to name it in a skip reason; '' otherwise."""
    return f" (id {entry.get('id')})" if isinstance(entry, dict) else ""


def expect_list(data: Any, path: Path, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {what}, got {type(data).__name__}")
    return data


def read_image_file(folder: Path, rel: str) -> bytes:
    """Bytes of an image referenced by a relative path; FileNotFoundError/ValueError on trouble."""
    rel = str(rel)
    candidates = [folder / rel, folder / rel.removeprefix("./")]
    for path in candidates:
        if path.is_file():
            return check_image(path.read_bytes(), rel)
    raise FileNotFoundError(f"image file {rel} not found under {folder}")


def check_image(blob: bytes, what: str) -> bytes:
    try:
        with Image.open(io.BytesIO(blob)) as img:
            img.verify()
    except Exception as exc:  # PIL raises many types for a broken file
        raise ValueError(f"{what} is not a readable image ({exc.__class__.__name__})") from exc
    return blob


def image_size(blob: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(blob)) as img:
        return img.size


def image_bytes(value: Any, what: str) -> bytes:
    """An image as shipped in a parquet/HF column: bytes, {"bytes": ...}, base64 text or PIL."""
    import base64
    import binascii

    if isinstance(value, dict):
        value = value.get("bytes")
    if isinstance(value, bytes | bytearray):
        return check_image(bytes(value), what)
    if isinstance(value, str):
        try:
            return check_image(base64.b64decode(value, validate=False), what)
        except binascii.Error as exc:
            raise ValueError(f"{what} is not base64 image data") from exc
    if isinstance(value, Image.Image):
        buf = io.BytesIO()
        value.convert("RGB").save(buf, format="PNG")
        return buf.getvalue()
    raise ValueError(f"{what} is empty or not an image ({type(value).__name__})")


def require(entry: Any, keys: Sequence[str], what: str = "entry") -> None:
    """TypeError unless `entry` is a JSON object; KeyError naming the keys missing or null."""
    if not isinstance(entry, dict):
        raise TypeError(f"{what} is a {type(entry).__name__}, not an object")
    missing = [k for k in keys if k not in entry or entry[k] is None]
    if missing:
        raise KeyError(f"missing field(s) {missing}")


def letter_options(options: Sequence[str]) -> str:
    """'A. cat\\nB. dog' for a list of option texts."""
    return "\n".join(f"{chr(65 + i)}. {o}" for i, o in enumerate(options))


def task_slug(label: Any) -> str:
    """A native category as a metric-name segment: lowercase words joined by '_'
    ('Positional Relationship (Cam.–Obj.)' -> 'positional_relationship_cam_obj'), so a
    category never adds a '/' level to `eval/<set>/<task>/<metric>`.

    >>> task_slug("Perception/Physical State")
    'perception_physical_state'
    """
    import re

    words = re.findall(r"[a-z0-9]+", str(label).lower())
    if not words:
        raise ValueError(f"category {label!r} has no letters or digits")
    return "_".join(words)

"""The sample contract shared by every stage (see DESIGN.md, "Contracts").

Conventions fixed here, used everywhere:
- Image numbers are **1-based** wherever they appear in data or text: `evidence[].image`,
  an `image_index` answer, the `image` of an `image_bbox` answer, tool arguments. Code
  indexes the list with `sample.image(k)`, never with `images[k]` directly.
- Boxes are `[x1, y1, x2, y2]` in **pixels of the original image** in the dataset.
  Conversion to a model family's convention happens only in `miva.agent.coords`.
- `answer` holds a typed Python value (str for choice/text, int or float for number,
  int for image_index, list[float] for bbox, {"image": int, "bbox": [...]} for
  image_bbox). In parquet it is stored as JSON text so one column serves every type.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

from miva.scoring import CHOICE_LETTERS as CHOICE_LETTERS  # one definition, shared with scoring

SCHEMA_VERSION = 1

AnswerType = Literal["choice", "number", "text", "image_index", "bbox", "image_bbox"]
ANSWER_TYPES: tuple[str, ...] = ("choice", "number", "text", "image_index", "bbox", "image_bbox")
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class Evidence:
    """Where the answer is visible: image number (1-based) and a pixel xyxy box."""

    image: int
    bbox: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"image": int(self.image), "bbox": [float(v) for v in self.bbox]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Evidence:
        return cls(image=int(d["image"]), bbox=tuple(float(v) for v in d["bbox"]))  # type: ignore[arg-type]


@dataclass
class Sample:
    """One multi-image question with a verifiable answer.

    `images` hold encoded image files (PNG or JPEG bytes) so that a round trip through
    parquet is exact and hashing is cheap; decode with `image(k)`.
    """

    task: str
    images: list[bytes]
    question: str
    answer_type: str
    answer: Any
    choices: list[str] | None = None
    evidence: list[Evidence] = field(default_factory=list)
    split: str = "train"
    source: str = "synth"
    meta: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = self.content_id()

    def image(self, k: int) -> Image.Image:
        """Decode image number `k` (1-based)."""
        if not 1 <= k <= len(self.images):
            raise IndexError(
                f"image {k} does not exist; sample {self.id} has {len(self.images)} images (1-based)"
            )
        img = Image.open(io.BytesIO(self.images[k - 1]))
        img.load()
        return img.convert("RGB") if img.mode != "RGB" else img

    def pil_images(self) -> list[Image.Image]:
        return [self.image(k) for k in range(1, len(self.images) + 1)]

    def content_id(self) -> str:
        h = hashlib.sha256()
        for blob in self.images:
            h.update(hashlib.sha256(blob).digest())
        h.update(
            json.dumps(
                [self.task, self.question, self.answer_type, self.answer, self.choices],
                sort_keys=True,
                default=str,
            ).encode()
        )
        return h.hexdigest()[:24]

    def answer_text(self) -> str:
        """The canonical answer string a model should put inside <answer>...</answer>
        (boxes stay in dataset pixels; the agent converts them to the model's convention)."""
        return format_answer(self.answer_type, self.answer)

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task": self.task,
            "source": self.source,
            "images": [{"bytes": b, "path": None} for b in self.images],
            "question": self.question,
            "answer_type": self.answer_type,
            "answer": json.dumps(self.answer),
            "choices": self.choices,
            "evidence": [e.to_dict() for e in self.evidence],
            "split": self.split,
            "meta": json.dumps(self.meta, sort_keys=True, default=str),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Sample:
        images = []
        for img in row["images"]:
            if isinstance(img, dict):
                images.append(img["bytes"])
            elif isinstance(img, bytes | bytearray):
                images.append(bytes(img))
            else:  # a decoded PIL image from `datasets`
                buf = io.BytesIO()
                img.save(buf, format="PNG")
                images.append(buf.getvalue())
        answer = row["answer"]
        return cls(
            id=row["id"],
            task=row["task"],
            source=row.get("source") or "unknown",
            images=images,
            question=row["question"],
            answer_type=row["answer_type"],
            answer=json.loads(answer) if isinstance(answer, str) else answer,
            choices=list(row["choices"]) if row.get("choices") is not None else None,
            evidence=[Evidence.from_dict(e) for e in (row.get("evidence") or [])],
            split=row.get("split") or "train",
            meta=json.loads(row["meta"])
            if isinstance(row.get("meta"), str) and row.get("meta")
            else (row.get("meta") or {}),
        )


def format_answer(answer_type: str, answer: Any) -> str:
    if answer_type == "bbox":
        return "[" + ", ".join(_num(v) for v in answer) + "]"
    if answer_type == "image_bbox":
        return f"image {int(answer['image'])}: " + format_answer("bbox", answer["bbox"])
    if answer_type == "number":
        return _num(answer)
    return str(answer)


def _num(v: float) -> str:
    f = float(v)
    return str(int(f)) if f.is_integer() else f"{f:.1f}"


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=1)
    return buf.getvalue()

"""What every tool shares: its schema, the context it sees, the result it returns, and
argument validation that answers the model with a clear message instead of raising."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from PIL import Image

from miva.agent.coords import Frame

log = logging.getLogger(__name__)


@dataclass
class ToolContext:
    """The images in the trajectory's context so far; numbers are 1-based, originals first."""

    images: list[Image.Image]
    frames: list[Frame]
    n_original: int
    family: str = "qwen2.5-vl"

    def source_of(self, k: int) -> tuple[int, tuple[float, float, float, float]] | None:
        """(original image number, box in its dataset pixels) that context image k shows."""
        f = self.frames[k - 1]
        if k <= self.n_original:
            return k, (0.0, 0.0, float(f.width), float(f.height))
        return f.origin


@dataclass
class ToolResult:
    ok: bool
    text: str
    # new images for the context, each with its origin (source image, box in source pixels) or None
    images: list[tuple[Image.Image, Any]] = field(default_factory=list)
    region: dict[str, Any] | None = None

    @classmethod
    def error(cls, message: str) -> ToolResult:
        return cls(False, f"error: {message}")


class ToolArgumentError(ValueError):
    """Raised by a tool's checks; the rollout turns it into an error result for the model."""


class Tool(ABC):
    """A tool: `name`, `description`, JSON-schema `parameters`, and `run(args, ctx)`."""

    name: str = ""
    description: str = ""
    parameters: ClassVar[dict[str, Any]] = {}

    def schema(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}

    def __call__(self, arguments: Any, ctx: ToolContext) -> ToolResult:
        """Validate, then run; every failure becomes an error result, never an exception."""
        problem = validate(arguments, self.parameters)
        if problem:
            return ToolResult.error(f"{self.name}: {problem}. Schema: {self.parameters}")
        try:
            return self.run(arguments, ctx)
        except ToolArgumentError as exc:
            return ToolResult.error(f"{self.name}: {exc}")
        except Exception as exc:  # a tool bug or odd input must not end the whole rollout
            log.warning("tool %s failed on %r", self.name, arguments, exc_info=True)
            return ToolResult.error(f"{self.name} failed: {type(exc).__name__}: {exc}")

    @abstractmethod
    def run(self, arguments: dict[str, Any], ctx: ToolContext) -> ToolResult:
        """Do the work on validated arguments; raise ToolArgumentError for bad values."""


_TYPES = {
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "boolean": lambda v: isinstance(v, bool),
}


def validate(value: Any, schema: dict[str, Any], where: str = "arguments") -> str | None:
    """A message naming the first problem of `value` against a small JSON-schema subset
    (type, required, properties, additionalProperties: false, items, minItems, maxItems,
    minimum, maximum, maxLength), or None when it conforms."""
    kind = schema.get("type")
    if kind and not _TYPES[kind](value):
        # integral floats (2.0) are accepted where an integer is expected
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            pass
        else:
            return f"{where} must be of type {kind}, got {type(value).__name__} {value!r:.60}"
    if kind == "object":
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                return f"{where} is missing the required key {req!r}"
        if schema.get("additionalProperties") is False:
            extra = sorted(set(value) - set(props))
            if extra:
                return f"{where} has unknown key(s) {extra}; known: {sorted(props)}"
        for key, sub in props.items():
            if key in value:
                msg = validate(value[key], sub, f"{where}.{key}" if where != "arguments" else key)
                if msg:
                    return msg
    if kind == "array":
        if "minItems" in schema and len(value) < schema["minItems"]:
            return f"{where} needs at least {schema['minItems']} items, got {len(value)}"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{where} takes at most {schema['maxItems']} items, got {len(value)}"
        if "items" in schema:
            for i, item in enumerate(value):
                msg = validate(item, schema["items"], f"{where}[{i}]")
                if msg:
                    return msg
    if kind in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            return f"{where} must be >= {schema['minimum']}, got {value}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{where} must be <= {schema['maximum']}, got {value}"
    if kind == "string" and "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{where} is longer than {schema['maxLength']} characters"
    return None


def image_number(value: Any, ctx: ToolContext, originals_only: bool = False) -> int:
    k = int(value)
    top = ctx.n_original if originals_only else len(ctx.images)
    what = "original images" if originals_only else "images in the context"
    if not 1 <= k <= top:
        raise ToolArgumentError(
            f"image {k} does not exist; there are {top} {what}, numbered 1 to {top}"
        )
    return k

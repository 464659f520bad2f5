"""Stage images: which image each stage runs on and how a reference is spelled.

Two images (see images/): `miva-base` (CPU; data, validation, registry stages) and
`miva-gpu` (torch + deepspeed + vllm; sft, grpo, evaluate). `make images` builds both
with one tag (package version + git commit) and writes it to `images/tags.env`.
"""

from __future__ import annotations

import re
from pathlib import Path

from miva.errors import ConfigError

IMAGES = {"base": "miva-base", "gpu": "miva-gpu"}

# stage (component name) -> image kind
STAGE_IMAGE = {
    "configure": "base",
    "synthesize": "base",
    "validate": "base",
    "sft": "gpu",
    "grpo": "gpu",
    "evaluate": "gpu",
    "register": "base",
    "sweep_plan": "base",
    "sweep_trial": "gpu",
    "sweep_select": "base",
}

GPU_STAGES = tuple(stage for stage, kind in STAGE_IMAGE.items() if kind == "gpu")

# Extras each image installs the package with (`pip install miva[<extras>]`).
IMAGE_EXTRAS = {"base": (), "gpu": ("gpu",)}


DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def image_ref(registry: str, kind: str, tag: str, digest: str = "") -> str:
    """`image_ref("ghcr.io/acme", "gpu", "0.1.0-abc123")` -> "ghcr.io/acme/miva-gpu:0.1.0-abc123",
    with `@sha256:...` appended when a digest is given (the tag then only documents it)."""
    if kind not in IMAGES:
        raise ConfigError(f"unknown image kind {kind!r}; known: {sorted(IMAGES)}")
    if not registry or not tag:
        raise ConfigError("pipeline.image_registry and pipeline.image_tag must not be empty")
    ref = f"{registry.rstrip('/')}/{IMAGES[kind]}:{tag}"
    if not digest:
        return ref
    if not DIGEST.fullmatch(digest):
        raise ConfigError(
            f"pipeline.image_digests.{kind} must be sha256:<64 lowercase hex>, got {digest!r}"
        )
    return f"{ref}@{digest}"


def stage_image(stage: str, registry: str, tag: str) -> str:
    if stage not in STAGE_IMAGE:
        raise ConfigError(f"unknown stage {stage!r}; known: {sorted(STAGE_IMAGE)}")
    return image_ref(registry, STAGE_IMAGE[stage], tag)


def read_tags(path: str | Path) -> dict[str, str]:
    """Parse `images/tags.env` (`KEY=value` lines, `#` comments) as written by `make images`."""
    out: dict[str, str] = {}
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{lineno}: expected KEY=value, got {line!r}")
        out[key.strip()] = value.strip()
    return out

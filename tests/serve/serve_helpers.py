"""Images and requests for the serving tests."""

from __future__ import annotations

import base64
import io

from PIL import Image


def png(color=(200, 30, 30), size=(64, 64), seed: int | None = None) -> bytes:
    """A small PNG: a plain colour, or seeded noise."""
    if seed is None:
        img = Image.new("RGB", size, color)
    else:
        import numpy as np

        rng = np.random.default_rng(seed)
        img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def data_url(blob: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(blob).decode()}"


def user_message(question: str, images: list[bytes]) -> dict:
    parts = [{"type": "text", "text": question}]
    parts += [{"type": "image_url", "image_url": {"url": data_url(b)}} for b in images]
    return {"role": "user", "content": parts}

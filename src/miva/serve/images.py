"""Image references of a chat request -> PNG bytes, within the server's limits.

Accepted: `data:image/<type>;base64,<data>` URLs always; `http(s)://` and `s3://` URLs only
when `serve.allow_remote_images` is on (otherwise a request could make the server reach
any host). Every image is checked before it is decoded: its encoded size against
`serve.max_image_bytes`, its pixel count (read from the header) against
`serve.max_image_pixels`; then it is fully decoded, so a truncated or corrupt file is a
400 naming the image, not a failure inside the rollout.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from typing import Any

from miva.serve.schema import ApiError

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,", re.I)


def decode_data_url(url: str, where: str, max_bytes: int) -> bytes:
    match = _DATA_URL.match(url)
    if match is None:
        raise ApiError(400, f"{where}: a data URL must look like data:image/png;base64,...", where)
    mime = (match.group("mime") or "").lower()
    if mime and not mime.startswith("image/"):
        raise ApiError(400, f"{where}: data URL has media type {mime!r}, not an image", where)
    payload = url[match.end() :]
    if len(payload) * 3 // 4 > max_bytes:
        raise ApiError(
            413, f"{where}: image is larger than the server's limit of {max_bytes} bytes", where
        )
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"{where}: image data is not valid base64 ({exc})", where) from None


def fetch_remote(url: str, where: str, cfg: Any) -> bytes:
    """An http(s):// or s3:// image, read up to `max_image_bytes`."""
    if url.startswith("s3://"):
        from miva import storage

        try:
            data = storage.read_bytes(url)
        except Exception as exc:
            raise ApiError(400, f"{where}: cannot read {url} ({exc})", where) from None
    else:
        import httpx2

        try:
            with (
                httpx2.Client(timeout=cfg.remote_timeout_s, follow_redirects=True) as client,
                client.stream("GET", url) as resp,
            ):
                if resp.status_code != 200:
                    raise ApiError(
                        400, f"{where}: fetching {url} answered HTTP {resp.status_code}", where
                    )
                chunks, size = [], 0
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > cfg.max_image_bytes:
                        raise ApiError(
                            413,
                            f"{where}: image at {url} is larger than {cfg.max_image_bytes} bytes",
                            where,
                        )
                    chunks.append(chunk)
                data = b"".join(chunks)
        except httpx2.HTTPError as exc:
            raise ApiError(400, f"{where}: cannot fetch {url} ({exc})", where) from None
    if len(data) > cfg.max_image_bytes:
        raise ApiError(413, f"{where}: image is larger than {cfg.max_image_bytes} bytes", where)
    return data


def to_png(data: bytes, where: str, max_pixels: int) -> bytes:
    """Decode fully (size checked from the header first) and re-encode as RGB PNG."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h = img.size
            if w * h > max_pixels:
                raise ApiError(
                    400,
                    f"{where}: image is {w}x{h} = {w * h} pixels, more than the limit {max_pixels}",
                    where,
                )
            img.load()
            rgb = img.convert("RGB")
    except ApiError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ApiError(400, f"{where}: image does not decode ({exc})", where) from None
    buf = io.BytesIO()
    rgb.save(buf, format="PNG")
    return buf.getvalue()


def load_image(url: str, where: str, cfg: Any) -> bytes:
    """One `image_url.url` -> PNG bytes, or an ApiError saying what is wrong with it."""
    if url.startswith("data:"):
        data = decode_data_url(url, where, cfg.max_image_bytes)
    elif url.startswith(("http://", "https://", "s3://")):
        if not cfg.allow_remote_images:
            raise ApiError(
                400,
                f"{where}: this server accepts images as base64 data URLs only "
                "(serve.allow_remote_images is off)",
                where,
            )
        data = fetch_remote(url, where, cfg)
    else:
        raise ApiError(
            400, f"{where}: unsupported image URL (use data:image/...;base64,...)", where
        )
    return to_png(data, where, cfg.max_image_pixels)

"""Image references -> PNG bytes within the limits (data URLs, and real http / s3 servers)."""

from __future__ import annotations

import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
from PIL import Image
from serve_helpers import data_url, png

from miva.serve.images import load_image
from miva.serve.schema import ApiError


def limits(**kw):
    base = dict(
        max_image_bytes=1 << 20,
        max_image_pixels=512 * 512,
        allow_remote_images=False,
        remote_timeout_s=5.0,
    )
    return SimpleNamespace(**{**base, **kw})


def test_data_url_png_and_jpeg_decode_to_rgb_png():
    import io

    buf = io.BytesIO()
    Image.new("L", (30, 20), 128).save(buf, format="JPEG")
    for url in (data_url(png()), data_url(buf.getvalue(), "image/jpeg")):
        out = load_image(url, "img", limits())
        img = Image.open(io.BytesIO(out))
        assert img.format == "PNG" and img.mode == "RGB"


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(ApiError, match="more than the limit") as info:
        load_image(data_url(png(size=(600, 600))), "messages[0].content[1]", limits())
    assert info.value.status == 400 and info.value.param == "messages[0].content[1]"


def test_encoded_size_limit_is_413():
    with pytest.raises(ApiError) as info:
        load_image(data_url(png(seed=1, size=(200, 200))), "img", limits(max_image_bytes=4096))
    assert info.value.status == 413


@pytest.fixture
def http_images(tmp_path):
    (tmp_path / "red.png").write_bytes(png())
    (tmp_path / "junk.png").write_bytes(b"not an image")

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_http_urls_only_when_allowed(http_images):
    url = f"{http_images}/red.png"
    with pytest.raises(ApiError, match="data URLs only"):
        load_image(url, "img", limits())
    assert load_image(url, "img", limits(allow_remote_images=True)).startswith(b"\x89PNG")
    with pytest.raises(ApiError, match="HTTP 404"):
        load_image(f"{http_images}/missing.png", "img", limits(allow_remote_images=True))
    with pytest.raises(ApiError, match="does not decode"):
        load_image(f"{http_images}/junk.png", "img", limits(allow_remote_images=True))
    with pytest.raises(ApiError) as info:
        load_image(url, "img", limits(allow_remote_images=True, max_image_bytes=100))
    assert info.value.status == 413


def test_s3_urls_read_through_storage(monkeypatch):
    from servers import DUMMY_AWS, MotoS3

    s3 = MotoS3().start()
    try:
        for key, value in DUMMY_AWS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.url)
        s3.create_bucket("imgs")
        s3.client().put_object(Bucket="imgs", Key="a/red.png", Body=png())
        out = load_image("s3://imgs/a/red.png", "img", limits(allow_remote_images=True))
        assert out.startswith(b"\x89PNG")
        with pytest.raises(ApiError, match="cannot read"):
            load_image("s3://imgs/a/none.png", "img", limits(allow_remote_images=True))
    finally:
        s3.stop()

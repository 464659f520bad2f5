"""Tools on known images, and every class of bad argument ending as an error result."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from miva.agent.coords import Frame
from miva.agent.tools import ToolContext, validate
from miva.agent.tools.search import BM25, Passage, Search, load_corpus, tokenize
from miva.agent.tools.view import View
from miva.agent.tools.zoom import Zoom
from miva.errors import DataError


def _quadrants(size=448):
    """Red top-left quadrant, blue elsewhere."""
    a = np.zeros((size, size, 3), np.uint8)
    a[:, :] = (0, 0, 255)
    a[: size // 2, : size // 2] = (255, 0, 0)
    return Image.fromarray(a)


def _ctx(family="qwen2.5-vl"):
    imgs = [_quadrants(), Image.new("RGB", (200, 100), (0, 255, 0))]
    frames = [Frame(448, 448, 112, 112), Frame(200, 100, 112, 56)]
    return ToolContext(imgs, frames, n_original=2, family=family)


def test_zoom_crops_the_region_and_upscales():
    ctx = _ctx()
    # model pixels [0, 0, 56, 56] of a 448 image shown at 112 = dataset [0, 0, 224, 224] = red quadrant
    res = Zoom(upscale_to=112)({"image": 1, "bbox": [0, 0, 56, 56]}, ctx)
    assert res.ok, res.text
    ((crop, origin),) = res.images
    assert crop.size == (112, 112)
    assert np.array(crop)[..., 0].min() > 200  # all red
    assert origin == (1, (0.0, 0.0, 224.0, 224.0))
    assert res.region == {"image": 1, "bbox": [0.0, 0.0, 224.0, 224.0]}


def test_zoom_in_qwen2vl_coordinates():
    res = Zoom(112)({"image": 1, "bbox": [500, 500, 1000, 1000]}, _ctx("qwen2-vl"))
    assert res.ok and res.region == {"image": 1, "bbox": [224.0, 224.0, 448.0, 448.0]}
    assert np.array(res.images[0][0])[..., 2].min() > 200  # blue


def test_zoom_of_a_zoom_maps_back_to_the_original():
    ctx = _ctx()
    res = Zoom(112)(
        {"image": 1, "bbox": [0, 0, 56, 56]}, ctx
    )  # crop of [0,0,224,224], shown 112x112
    crop, origin = res.images[0]
    ctx.images.append(crop)
    ctx.frames.append(Frame(112, 112, 112, 112, origin))
    res2 = Zoom(112)({"image": 3, "bbox": [56, 56, 112, 112]}, ctx)
    assert res2.ok
    # crop pixels 56..112 of a 112 px view of 224 px -> source 112..224
    assert res2.region == {"image": 1, "bbox": [112.0, 112.0, 224.0, 224.0]}


def test_zoom_by_region_name_crops_that_grid_cell():
    ctx = _ctx()
    res = Zoom(112)({"image": 1, "region": "top left"}, ctx)
    assert res.ok, res.text
    ((crop, _),) = res.images
    assert crop.size == (112, 112)
    assert np.array(crop)[..., 0].min() > 200  # the top-left ninth of the image is red
    assert res.region == {"image": 1, "bbox": [0.0, 0.0, 149.0, 149.0]}  # 448 / 3 = 149.3
    res = Zoom(112)({"image": 1, "region": " Bottom  Right"}, ctx)
    assert res.ok and res.region["bbox"] == [298.0, 298.0, 448.0, 448.0]
    assert np.array(res.images[0][0])[..., 2].min() > 200  # blue
    centre = Zoom(112)({"image": 2, "region": "centre"}, ctx)  # a 200 x 100 image
    assert centre.region == {"image": 2, "bbox": [66.0, 33.0, 133.0, 67.0]}


def test_view_puts_the_original_back():
    ctx = _ctx()
    res = View()({"image": 2}, ctx)
    assert res.ok and res.images[0][0].size == (200, 100)
    assert res.images[0][1] == (2, (0.0, 0.0, 200.0, 100.0))


@pytest.mark.parametrize(
    "tool,args,fragment",
    [
        (Zoom(), {"image": 1, "bbox": [-5, 0, 10, 10]}, ">= 0"),  # negative
        (Zoom(), {"image": 1, "bbox": [0, 0, 500, 500]}, "beyond image 1"),  # larger than image
        (Zoom(), {"image": 1, "bbox": [0, 0, 114, 50]}, "beyond image 1"),  # 1 px slack, then out
        (Zoom(), {"image": 1, "bbox": [10, 10, 10, 50]}, "zero area"),
        (Zoom(), {"image": 1, "bbox": [30, 30, 10, 10]}, "zero area"),  # inverted
        (Zoom(), {"image": 1, "bbox": "0,0,10,10"}, "type array"),  # wrong type
        (Zoom(), {"image": "one", "bbox": [0, 0, 10, 10]}, "type integer"),
        (Zoom(), {"image": 1, "bbox": [0, 0, 10]}, "at least 4"),
        (Zoom(), {"image": 1, "bbox": [0, 0, 10, None]}, "type number"),
        (Zoom(), {"image": 7, "bbox": [0, 0, 10, 10]}, "image 7 does not exist"),
        (Zoom(), {"image": 0, "bbox": [0, 0, 10, 10]}, ">= 1"),
        (Zoom(), {"bbox": [0, 0, 10, 10]}, "missing the required key 'image'"),
        (Zoom(), {"image": 1, "bbox": [0, 0, 10, 10], "zoom": 3}, "unknown key"),
        (Zoom(), ["image", 1], "type object"),
        (Zoom(), {"image": 1, "bbox": [0, 0, 112, 1]}, "too thin"),
        (Zoom(), {"image": 1}, "exactly one of bbox and region"),
        (Zoom(), {"image": 1, "region": "top left", "bbox": [0, 0, 9, 9]}, "exactly one"),
        (Zoom(), {"image": 1, "region": "upper left"}, "not a grid cell"),
        (Zoom(), {"image": 1, "region": 3}, "type string"),
        (View(), {"image": 3}, "image 3 does not exist"),
        (View(), {"image": -1}, ">= 1"),
        (View(), {"image": 1.5}, "type integer"),
        (View(), {"image": True}, "type integer"),
    ],
)
def test_bad_arguments_become_error_results(tool, args, fragment):
    res = tool(args, _ctx())
    assert not res.ok and not res.images
    assert res.text.startswith("error:") and fragment in res.text, res.text


def test_view_refuses_tool_images():
    ctx = _ctx()
    ctx.images.append(Image.new("RGB", (10, 10)))
    ctx.frames.append(Frame(10, 10, 56, 56))
    assert "original images" in View()({"image": 3}, ctx).text


def test_validate_subset():
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "maximum": 3}},
        "required": ["n"],
    }
    assert validate({"n": 2}, schema) is None
    assert validate({"n": 2.0}, schema) is None  # integral float accepted
    assert "<= 3" in validate({"n": 4}, schema)


# ----------------------------------------------------------------------------- search


CORPUS = [
    Passage("a", "The red fox jumps over the lazy dog", "fox"),
    Passage("b", "A blue whale is the largest animal", "whale"),
    Passage("c", "Red apples and red cherries are red fruit", "fruit"),
]


def test_bm25_by_hand():
    bm = BM25(CORPUS)
    # "whale": df=1, N=3 -> idf = ln(1 + 2.5/1.5) = ln(2.6667) = 0.98083
    # doc b = title "whale" + 7 words = 8 tokens, tf("whale") = 2; avgdl = (9 + 8 + 9)/3 = 8.6667
    # K = 1.5*(0.25 + 0.75*8/8.6667) = 1.41346; 2*2.5 / (2 + 1.41346) = 1.46479 -> x idf = 1.43671
    s = bm.scores("whale")
    assert s[0] == 0 and s[2] == 0
    assert s[1] == pytest.approx(1.43671, rel=1e-4)
    top = bm.top("red fruit", 2)
    assert [p.id for p in top] == ["c", "a"]
    assert bm.top("zebra", 3) == []


def test_search_tool_and_corpus_file(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(
        "\n".join(json.dumps({"id": p.id, "text": p.text, "title": p.title}) for p in CORPUS)
    )
    tool = Search(BM25(load_corpus(path)), top_k=1)
    res = tool({"query": "largest animal"}, _ctx())
    assert res.ok and res.text.startswith("[1] whale: A blue whale")
    assert not tool({"query": "!!!"}, _ctx()).ok
    assert not tool({"query": 5}, _ctx()).ok
    (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
    with pytest.raises(DataError, match="line 1"):
        load_corpus(tmp_path / "bad.jsonl")


def test_search_http_backend_against_a_local_server():
    """A real HTTP server on loopback stands in for a remote search service."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from miva.agent.tools.search import HTTPBackend

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            hits = BM25(CORPUS).top(body["query"], body["top_k"])
            data = json.dumps(
                {"results": [{"id": p.id, "text": p.text, "score": p.score} for p in hits]}
            )
            self.send_response(200)
            self.end_headers()
            self.wfile.write(data.encode())

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/search"
        res = Search(HTTPBackend(url), top_k=2)({"query": "blue whale"}, _ctx())
        assert res.ok and "[1] A blue whale" in res.text
    finally:
        server.shutdown()
    dead = Search(HTTPBackend(url, timeout_s=1), top_k=2)({"query": "whale"}, _ctx())
    assert not dead.ok and "search backend failed" in dead.text


def test_tokenize():
    assert tokenize("Red-fox, 2 dogs!") == ["red", "fox", "2", "dogs"]


def test_a_failing_backend_is_an_error_result_not_a_crash():
    class Broken:
        def top(self, query, k):
            raise RuntimeError("index corrupted")

    res = Search(Broken())({"query": "whale"}, _ctx())
    assert not res.ok and "RuntimeError: index corrupted" in res.text

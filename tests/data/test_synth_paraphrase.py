"""Paraphraser against a STAND-IN OpenAI-compatible server on 127.0.0.1 (started here).

The stand-in is not a language model: it answers /v1/chat/completions with a fixed
rewrite of the user message, which is enough to test the HTTP contract, the acceptance
rules and that answers never change. A real deployment points at e.g. `vllm serve`.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from miva.config import ParaphraseConfig, SynthesizeConfig
from miva.data.synth.generate import synthesize
from miva.data.synth.paraphrase import accept, paraphrase_one


class _StandIn(BaseHTTPRequestHandler):
    mode = "good"
    requests: ClassVar[list[dict]] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, **body})
        question = body["messages"][-1]["content"]
        if self.mode == "good":
            content = "Please tell me: " + question[0].lower() + question[1:]
        else:  # drops the numbers, which the acceptance rule must catch
            content = "".join(c for c in question if not c.isdigit())
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data.encode())

    def log_message(self, *args):
        pass


@pytest.fixture
def stand_in():
    _StandIn.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _cfg(server) -> ParaphraseConfig:
    return ParaphraseConfig(
        enabled=True, endpoint=f"http://127.0.0.1:{server.server_port}/v1", timeout_s=5
    )


def test_rewrites_keep_answers(stand_in):
    _StandIn.mode = "good"
    base = {"n": 14, "image_size": 112, "workers": 1, "seed": 2}
    plain = synthesize(SynthesizeConfig(**base), progress=False).samples
    para = synthesize(
        SynthesizeConfig(**base, paraphrase=_cfg(stand_in).model_dump()), progress=False
    ).samples
    assert len(_StandIn.requests) == 14
    assert _StandIn.requests[0]["path"] == "/v1/chat/completions"
    assert _StandIn.requests[0]["model"] == "Qwen/Qwen2.5-7B-Instruct"
    for a, b in zip(plain, para, strict=True):
        assert b.meta["paraphrased"] and b.question.startswith("Please tell me: ")
        assert (a.answer, a.choices, a.images) == (b.answer, b.choices, b.images)
        assert b.meta["stem"] == a.meta["stem"]  # the template stays on record


def test_rewrite_losing_a_number_is_rejected(stand_in):
    _StandIn.mode = "drop-numbers"
    q = "What colour is the small circle in image 2?"
    assert paraphrase_one(_cfg(stand_in), q) is None


def test_unreachable_server_keeps_the_template():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ParaphraseConfig(enabled=True, endpoint=f"http://127.0.0.1:{port}/v1", timeout_s=2)
    assert paraphrase_one(cfg, "Which image shows the small red circle?") is None


def test_accept_rules():
    q = "What is written on the small circle in image 3 labelled 'K7'?"
    assert accept(q, "In image 3, what text does the small circle labelled 'K7' show?") is None
    assert "lost" in accept(q, "What is written on the small circle labelled 'K7'?")
    assert accept(q, "") == "empty rewrite"
    assert "multi-line" in accept(q, "a\nb 3 'K7'")

"""A real `miva serve` of the tiny preset on loopback, shared by the serving tests."""

from __future__ import annotations

import pytest
import torch

# One intra-op thread: faster than two on the shared 2-core box (see bench/rollout.py).
torch.set_num_threads(1)

SERVE_OVERRIDES = [
    "serve.max_request_bytes=262144",  # 256 KiB: the over-limit test sends more
    "serve.max_images=4",
    "serve.max_wait_ms=50",
    "serve.max_batch_size=32",
]


@pytest.fixture(scope="session")
def serve_cfg(tmp_path_factory):
    from miva.config import load_config

    work = tmp_path_factory.mktemp("serve")
    return load_config("tiny-cpu", [f"workdir={work}", *SERVE_OVERRIDES])


@pytest.fixture(scope="session")
def server(serve_cfg):
    """(BackgroundServer, ServedAgent): uvicorn on a free loopback port, tiny-random model."""
    from miva.serve import build
    from miva.serve.app import BackgroundServer

    app, served = build(serve_cfg, "tiny-random")
    srv = BackgroundServer(app).start()
    yield srv, served
    srv.stop()


@pytest.fixture(scope="session")
def client(server):
    from openai import OpenAI

    return OpenAI(base_url=server[0].url + "/v1", api_key="unused", max_retries=0, timeout=300)

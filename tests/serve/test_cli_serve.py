"""`miva serve` from the command line: a real process the openai client talks to."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from serve_helpers import png, user_message
from servers import free_port, wait_http


def test_miva_serve_command_answers_and_stops_cleanly(tmp_path):
    from openai import OpenAI

    port = free_port()
    miva = Path(sys.executable).with_name("miva")
    proc = subprocess.Popen(
        [str(miva), "serve", "tiny-random", "--port", str(port), "--name", "agent"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 240, proc)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="-", max_retries=0)
        resp = client.chat.completions.create(
            model="agent", messages=[user_message("What is in the image?", [png()])]
        )
        assert resp.model == "agent" and resp.choices[0].message.content is not None
    finally:
        proc.send_signal(2)  # Ctrl-C: uvicorn shuts down
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-2000:]
    assert f"serving tiny-random as 'agent' on http://127.0.0.1:{port}/v1" in out

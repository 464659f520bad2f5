"""`miva serve` throughput and latency, and LLM-judge calls per second with and without the cache.

CPU (measured here): `miva serve tiny-random` in a subprocess (uvicorn, the tiny-cpu
preset: up to 3 turns of 48 new tokens; the random model writes 48 tokens and stops, so
each request is one turn), called by the official `openai` client from N threads at once
(concurrency 1, 8, 32). Each request carries one or two 64x64 images. Reported: requests
per second, p50/p95 latency, and the mean rollout batch the dynamic batcher formed (from
/health). Then `miva.rl.judge.Judge` against the same server (text-only prompts): a
first pass over distinct prompts (every call a request) and a second pass over the same
prompts (every call a disk-cache hit).

    .venv/bin/python bench/serve.py                       # the table in bench/RESULTS.md
    .venv/bin/python bench/serve.py --requests 64 --levels 1 8 32 --judge-prompts 64
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def image_url(seed: int) -> str:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def start_server(port: int, threads: int, max_wait_ms: float) -> subprocess.Popen:
    miva = Path(sys.executable).with_name("miva")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        str(miva), "serve", "tiny-random", "--port", str(port),
        "--set", "serve.require_image=false",
        "--set", f"serve.max_wait_ms={max_wait_ms}",
        "--set", "serve.max_batch_size=32",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    from tests.servers import wait_http

    wait_http(f"http://127.0.0.1:{port}/health", 300, proc)
    return proc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def load_level(base: str, concurrency: int, n: int, offset: int) -> dict[str, float]:
    import httpx2
    from openai import OpenAI

    client = OpenAI(base_url=base + "/v1", api_key="-", max_retries=0, timeout=600)
    health = lambda: httpx2.get(base + "/health").json()  # noqa: E731
    before = health()

    def one(i: int) -> float:
        parts = [{"type": "text", "text": f"Question {i}: what colour is the shape?"}]
        for k in range(1 + i % 2):
            parts.append({"type": "image_url", "image_url": {"url": image_url(offset + i * 2 + k)}})
        t0 = time.perf_counter()
        client.chat.completions.create(
            model="tiny-random", messages=[{"role": "user", "content": parts}]
        )
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    after = health()
    batches = after["batches"] - before["batches"]
    return {
        "concurrency": concurrency,
        "requests": n,
        "req_per_s": n / wall,
        "p50_s": statistics.median(latencies),
        "p95_s": percentile(latencies, 0.95),
        "mean_batch": (after["requests"] - before["requests"]) / max(batches, 1),
    }


def judge_rates(base: str, prompts: int, concurrency: int) -> dict[str, float]:
    from miva.config import load_config
    from miva.rl.judge import Judge

    cache = tempfile.mkdtemp(prefix="miva-judge-bench-")
    cfg = load_config(
        "tiny-cpu",
        [
            f"reward.judge.url={base}/v1",
            "reward.judge.model=tiny-random",
            f"reward.judge.cache_dir={cache}",
            f"reward.judge.concurrency={concurrency}",
            "reward.judge.timeout_s=600",
        ],
    ).reward.judge
    judge = Judge(cfg)
    texts = [
        f'Question: what colour is shape {i}? Reference answers: "red" '
        f"Model answer: <<<crimson {i}>>> Score:"
        for i in range(prompts)
    ]
    out = {}
    for label in ("uncached", "cached"):
        t0 = time.perf_counter()
        judge.score(texts)
        wall = time.perf_counter() - t0
        m = judge.drain_metrics()
        out[f"{label}_calls_per_s"] = prompts / wall
        out[f"{label}_requests"] = m["train/judge/requests"]
        out[f"{label}_hit_rate"] = m["train/judge/cache_hit_rate"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--requests", type=int, default=64, help="requests per concurrency level")
    ap.add_argument("--judge-prompts", type=int, default=64)
    ap.add_argument("--judge-concurrency", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the server")
    ap.add_argument("--max-wait-ms", type=float, default=50.0)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    from tests.servers import free_port

    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    print(f"load average before: {os.getloadavg()}")
    proc = start_server(port, args.threads, args.max_wait_ms)
    try:
        load_level(base, 4, 4, 10_000)  # warm-up
        rows = [load_level(base, c, args.requests, 1000 * c) for c in args.levels]
        judge = judge_rates(base, args.judge_prompts, args.judge_concurrency)
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"load average after: {os.getloadavg()}")
    print(
        "\n| concurrency | requests | requests/s | p50 latency (s) | p95 latency (s) | mean batch |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['concurrency']} | {r['requests']} | {r['req_per_s']:.2f} | {r['p50_s']:.2f} "
            f"| {r['p95_s']:.2f} | {r['mean_batch']:.1f} |"
        )
    print(
        f"\n| judge ({args.judge_prompts} prompts, concurrency {args.judge_concurrency}) "
        "| calls/s | HTTP requests | cache hit rate |"
    )
    print("|---|---|---|---|")
    for label in ("uncached", "cached"):
        print(
            f"| {label} | {judge[f'{label}_calls_per_s']:.1f} | {judge[f'{label}_requests']:.0f} "
            f"| {judge[f'{label}_hit_rate']:.2f} |"
        )


if __name__ == "__main__":
    main()

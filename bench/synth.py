"""Synthesis throughput: samples per second at 3 images of 448 px per sample.

Measures `synthesize` (design, solve, verify, render, encode, balance) with 1 and 2
worker processes, the end-to-end `run_synth` (with parquet writing), and a per-stage
profile of one process, so the bottleneck is visible. Target: >= 150 samples/s on 2 cores.

    .venv/bin/python bench/synth.py [--n 1200] [--size 448] [--images 3]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from miva.config import SynthesizeConfig
from miva.data.synth.build import run_synth
from miva.data.synth.generate import sample_seed, synthesize
from miva.data.synth.questions import WRITERS
from miva.data.synth.render import encode, render_image
from miva.data.synth.scene import SceneDesigner
from miva.data.synth.solver import solve


def _cpu() -> float:
    """CPU seconds of this process plus its terminated (joined) child processes."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def profile(n: int, size: int, images: int) -> dict[str, float]:
    """Milliseconds per sample for each stage, in one process."""
    tasks = list(WRITERS)
    t = {"design+write": 0.0, "solve": 0.0, "draw": 0.0, "png (palette)": 0.0, "png (rgb)": 0.0}
    for i in range(n):
        rng = random.Random(sample_seed(0, i))
        t0 = time.perf_counter()
        try:
            item = WRITERS[tasks[i % len(tasks)]](SceneDesigner(rng, size), images, False)
        except Exception:
            continue
        t1 = time.perf_counter()
        solve(item.scene, item.query)
        t2 = time.perf_counter()
        imgs = [render_image(im, size) for im in item.scene.images]
        t3 = time.perf_counter()
        for im in imgs:
            encode(im)
        t4 = time.perf_counter()
        for im in imgs:
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="PNG", compress_level=1)
        t5 = time.perf_counter()
        for key, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            t[key] += dt
    return {k: 1000 * v / n for k, v in t.items()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--images", type=int, default=3)
    args = ap.parse_args()
    base = {"n": args.n, "image_size": args.size, "images_per_sample": (args.images, args.images)}

    rows = []
    phases: dict[int, dict[str, float]] = {}
    cpu: dict[int, float] = {}
    for workers in (1, 2):
        cfg = SynthesizeConfig(**base, workers=workers)
        cpu0 = _cpu()
        t0 = time.perf_counter()
        result = synthesize(cfg, progress=False)
        dt = time.perf_counter() - t0
        cpu[workers] = _cpu() - cpu0
        rows.append((f"synthesize, {workers} worker(s)", len(result.samples), dt))
        phases[workers] = result.timings
    tmp = Path(tempfile.mkdtemp(prefix="miva-bench-synth-"))
    try:
        cfg = SynthesizeConfig(**base, workers=2)
        t0 = time.perf_counter()
        info = run_synth(cfg, tmp / "ds", progress=False)
        dt = time.perf_counter() - t0
        mb = sum(p.stat().st_size for p in (tmp / "ds").rglob("*") if p.is_file()) / 1e6
        rows.append((f"run_synth + parquet write, 2 workers ({mb:.0f} MB)", info.total, dt))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"## Synthesis ({args.images} images of {args.size} px per sample)\n")
    print("| run | samples | seconds | samples/s |\n|---|---:|---:|---:|")
    for name, n, dt in rows:
        print(f"| {name} | {n} | {dt:.2f} | {n / dt:.0f} |")
    print(
        "\nCPU time (this process + its workers), which contention does not inflate much:\n\n"
        "| run | CPU ms/sample | samples per CPU-second | projected samples/s on 2 idle cores |\n"
        "|---|---:|---:|---:|"
    )
    for w, c in cpu.items():
        per = c / args.n
        print(f"| synthesize, {w} worker(s) | {1000 * per:.2f} | {1 / per:.0f} | {2 / per:.0f} |")
    print(
        "\nPhases: "
        + "; ".join(
            f"{w} worker(s): workers {t['drafts_s']:.2f} s, balance+samples {t['finish_s']:.2f} s"
            for w, t in phases.items()
        )
    )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nCPU cores: {os.cpu_count()}, 1-min load average at the end: {load:.1f}")
    prof = profile(min(args.n, 300), args.size, args.images)
    print("\nPer-sample stage cost in one process (ms):\n")
    print("| stage | ms/sample |\n|---|---:|")
    for k, v in prof.items():
        print(f"| {k} | {v:.2f} |")
    print(
        f"\ncommand: `.venv/bin/python bench/synth.py --n {args.n} --size {args.size} --images {args.images}`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

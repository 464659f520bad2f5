"""Benchmark: `miva validate` end to end on a 20,000-row dataset (target: under 60 s).

Builds a dataset in the sample contract with small images (each row has its own, so the
split-leak and near-duplicate checks do real work but find nothing), then times the CLI
in a fresh process: reading, decoding every image, the GX suites, cross-row checks,
writing clean/ and quarantine/, report.json and the data docs. Also prints the gate's
own phase timings (report.json `timings_s`; `gx_rows` includes importing GX).

    .venv/bin/python bench/validate.py --rows 20000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from miva.data.io import write_dataset
from miva.data.schema import Evidence, Sample

KINDS = ("choice", "number", "text", "image_index", "bbox", "image_bbox")


def _png(i: int, k: int, size: int) -> bytes:
    img = Image.new("RGB", (size, size), (i % 256, (i // 256) % 256, (i // 65536) * 40 + k))
    img.putpixel((k, k), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _sample(i: int, size: int) -> Sample:
    split = "train" if i % 10 < 8 else ("val" if i % 10 == 8 else "test")
    n_images = 2 + i % 3
    images = [_png(i, k, size) for k in range(n_images)]
    kind = KINDS[i % len(KINDS)]
    q = f"Item {i}: a {kind} question about {n_images} images, asked in the {split} split?"
    box = [1.0, 1.0, size - 2.0, size - 3.0]
    common = {"images": images, "question": q, "split": split, "meta": {"i": i}}
    if kind == "choice":
        return Sample(
            task="attribute",
            answer_type="choice",
            answer="ABCD"[(i // 6) % 4],
            choices=["a", "b", "c", "d"],
            **common,
        )
    if kind == "number":
        return Sample(task="counting", answer_type="number", answer=i % 7, **common)
    if kind == "text":
        return Sample(task="attribute", answer_type="text", answer="red", **common)
    if kind == "image_index":
        return Sample(
            task="selection",
            answer_type="image_index",
            answer=1 + (i // 6) % n_images,
            **common,
        )
    if kind == "bbox":
        return Sample(
            task="grounding",
            answer_type="bbox",
            answer=box,
            evidence=[Evidence(1, tuple(box))],
            **common,
        )
    return Sample(
        task="group_grounding",
        answer_type="image_bbox",
        answer={"image": n_images, "bbox": box},
        evidence=[Evidence(n_images, tuple(box))],
        **common,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--workdir", help="keep the dataset and outputs here (default: a temp dir)")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="miva-bench-validate-")
    root = Path(args.workdir or tmp.name)
    ds, out = root / "ds", root / "out"
    t0 = time.perf_counter()
    info = write_dataset((_sample(i, args.image_size) for i in range(args.rows)), ds)
    build_s = time.perf_counter() - t0
    n_images = sum(2 + i % 3 for i in range(args.rows))

    miva = Path(sys.executable).with_name("miva")
    cmd = [str(miva), "validate", str(ds), "--out", str(out), "-q"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ})
    wall = time.perf_counter() - t0
    verdict = "pass" if proc.returncode == 0 else f"fail (exit {proc.returncode})"
    if proc.returncode != 0:
        print(proc.stdout, proc.stderr, file=sys.stderr)

    shards = len(list((ds / "data").glob("*.parquet")))
    print(
        f"command: .venv/bin/python bench/validate.py --rows {args.rows} --image-size {args.image_size}"
    )
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared)")
    print()
    print(
        "| rows | images | image size | shards | build s | validate s (end to end) | rows/s | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| {info.total} | {n_images} | {args.image_size}px | {shards} | {build_s:.1f} | "
        f"{wall:.1f} | {info.total / wall:.0f} | {verdict} |"
    )
    report = out / "report.json"
    if report.exists():  # where the time went, from the gate's own clock
        timings = json.loads(report.read_text())["timings_s"]
        print()
        print("| phase | s |")
        print("|---|---|")
        for phase, secs in timings.items():
            print(f"| {phase} | {secs:.1f} |")
        rest = wall - sum(timings.values())
        print(f"| process start, imports (datasets, GX) | {rest:.1f} |")
    tmp.cleanup()


if __name__ == "__main__":
    main()

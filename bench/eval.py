"""Evaluation throughput on this machine: items per second.

Rows: (1) the whole `miva eval` stage with the tiny model: real greedy multi-turn rollouts
(`miva.agent.rollout`, the tiny-cpu preset's agent settings) + scoring + outputs, with the
model load timed apart; (2) scoring + outputs + HTML report alone, on recorded one-turn
trajectories (what the stage costs beyond generation).

    .venv/bin/python bench/eval.py --items 32
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _synthetic_dataset(folder: Path, n: int) -> Path:
    import io
    import random

    from PIL import Image

    from miva.data.io import write_dataset
    from miva.data.schema import Evidence, Sample

    rng = random.Random(0)
    colors = ["red", "green", "blue", "yellow"]

    def png(color: str) -> bytes:
        buf = io.BytesIO()
        Image.new("RGB", (112, 112), color).save(buf, format="PNG")
        return buf.getvalue()

    samples = []
    for i in range(n):
        cols = rng.sample(colors, 3)
        if i % 2:
            samples.append(
                Sample(
                    task="selection",
                    images=[png(c) for c in cols],
                    question=f"Which image is {cols[1]}? ({i})",
                    answer_type="image_index",
                    answer=2,
                    split="test",
                )
            )
        else:
            samples.append(
                Sample(
                    task="grounding",
                    images=[png(c) for c in cols],
                    question=f"Box the square in image 1. ({i})",
                    answer_type="bbox",
                    answer=[10, 10, 60, 60],
                    evidence=[Evidence(1, (10, 10, 60, 60))],
                    split="test",
                )
            )
    write_dataset(samples, folder)
    return folder


def _recorded(model, cfg, greedy):
    from miva.agent.coords import Frame
    from miva.agent.trajectory import Trajectory, Turn

    def generate(samples, es, n):
        out = []
        for s in samples:
            frames = [Frame(112, 112, 112, 112)] * len(s.images)
            out.append(
                [
                    Trajectory(
                        s.id,
                        [0] * 8,
                        [1] * 8,
                        [0.0] * 8,
                        0,
                        [Turn("assistant", "")],
                        answer="2" if s.answer_type == "image_index" else "[10, 10, 60, 40]",
                        frames=frames,
                    )
                    for _ in range(n)
                ]
            )
        return out

    return generate


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=16, help="evaluate.batch_size")
    args = ap.parse_args()
    import torch

    from miva.config import load_config
    from miva.eval.outputs import write_outputs
    from miva.eval.runner import agent_generator, run_eval

    cfg = load_config(
        "tiny-cpu", [f"evaluate.max_items={args.items}", f"evaluate.batch_size={args.batch_size}"]
    )
    load_s: list[float] = []

    def timed_agent(model, cfg, greedy):
        t0 = time.perf_counter()
        generate = agent_generator(model, cfg, greedy)
        load_s.append(time.perf_counter() - t0)
        return generate

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ds = _synthetic_dataset(Path(tmp) / "ds", args.items)
        t0 = time.perf_counter()
        result = run_eval(cfg, "tiny-random", dataset=str(ds), generate_factory=timed_agent)
        write_outputs(result, Path(tmp) / "out1")
        dt = time.perf_counter() - t0 - load_s[0]
        turns = result.metrics["eval/test/overall/mean_turns"]
        tokens = result.metrics["eval/test/overall/tokens_per_sample"]
        rows.append(
            (
                f"tiny-random, greedy rollouts (mean {turns:.2f} turns, {tokens:.0f} sampled "
                f"tokens/item) + scoring + outputs; model load {load_s[0]:.1f} s not counted",
                args.items,
                dt,
            )
        )
        t0 = time.perf_counter()
        recorded = run_eval(cfg, "recorded", dataset=str(ds), generate_factory=_recorded)
        write_outputs(recorded, Path(tmp) / "out2")
        dt = time.perf_counter() - t0
        rows.append(
            ("scoring + metrics + parquet + HTML report (recorded answers)", args.items, dt)
        )
    a = cfg.agent
    print(
        f"torch threads {torch.get_num_threads()}, batch {args.batch_size}, agent "
        f"max_turns {a.max_turns}, max_new_tokens {a.max_new_tokens}, tools {a.tools}, "
        "3 images of 112x112 per item\n"
    )
    print("| what | items | seconds | items/s |\n|---|---|---|---|")
    for what, n, dt in rows:
        print(f"| {what} | {n} | {dt:.2f} | {n / dt:.2f} |")
    print(
        f"\ncommand: .venv/bin/python bench/eval.py --items {args.items} --batch-size {args.batch_size}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Cost of the attention-to-image pass (`evaluate.attention_diagnostics`) against the forward
pass the trainer already makes (`agent.forward.token_logprobs`, sdpa), on the tiny model.

Each trajectory: a prompt with 3 images (112 px: 16 image tokens each), then `--tokens`
sampled tokens in two turns separated by a tool result that brings one more image.

    .venv/bin/python bench/attention.py --tokens 256 1024 2048 --repeats 3
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(processor, n_sampled: int, seed: int):
    import torch
    from PIL import Image

    from miva.agent.trajectory import Trajectory

    rng = random.Random(seed)
    tok = processor.tokenizer
    image_id = processor.token_id("<|image_pad|>")
    # sampled text: ids of plain words (random ids could hit image placeholders)
    ordinary = sorted(set(tok.encode("the red square is in image two left of a blue circle")))
    ids, mask, pixels, grids = [], [], [], []

    def text(s, sampled=False):
        new = tok.encode(s, add_special_tokens=False)
        ids.extend(new)
        mask.extend([int(sampled)] * len(new))

    def image(color):
        out = processor.image_processor(
            images=[Image.new("RGB", (112, 112), color)], return_tensors="pt"
        )
        n = int(out["image_grid_thw"][0].prod()) // processor.merge_size**2
        new = [processor.token_id("<|vision_start|>"), *[image_id] * n]
        new.append(processor.token_id("<|vision_end|>"))
        ids.extend(new)
        mask.extend([0] * len(new))
        pixels.append(out["pixel_values"])
        grids.append(out["image_grid_thw"])

    def sampled(n):
        ids.extend(rng.choice(ordinary) for _ in range(n))
        mask.extend([1] * n)

    text("<|im_start|>user\nWhich image shows the red square?")
    for color in ("red", "green", "blue"):
        image(color)
    text("<|im_end|>\n<|im_start|>assistant\n")
    sampled(n_sampled // 2)
    text("<|im_end|>\n<|im_start|>user\n<tool_response>zoom</tool_response>")
    image("white")
    text("<|im_end|>\n<|im_start|>assistant\n")
    sampled(n_sampled - n_sampled // 2)
    return Trajectory(
        sample_id=f"bench-{n_sampled}",
        token_ids=ids,
        loss_mask=mask,
        sampled_logprobs=[0.0] * len(ids),
        prompt_length=mask.index(1),
        pixel_values=torch.cat(pixels),
        image_grid_thw=torch.cat(grids),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import os

    import torch

    from miva.agent.forward import collate, token_logprobs
    from miva.agent.model import load_model
    from miva.eval.attention import trajectory_attention

    torch.set_num_threads(args.threads)
    model, processor = load_model("tiny-random")
    print(f"load average {os.getloadavg()[0]:.2f}, torch threads {args.threads}")
    print(
        "| sampled tokens | sequence length | forward (sdpa) s | attention pass (eager) s | ratio |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n in args.tokens:
        traj = build(processor, n, seed=n)
        with torch.no_grad():
            token_logprobs(model, collate([traj], processor))  # warm-up
        fwd, att = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with torch.no_grad():
                token_logprobs(model, collate([traj], processor))
            fwd.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            trajectory_attention(model, processor, traj)
            att.append(time.perf_counter() - t0)
        f, a = min(fwd), min(att)
        print(f"| {n} | {len(traj.token_ids)} | {f:.3f} | {a:.3f} | {a / f:.1f} |")
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

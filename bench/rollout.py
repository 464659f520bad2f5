"""Rollout throughput: tokens the engine generates per second, caches on and off.

CPU (measured here): the tiny-random model, a batch of 8 prompts x 8 samples = 64
trajectories, synthetic 2-3 image questions. Three workloads:
- `sampled`: the model writes every turn (an untrained model never calls a tool, so each
  trajectory ends after one turn at max_new_tokens);
- `multi-turn`: every turn runs through the engine; turns 1..T-1 are teacher-forced to the
  gold tool call (zoom into the evidence: a new image enters the context; `ReplayTurns`),
  the last turn is sampled, so each turn costs what a sampled one does and the sequences
  grow by tool turns and images between engine calls (what GRPO rollouts cost once the
  policy uses tools). Counts every token the engine produced (forced or sampled);
- `multi-turn-scripted`: the earlier definition of `multi-turn` (bench/RESULTS.md before
  2026-11-27): turns 1..T-1 are replayed outside the model (`ScriptedEngine`) and only the
  last turn runs through the engine; counts the model-sampled tokens.
`--cache off on` (default) runs each workload with the hf engine's KV cache and vision
cache off and on, interleaved `--repeats` times, and prints the medians and their ratio;
`--before-engine OTHER/src/miva/agent/engines/hf.py` adds another checkout's engine (the
`generate`-based one before the caches) on the workloads it can run. Wall and CPU time of
the process are both given: on a shared machine the CPU time is the steadier measure.
Also the torch intra-op thread count, which matters a lot on a shared 2-core box.

GPU (NOT MEASURED here, no GPU): `--engine vllm --size 3b` builds a random model of
Qwen2.5-VL-3B size (same dims as the public config) and compares hf and vllm on it:

    .venv/bin/python bench/rollout.py                                  # CPU table
    .venv/bin/python bench/rollout.py --size 3b --engine hf vllm --device cuda   # GPU
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QWEN25_VL_3B = dict(  # public Qwen2.5-VL-3B-Instruct dimensions
    text=dict(
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        max_position_embeddings=32768,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 1000000.0,
            "mrope_section": [16, 24, 24],
        },
    ),
    vision=dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=2048,
        fullatt_block_indexes=[7, 15, 23, 31],
        window_size=112,
    ),
)


def samples(n: int, seed: int = 0):
    import random

    from PIL import Image, ImageDraw

    from miva.data.schema import Evidence, Sample, encode_png

    rng = random.Random(seed)
    colours = {"red": (230, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 230)}
    out = []
    for i in range(n):
        k = rng.randint(2, 3)
        target = rng.randrange(k)
        imgs, ev = [], None
        for j in range(k):
            img = Image.new("RGB", (448, 448), (215, 215, 215))
            x, y = rng.randint(0, 300), rng.randint(0, 300)
            name = "red" if j == target else rng.choice(["green", "blue"])
            ImageDraw.Draw(img).rectangle((x, y, x + 100, y + 100), fill=colours[name])
            if j == target:
                ev = Evidence(j + 1, (x, y, x + 100, y + 100))
            imgs.append(encode_png(img))
        out.append(
            Sample(
                task="selection",
                images=imgs,
                question=f"Which image shows the red square? ({i})",
                answer_type="image_index",
                answer=target + 1,
                evidence=[ev],
            )
        )
    return out


class GoldThenModel:
    """Turns before the last replay the gold zoom call; the last turn is sampled by `engine`."""

    def __init__(self, engine, processor, scripts, n_per_sample, last_turn):
        from miva.agent.engines.scripted import ScriptedEngine

        self.engine, self.last_turn = engine, last_turn
        self.scripted = ScriptedEngine(processor, lambda key, turn: scripts[key // n_per_sample])

    def generate(self, requests, seed):
        if requests and requests[0].turn < self.last_turn:
            return self.scripted.generate(requests, seed)
        return self.engine.generate(requests, seed)

    def release(self):
        from miva.agent.engines.base import release

        release(self.engine)


def zoom_call(sample, processor):
    from miva.agent import coords
    from miva.agent.assembly import encode_image

    ev = sample.evidence[0]
    frame = encode_image(sample.image(ev.image), processor).frame
    box = coords.to_model(ev.bbox, frame, processor.family)
    return (
        "<tool_call>"
        + json.dumps({"name": "zoom", "arguments": {"image": ev.image, "bbox": box}})
        + "</tool_call>"
    )


def build_random_3b(folder: Path, device: str):
    """A randomly initialised model of Qwen2.5-VL-3B size with the tiny preset's tokenizer."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from miva.agent.model import build_tiny, load_processor, vl_config
    from miva.agent.tokenizer import QWEN_SPECIAL_TOKENS

    tiny = build_tiny(folder.parent / "tiny-for-3b")
    proc = load_processor(tiny)
    special = {t: proc.token_id(t) for t in QWEN_SPECIAL_TOKENS}
    cfg = vl_config(
        151936, special, QWEN25_VL_3B["text"], QWEN25_VL_3B["vision"], tie_word_embeddings=True
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration(cfg).to(torch.bfloat16)
    model.save_pretrained(folder)
    proc.tokenizer.save_pretrained(folder)
    proc.image_processor.save_pretrained(folder)
    return folder


def load_engine_module(path: str):
    """An `hf.py` of another checkout, loaded under its own name (it imports this
    checkout's `miva.agent` helpers, whose interface it shares)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("before_hf", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(engine_name: str, mode: str, cache: str, model, processor, model_path, args) -> dict:
    from miva.agent.engines import make_engine
    from miva.agent.engines.replay import ReplayTurns
    from miva.agent.rollout import Agent
    from miva.agent.tools import build_tools
    from miva.config import AgentConfig

    turns = 1 if mode == "sampled" else args.turns
    on = cache == "on"
    cfg = AgentConfig(
        max_turns=turns,
        max_new_tokens=args.max_new_tokens,
        temperature=1.0,
        kv_cache=on,
        vision_cache=on,
    )
    tools = build_tools(cfg)
    kwargs = {}
    if engine_name == "vllm":
        kwargs = dict(
            model_path=str(model_path), dtype="bfloat16", min_pixels=56 * 56, max_pixels=112 * 112
        )
    if cache == "before":  # the engine of another checkout (its hf.py), same workload
        base = load_engine_module(args.before_engine).HFEngine(model, processor, 1.0, 1.0)
    else:
        base = make_engine(engine_name, model, processor, cfg, **kwargs)
    engine = base
    batch = samples(args.prompts, seed=1)
    if mode != "sampled":
        scripts = [zoom_call(s, processor) for s in batch]
        last = turns - 1
        if mode == "multi-turn":
            n = args.samples

            def forced(key, turn):
                return scripts[key // n] if turn < last else None

            engine = ReplayTurns(base, processor.tokenizer, forced)
        else:
            engine = GoldThenModel(base, processor, scripts, args.samples, last_turn=last)
    agent = Agent(processor, cfg, tools, engine)
    if mode == "multi-turn":  # the warm-up prompts have other scripts: no replay there
        agent.engine = base
    agent.rollout(samples(2, seed=99), n_per_sample=2, seed=0)  # warm-up
    agent.engine = engine
    stats = dict(getattr(base, "stats", {}))
    vc = getattr(base, "vision_cache", None)
    encoded_before = vc.misses if vc is not None else 0
    t0, c0 = time.perf_counter(), time.process_time()
    trajs = agent.rollout(batch, n_per_sample=args.samples, seed=0)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    if mode == "multi-turn-scripted":
        model_tokens = sum(sum(1 for x in t.sampled_logprobs if x != 0.0) for t in trajs)
    else:
        model_tokens = sum(t.num_sampled_tokens for t in trajs)
    after = getattr(base, "stats", {})
    return {
        "engine": engine_name,
        "workload": mode,
        "caches": cache if engine_name == "hf" else "-",
        "trajectories": len(trajs),
        "turns": max(t.num_turns for t in trajs),
        "images/traj": sum(len(t.images) for t in trajs) / len(trajs),
        "model tokens": model_tokens,
        "seconds": dt,
        "tokens/s": model_tokens / dt,
        "CPU s": cpu,
        "tokens/CPU s": model_tokens / cpu,
        "prefilled": after.get("prefill_tokens", 0) - stats.get("prefill_tokens", 0),
        "reused": after.get("reused_tokens", 0) - stats.get("reused_tokens", 0),
        "images encoded": vc.misses - encoded_before if vc is not None else "-",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["tiny", "3b"], default="tiny")
    p.add_argument("--engine", nargs="+", default=["hf"], choices=["hf", "vllm"])
    p.add_argument(
        "--workload",
        nargs="+",
        default=["sampled", "multi-turn", "multi-turn-scripted"],
        choices=["sampled", "multi-turn", "multi-turn-scripted"],
    )
    p.add_argument(
        "--cache", nargs="+", default=["off", "on"], choices=["off", "on"], help="hf engine caches"
    )
    p.add_argument("--repeats", type=int, default=1, help="interleaved repetitions")
    p.add_argument(
        "--before-engine",
        default=None,
        help="an hf.py of another checkout (e.g. /work/main/src/miva/agent/engines/hf.py): adds "
        "its engine as caches=before on the workloads it can run (sampled, multi-turn-scripted; "
        "it has no teacher forcing)",
    )
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--turns", type=int, default=3)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument(
        "--threads", type=int, nargs="+", default=[1, 2], help="torch intra-op threads (CPU)"
    )
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    import torch

    from miva.agent.model import load_model

    tmp = Path(tempfile.mkdtemp(prefix="miva-bench-"))
    model_path = (
        "tiny-random"
        if args.size == "tiny"
        else str(build_random_3b(tmp / "random-3b", args.device))
    )
    model, processor = load_model(
        model_path, device=args.device, dtype="float32" if args.size == "tiny" else "bfloat16"
    )
    import os
    import statistics

    rows = []
    threads = args.threads if args.device == "cpu" else [torch.get_num_threads()]
    print(f"load average at start: {os.getloadavg()}", file=sys.stderr)
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        for engine_name in args.engine:
            for mode in args.workload:
                runs: dict[str, list[dict]] = {}
                for _ in range(args.repeats):  # interleaved: off, on, off, on, ...
                    modes = list(args.cache) if engine_name == "hf" else ["-"]
                    if args.before_engine and engine_name == "hf" and mode != "multi-turn":
                        modes = ["before", *modes]
                    for cache in modes:
                        row = run(engine_name, mode, cache, model, processor, model_path, args)
                        row["threads"] = n_threads
                        row["load"] = os.getloadavg()[0]
                        runs.setdefault(cache, []).append(row)
                        print(json.dumps(row), file=sys.stderr)
                for cache, got in runs.items():
                    row = dict(got[0])
                    for k in ("seconds", "tokens/s", "CPU s", "tokens/CPU s"):
                        row[k] = statistics.median(r[k] for r in got)
                    row["load"] = statistics.mean(r["load"] for r in got)
                    for base in ("off", "before"):
                        if cache == "on" and base in runs:  # speed-up, wall and CPU
                            w = statistics.median(r["tokens/s"] for r in runs[base])
                            c = statistics.median(r["tokens/CPU s"] for r in runs[base])
                            row[f"on/{base}"] = (
                                f"{row['tokens/s'] / w:.2f} ({row['tokens/CPU s'] / c:.2f})"
                            )
                    rows.append(row)
    cols = [
        "engine",
        "workload",
        "caches",
        "threads",
        "trajectories",
        "turns",
        "images/traj",
        "model tokens",
        "prefilled",
        "reused",
        "images encoded",
        "seconds",
        "tokens/s",
        "CPU s",
        "tokens/CPU s",
        "on/off",
        "on/before",
        "load",
    ]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print(
            "| "
            + " | ".join(
                f"{r[c]:.2f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols
            )
            + " |"
        )
    print(
        f"\nload average at end: {os.getloadavg()}; times are medians of {args.repeats} "
        "interleaved runs; on/off and on/before: speed-up in tokens/s, wall (CPU time of the process)"
    )
    print(
        f"\nmodel: {args.size} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), device {args.device}, "
        f"{args.prompts} prompts x {args.samples} samples, max_new_tokens {args.max_new_tokens}"
    )
    print("command: .venv/bin/python bench/rollout.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()

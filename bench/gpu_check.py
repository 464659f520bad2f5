"""GPU check: multi-turn rollouts and GRPO steps of a Qwen2.5-VL-3B-size model on one GPU, in
minutes, with nothing downloaded.

    make gpu-wheels                      # on the CPU machine: build/gpu-wheels (< 64 MiB)
    make gpu-check                       # on the GPU machine: installs them, runs this
    python bench/gpu_check.py --smoke    # the same code on the tiny model on a CPU

What runs: a randomly initialised model with the public Qwen2.5-VL-3B dimensions (built
from its config in bf16 on the GPU; the tiny preset's tokenizer and image processor), the
real GRPO trainer (`GRPOTrainer`) with DeepSpeed ZeRO-2, bf16 and gradient checkpointing,
and hf-engine rollouts on synthetic multi-image questions (bench/rollout.py's). A random
model never calls a tool, so the first turns of every trajectory replay zoom calls (each
puts a crop into the context as a new image) and the last turn is sampled by the model:
generation runs on contexts grown by tool turns and images, as in real agent training.
The replayed turns carry log-prob 0 (no model sampled them), so the trainer's
train/logp_mismatch_* here are not a measurement and the table leaves them out.

Reported (one warm-up step, then timed steps; medians): step time, its rollout and update
parts, model-sampled tokens per second of the rollout (end to end, tools and image
processing included) and of `generate` alone, peak GPU memory, and the model FLOPs
utilisation of the update: model FLOPs (miva.rl.flops: 6N per token plus attention, LM
head on response positions, vision tower on patches) / update time / the device's dense
bf16 peak. The denominator is the data-sheet peak of the device found by name (H100 SXM and
H200: 989 TFLOP/s, H100 PCIe 756, A100 312; --peak-tflops overrides), and the table also
gives MFU against the bf16 matmul rate this script measures on the same device (8192^3,
about 790 TFLOP/s on an H200). Writes a JSON file and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rollout import QWEN25_VL_3B, samples  # noqa: E402  (bench/rollout.py)

# What the random 3B model's rollouts and updates look like (GPU defaults).
GPU_WORKLOAD = dict(
    prompts=8, group=4, micro_batch=8, turns=3, max_new_tokens=64, warmup=1, steps=3
)
SMOKE_WORKLOAD = dict(prompts=2, group=2, micro_batch=2, turns=2, max_new_tokens=8, warmup=1, steps=1)  # fmt: skip
GPU_PIXELS = (56 * 56, 224 * 224)  # min / max pixels per image
SMOKE_PIXELS = (56 * 56, 112 * 112)


class ZoomThenModel:
    """Turns before the last replay zoom calls (image 1's top-left quarter, then image 2's
    centre), so images enter the context; the last turn is sampled by the real engine.
    Counts the tokens the engine sampled and the time it took."""

    def __init__(self, engine: Any, processor: Any, last_turn: int):
        self.engine, self.processor, self.last_turn = engine, processor, last_turn
        self.sampled_tokens = 0
        self.generate_s = 0.0

    def _zoom(self, request: Any) -> str:
        k = min(request.turn, len(request.image_grid_thw) - 1)
        _, h, w = (int(v) * self.processor.patch_size for v in request.image_grid_thw[k])
        box = (
            [0, 0, w // 2, h // 2]
            if request.turn == 0
            else [w // 4, h // 4, 3 * w // 4, 3 * h // 4]
        )
        call = {"name": "zoom", "arguments": {"image": k + 1, "bbox": box}}
        return f"<tool_call>{json.dumps(call)}</tool_call>"

    def generate(self, requests: list[Any], seed: int) -> list[Any]:
        from miva.agent.engines.base import GenResult

        if requests and requests[0].turn < self.last_turn:
            tok = self.processor.tokenizer
            out = []
            for r in requests:
                ids = tok.encode(self._zoom(r), add_special_tokens=False)
                out.append(GenResult(ids, [0.0] * len(ids), True))
            return out
        t0 = time.perf_counter()
        results = self.engine.generate(requests, seed)
        self.generate_s += time.perf_counter() - t0
        self.sampled_tokens += sum(len(r.token_ids) for r in results)
        return results


def random_3b(device: str, min_pixels: int, max_pixels: int) -> tuple[Any, Any]:
    """A randomly initialised model of Qwen2.5-VL-3B size, built in bf16 on `device`."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from miva.agent.model import build_tiny, load_processor, vl_config
    from miva.agent.tokenizer import QWEN_SPECIAL_TOKENS

    tiny = build_tiny(Path(tempfile.mkdtemp(prefix="miva-gpu-check-")) / "tiny")
    processor = load_processor(tiny, min_pixels=min_pixels, max_pixels=max_pixels)
    special = {t: processor.token_id(t) for t in QWEN_SPECIAL_TOKENS}
    config = vl_config(
        151936, special, QWEN25_VL_3B["text"], QWEN25_VL_3B["vision"], tie_word_embeddings=True
    )
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval(), processor


def towers(model: Any) -> tuple[Any, Any, int]:
    """(text tower, vision tower, vocabulary) of a Qwen2.5-VL model for the FLOP count."""
    from miva.rl.flops import Tower

    inner = model.model
    cfg = model.config
    text_cfg = cfg.text_config
    text = Tower(
        layers=text_cfg.num_hidden_layers,
        width=text_cfg.hidden_size,
        matmul_params=sum(p.numel() for p in inner.language_model.layers.parameters()),
    )
    vis = inner.visual
    merge = cfg.vision_config.spatial_merge_size**2
    # the merger runs once per merge window of patches: its weights count 1/merge per patch
    per_patch = sum(p.numel() for p in vis.blocks.parameters()) + sum(
        p.numel() for p in vis.patch_embed.parameters()
    )
    per_patch += sum(p.numel() for p in vis.merger.parameters()) // merge
    vision = Tower(
        layers=cfg.vision_config.depth, width=cfg.vision_config.hidden_size, matmul_params=per_patch
    )
    return text, vision, int(text_cfg.vocab_size)


def matmul_tflops(device: str, n: int, dtype_name: str, iters: int) -> float:
    """Measured rate of an n^3 matmul on `device` (TFLOP/s)."""
    import torch

    dtype = getattr(torch, dtype_name)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        a @ b
    sync(device)
    return 2 * n**3 * iters / (time.perf_counter() - t0) / 1e12


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_config(w: dict[str, int], pixels: tuple[int, int], on_gpu: bool, smoke: bool = False):
    from miva.config import load_config

    steps = w["warmup"] + w["steps"]
    return load_config(
        "tiny-cpu",
        [
            "agent.tools=[zoom, view]",
            # the tools' JSON schemas in the system prompt, as Qwen models expect; the smoke run
            # keeps the tiny preset's one-line tool list (a shorter prompt, seconds less)
            f"agent.prompt_style={'compact' if smoke else 'full'}",
            f"agent.max_turns={w['turns']}",
            f"agent.max_new_tokens={w['max_new_tokens']}",
            "agent.max_total_tokens=8192",
            f"agent.max_trajectory_pixels={pixels[1] * 8}",
            f"model.min_pixels={pixels[0]}",
            f"model.max_pixels={pixels[1]}",
            f"model.dtype={'bfloat16' if on_gpu else 'float32'}",
            "grpo.training_backend=deepspeed",
            "grpo.zero_stage=2",
            "grpo.gradient_checkpointing=true",
            f"grpo.prompts_per_step={w['prompts']}",
            f"grpo.group_size={w['group']}",
            f"grpo.micro_batch_size={w['micro_batch']}",
            # one more than runs: the trainer checkpoints its last step, which is not measured
            f"grpo.steps={steps + 1}",
            "grpo.checkpoint_every=1000000",
            "grpo.dynamic_sampling=false",
            "grpo.lr=1e-6",
            # a random model's trajectories are truncated or answer nothing: all train, so
            # every step runs a full update
            "grpo.status_policy={ok: train, truncated: train, malformed: train, "
            "tool_error: train, max_turns: train, image_budget: train}",
        ],
    )


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    import transformers

    from miva.rl import flops as F
    from miva.rl.grpo import GRPOTrainer

    started = time.perf_counter()
    on_gpu = args.device.startswith("cuda")
    if on_gpu and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU; use --smoke for the CPU check")
    w = dict(SMOKE_WORKLOAD if args.smoke else GPU_WORKLOAD)
    for key in w:
        value = getattr(args, key, None)
        if value is not None:
            w[key] = value
    pixels = SMOKE_PIXELS if args.smoke else GPU_PIXELS
    if args.smoke:
        from miva.agent.model import load_model

        model, processor = load_model(
            "tiny-random", min_pixels=pixels[0], max_pixels=pixels[1], device=args.device
        )
    else:
        model, processor = random_3b(args.device, *pixels)
    text, vision, vocab = towers(model)
    n_params = sum(p.numel() for p in model.parameters())
    cfg = train_config(w, pixels, on_gpu, smoke=args.smoke)
    out_dir = Path(tempfile.mkdtemp(prefix="miva-gpu-check-run-"))
    timed: list[dict[str, Any]] = []
    shapes: dict[int, list[Any]] = {}
    progress = {"step": 0}

    def after_step(step: int, _model: Any) -> None:
        progress["step"] = step
        print(f"  step {step} done at {time.perf_counter() - started:.0f} s", flush=True)
        if step == w["warmup"] and on_gpu:
            torch.cuda.reset_peak_memory_stats()
        if time.perf_counter() - started > args.budget_s:  # stop early, keep what ran
            trainer.stop_after = step
        return None

    trainer = GRPOTrainer(
        cfg,
        "unused: the policy is given",
        "unused: the samples are given",
        str(out_dir),
        progress=False,
        stop_after=w["warmup"] + w["steps"],
        samples=samples(max(w["prompts"] * (w["warmup"] + w["steps"]), 8), seed=1),
        policy=(model, processor),
        log_fn=after_step,
    )
    zoom = ZoomThenModel(trainer.rollout_engine, processor, last_turn=w["turns"] - 1)
    trainer.agent.engine = zoom
    real_update = trainer._update

    def update_with_shapes(batch: Any, adv: Any) -> dict[str, float]:
        shapes[progress["step"] + 1] = [
            F.SequenceShape(
                tokens=len(t.token_ids),
                head_positions=len(t.token_ids) - t.prompt_length,
                image_patches=[int(g.prod()) for g in t.image_grid_thw],
            )
            for t in batch.trajectories
        ]
        return real_update(batch, adv)

    trainer._update = update_with_shapes
    # the model folder (7 GB of random weights) and the curves are not what this measures
    trainer._finish = lambda: None
    counts: dict[int, tuple[int, float]] = {}
    real_collect = trainer._collect

    def collect_and_count(step: int) -> Any:
        before = (zoom.sampled_tokens, zoom.generate_s)
        batch = real_collect(step)
        counts[step] = (zoom.sampled_tokens - before[0], zoom.generate_s - before[1])
        return batch

    trainer._collect = collect_and_count
    trainer.run()
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if on_gpu else float("nan")

    if on_gpu:
        measured = matmul_tflops(args.device, 8192, "bfloat16", 20)
        name = torch.cuda.get_device_name()
    else:
        measured = matmul_tflops(args.device, 512, "float32", 10)
        name = (
            f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
        )
    spec = args.peak_tflops * 1e12 if args.peak_tflops else F.peak_bf16_flops(name)
    for row in trainer.logger.history:
        step = int(row["step"])
        if step <= w["warmup"] or step not in shapes:
            continue
        model_flops = F.update_flops(
            text, vocab, shapes[step], mu=cfg.grpo.mu, reference=cfg.grpo.beta > 0, vision=vision
        )
        upd = row["perf/update_time_s"]
        tokens, gen_s = counts[step]
        timed.append(
            {
                "step": step,
                "step_time_s": row["perf/step_time_s"],
                "rollout_time_s": row["perf/rollout_time_s"],
                "update_time_s": upd,
                "trajectories": len(shapes[step]),
                "train_tokens": sum(s.tokens for s in shapes[step]),
                "sampled_tokens": tokens,
                "rollout_tokens_per_s": tokens / row["perf/rollout_time_s"],
                "generate_tokens_per_s": tokens / gen_s if gen_s else float("nan"),
                "update_tflops": model_flops / upd / 1e12,
                "mfu": F.mfu(model_flops, upd, spec) if spec else float("nan"),
                "mfu_vs_measured_matmul": F.mfu(model_flops, upd, measured * 1e12),
            }
        )
    if not timed:
        raise SystemExit("no timed step finished (raise --budget-s or lower the workload)")

    def median(key: str) -> float:
        return statistics.median(r[key] for r in timed)

    import deepspeed

    return {
        "device": name,
        "smoke": bool(args.smoke),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "deepspeed": deepspeed.__version__,
        "model": "tiny-random" if args.smoke else "random Qwen2.5-VL-3B size",
        "parameters": n_params,
        "workload": w | {"min_pixels": pixels[0], "max_pixels": pixels[1]},
        "engine": "deepspeed ZeRO-2, " + ("bf16" if on_gpu else "fp32") + ", grad checkpointing",
        "spec_peak_tflops": spec / 1e12 if spec else None,
        "measured_matmul_tflops": measured,
        "steps": timed,
        "step_time_s": median("step_time_s"),
        "rollout_time_s": median("rollout_time_s"),
        "update_time_s": median("update_time_s"),
        "rollout_tokens_per_s": median("rollout_tokens_per_s"),
        "generate_tokens_per_s": median("generate_tokens_per_s"),
        "update_tflops": median("update_tflops"),
        "mfu": median("mfu"),
        "mfu_vs_measured_matmul": median("mfu_vs_measured_matmul"),
        "peak_memory_gib": peak_mem,
        "wall_s": time.perf_counter() - started,
    }


def table(r: dict[str, Any]) -> str:
    def f(x: Any, fmt: str) -> str:
        return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)

    rows = [
        ("device", r["device"]),
        ("model", f"{r['model']} ({r['parameters'] / 1e9:.2f} B parameters)"),
        ("engine", r["engine"]),
        ("workload", json.dumps(r["workload"])),
        ("timed steps", str(len(r["steps"]))),
        ("step time (s)", f(r["step_time_s"], ".2f")),
        ("  rollout (s)", f(r["rollout_time_s"], ".2f")),
        ("  update (s)", f(r["update_time_s"], ".2f")),
        ("rollout tokens/s (end to end)", f(r["rollout_tokens_per_s"], ".0f")),
        ("generate tokens/s", f(r["generate_tokens_per_s"], ".0f")),
        ("peak GPU memory (GiB)", f(r["peak_memory_gib"], ".1f")),
        ("update model TFLOP/s", f(r["update_tflops"], ".1f")),
        ("peak (data sheet) TFLOP/s", f(r["spec_peak_tflops"], ".0f")),
        ("MFU of the update", f(r["mfu"], ".1%")),
        ("matmul measured TFLOP/s", f(r["measured_matmul_tflops"], ".0f")),
        ("MFU vs measured matmul", f(r["mfu_vs_measured_matmul"], ".1%")),
        ("wall time (s)", f(r["wall_s"], ".0f")),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"| {k.ljust(width)} | {v} |" for k, v in rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="the tiny model on the CPU, seconds")
    p.add_argument("--device", help="cuda (default) or cpu (default with --smoke)")
    p.add_argument("--out", default="gpu-check.json", help="JSON result file")
    p.add_argument("--peak-tflops", type=float, help="device peak for MFU (default: by name)")
    p.add_argument("--budget-s", type=float, default=420.0, help="stop stepping after this")
    for key in GPU_WORKLOAD:
        p.add_argument(f"--{key.replace('_', '-')}", type=int, dest=key)
    args = p.parse_args(argv)
    args.device = args.device or ("cpu" if args.smoke else "cuda")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = run_check(args)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(table(result))
    print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()

"""SFT cold start (`miva sft`): gold trajectories built from the samples, then NLL training.

A gold trajectory is what a good agent would write, run through the real agent runtime (a
scripted engine emits the text, the real tools answer), so its tokens, images and masks are
exactly what GRPO will later see:

    turn 1 (when the sample has evidence and zoom is offered):
        <think>Look at image k.</think><tool_call>{"name": "zoom", "arguments": {"image": k, "bbox": [...]}}</tool_call>
    last turn:
        <think>Image 1: <caption>. Image 2: <caption>.</think><answer>GOLD</answer>

Captions come from ``sample.meta["captions"]`` (describe-then-answer makes multi-image tasks
learnable for a tiny model; REFERENCE.md) and are shortened to fit ``agent.max_new_tokens``.
Training is full fine-tuning or LoRA (peft; merged into the weights before saving).
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miva.errors import DataError


def _zoom_turn(
    sample: Any, frames: Sequence[Any], family: str, demo_accuracy: float = 1.0
) -> tuple[str, bool] | None:
    """The gold zoom call and whether it shows the evidence. Samples whose query names a
    grid cell (`closeup`) zoom by region name; with `demo_accuracy` < 1 a seeded share of
    them zooms into another cell instead (an imperfect demonstrator); others zoom on the
    evidence box in model coordinates."""
    from miva.agent import coords

    if not sample.evidence:
        return None
    ev = sample.evidence[0]
    query = sample.meta.get("query") if isinstance(sample.meta, dict) else None
    region = query.get("region") if isinstance(query, dict) else None
    hit = True
    if region:
        from miva.agent.tools.zoom import REGIONS

        rng = random.Random(f"zoom-demo:{sample.id}")
        if rng.random() >= demo_accuracy:
            region, hit = rng.choice(sorted(r for r in REGIONS if r != region)), False
        args: dict[str, Any] = {"image": int(ev.image), "region": region}
        where = f"the {region} of image {ev.image}"
    else:
        args = {
            "image": int(ev.image),
            "bbox": coords.to_model(ev.bbox, frames[ev.image - 1], family),
        }
        where = f"image {ev.image}"
    call = json.dumps({"name": "zoom", "arguments": args})
    return f"<think>Look at {where}.</think><tool_call>{call}</tool_call>", hit


_STOP = {"a", "an", "the", "of", "in", "is", "at", "which", "one", "images", "image", "with", "and"}


_ONE_HOLDER = ("selection", "group_grounding")  # exactly one image holds the target


def _unasked_words(target: dict[str, Any] | None) -> set[str]:
    """Caption words naming attributes the question's target does not name ("large" and
    "circle" when the question asks for "the blue object"): describing only what was
    asked keeps the gold short and its every word useful."""
    from miva.data.synth.scene import COLOURS, SHAPES, SIZES, TEXTURES

    if not isinstance(target, dict):
        return set()
    vocab = {"size": SIZES, "colour": tuple(COLOURS), "shape": SHAPES, "texture": TEXTURES}
    return {w for key, words in vocab.items() if key not in target for w in words}


def _descriptions(sample: Any, max_words: int) -> list[str]:
    """Per image, the caption clause that shares the most words with the question (the
    object to look for), without its position and without the attributes the question
    does not name: "Image 2: small blue triangle."; for one-holder families with a
    yes/no mark: "Image 2: blue, yes."; for a question about one image, that image alone."""
    meta = sample.meta if isinstance(sample.meta, dict) else {}
    caps = meta.get("captions")
    if not caps:
        return []
    query = {w.strip("?.,:'").lower() for w in sample.question.split()} - _STOP
    spec = meta.get("query") or {}
    target = spec.get("target")
    if isinstance(target, dict) and spec.get("ask"):
        target = {**target, spec["ask"]: None}  # the asked attribute is described too
    unasked = _unasked_words(target)
    keep_label = isinstance(target, dict) and "label" in target
    only = spec.get("image")  # a question about one image describes that image alone
    # "which image shows X" families: each image is marked yes or no, so that the answer is
    # the image marked yes instead of a match between the question and the descriptions
    holders = {e.image for e in sample.evidence} if sample.task in _ONE_HOLDER else None
    out = []
    for k, cap in enumerate(caps, 1):
        if only is not None and k != int(only):
            continue
        clauses = [c.strip().split(" at ")[0] for c in str(cap).split(",") if c.strip()] or [""]
        best = max(clauses, key=lambda c: len(query & {w.strip("'").lower() for w in c.split()}))
        if not keep_label and isinstance(target, dict):
            best = best.split(" labelled ")[0]
        words = [w for w in best.split() if w.lower() not in ("a", "an") and w not in unasked]
        mark = "" if holders is None else (", yes" if k in holders else ", no")
        out.append(f"Image {k}: " + " ".join(words[:max_words]) + mark + ".")
    return out


def gold_texts(
    sample: Any, frames: Sequence[Any], family: str, cfg: Any, tokenizer: Any
) -> list[str]:
    """The assistant turns of the gold trajectory, each fitting ``agent.max_new_tokens``."""
    from miva.agent.format import format_model_answer

    budget = cfg.agent.max_new_tokens
    turns: list[str] = []
    zoomed: bool | None = None  # None: no zoom; else whether the zoom shows the evidence
    if cfg.sft.use_tools and "zoom" in cfg.agent.tools and cfg.agent.max_turns > 1:
        zoom = _zoom_turn(sample, frames, family, cfg.sft.zoom_demo_accuracy)
        if zoom and len(tokenizer.encode(zoom[0], add_special_tokens=False)) <= budget:
            turns.append(zoom[0])
            zoomed = zoom[1]
    answer = f"<answer>{format_model_answer(sample, family, frames)}</answer>"
    final = answer
    by_region = isinstance(sample.meta, dict) and "region" in (sample.meta.get("query") or {})
    if cfg.sft.describe_images and not (by_region and zoomed is False):
        for words in (6, 4, 2, 1):
            parts = _descriptions(sample, words)
            if by_region and zoomed:
                # what the zoom shows is described as the image it added (the next number)
                n = len(sample.images) + 1
                parts = [re.sub(r"^Image \d+:", f"Image {n}:", p) for p in parts]
            desc = " ".join(parts)
            text = f"<think>{desc}</think>{answer}" if desc else answer
            if len(tokenizer.encode(text, add_special_tokens=False)) <= budget:
                final = text
                break
    turns.append(final)
    return turns


def build_gold(
    samples: Sequence[Any], processor: Any, cfg: Any, progress: bool = True
) -> list[Any]:
    """Gold trajectories (status ok, answer found) through the agent with a scripted engine."""
    from miva.agent.assembly import encode_image

    family = processor.family
    # a `no_tool_fraction` share of the samples is prompted without tools and answered
    # directly, so that one SFT model can start GRPO with tools and without
    plain = cfg.model_copy(
        update={"agent": cfg.agent.model_copy(update={"tools": [], "max_turns": 1})}
    )
    share = cfg.sft.no_tool_fraction
    good = []
    for part_cfg, wanted in ((cfg, False), (plain, True)):
        part = [
            s for s in samples if (random.Random(f"no-tools:{s.id}").random() < share) == wanted
        ]
        if not part:
            continue
        texts = []
        for s in part:
            frames = [encode_image(img, processor).frame for img in s.pil_images()]
            texts.append(gold_texts(s, frames, family, part_cfg, processor.tokenizer))
        good += scripted_trajectories(part, texts, processor, part_cfg.agent, progress)
    if not good:
        raise DataError("no gold trajectory could be built from the dataset (all truncated?)")
    return good


def scripted_trajectories(
    samples: Sequence[Any],
    texts: Sequence[Sequence[str]],
    processor: Any,
    agent_cfg: Any,
    progress: bool = False,
) -> list[Any]:
    """Run the real agent (tools included) with `texts[i][turn]` as sample i's assistant
    turns (the last text repeats); keep the trajectories that end ok with an answer."""
    from miva.agent.engines.scripted import ScriptedEngine
    from miva.agent.rollout import Agent
    from miva.agent.tools import build_tools

    def script(key: int, turn: int) -> str:
        own = texts[key]
        return own[min(turn, len(own) - 1)]

    agent = Agent(processor, agent_cfg, build_tools(agent_cfg), ScriptedEngine(processor, script))
    # the scripted engine is keyed by the trajectory's index within one rollout call
    trajs = []
    chunk = 32
    it = range(0, len(samples), chunk)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="gold trajectories", unit="chunk")
    for start in it:
        part = list(samples[start : start + chunk])

        def keyed(key: int, turn: int, offset: int = start) -> str:
            return script(offset + key, turn)

        agent.engine = ScriptedEngine(processor, keyed)
        trajs.extend(agent.rollout(part, 1, seed=0))
    return [t for t in trajs if t.status == "ok" and t.answer is not None]


@dataclass
class SFTResult:
    output: str
    steps: int
    final_loss: float
    gold: int
    seconds: float


def sft_loss(model: Any, trajectories: Sequence[Any], processor: Any):
    """Mean NLL over the gold assistant tokens of a batch."""
    from miva.agent.forward import collate, token_logprobs

    batch = collate(trajectories, processor)
    logp, _ = token_logprobs(model, batch)
    mask = batch.loss_mask.to(logp.device)
    return -(logp * mask).sum() / mask.sum().clamp(min=1.0), float(mask.sum())


def apply_lora(model: Any, lora_cfg: Any):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora_cfg.r,
        lora_alpha=lora_cfg.alpha,
        lora_dropout=lora_cfg.dropout,
        target_modules=list(lora_cfg.target_modules),
    )
    return get_peft_model(model, config)


def run_sft(
    cfg: Any,
    model_path: str,
    dataset: str,
    output: str,
    progress: bool = True,
    log_fn: Any = None,
) -> SFTResult:
    """Build gold trajectories, train, merge LoRA, save a `save_pretrained` folder."""
    import torch

    from miva.agent.model import save_model
    from miva.rl.backends import build_backend
    from miva.rl.metrics import MetricsLogger
    from miva.rl.setup import device_of, load_policy, load_training_samples
    from miva.storage import is_remote

    t0 = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    samples = load_training_samples(dataset, "train")
    model, processor = load_policy(model_path, cfg.model, device_of(cfg))
    gold = build_gold(samples, processor, cfg, progress)
    if cfg.sft.lora.enabled:
        model = apply_lora(model, cfg.sft.lora)
    model.train()
    backend = build_backend(
        "torch",
        model,
        lr=cfg.sft.lr,
        weight_decay=cfg.sft.weight_decay,
        warmup_steps=cfg.sft.warmup_steps,
        max_grad_norm=cfg.sft.max_grad_norm,
        device=device_of(cfg),
    )
    logger = MetricsLogger(
        Path(output) / "sft_metrics.jsonl" if not is_remote(output) else None,
        prefix="sft/",
    )
    rng = random.Random(cfg.seed)
    order: list[int] = []
    loss_value = math.nan
    bar = range(1, cfg.sft.steps + 1)
    if progress:
        from tqdm import tqdm

        bar = tqdm(bar, desc="sft", unit="step")
    skipped = 0
    for step in bar:
        if len(order) < cfg.sft.batch_size:
            perm = list(range(len(gold)))
            rng.shuffle(perm)
            order.extend(perm)
        idx, order = order[: cfg.sft.batch_size], order[cfg.sft.batch_size :]
        t_step = time.perf_counter()
        loss, tokens = sft_loss(backend.module, [gold[i] for i in idx], processor)
        if not torch.isfinite(loss):
            backend.zero_grad()
            skipped += 1
            continue
        backend.backward(loss)
        grad_norm = backend.step()
        loss_value = float(loss.detach())
        if step % cfg.sft.log_every == 0 or step == cfg.sft.steps:
            dt = time.perf_counter() - t_step
            logger.log(
                step,
                {
                    "loss": loss_value,
                    "grad_norm": grad_norm,
                    "lr": backend.lr,
                    "tokens_per_s": tokens / max(dt, 1e-9),
                    "skipped_steps": skipped,
                },
            )
            if log_fn:
                log_fn(step, backend.module)
        if progress:
            bar.set_postfix(loss=f"{loss_value:.3f}")
    model = backend.module
    if cfg.sft.lora.enabled:
        model = model.merge_and_unload()
    model.eval()
    save_model(model, processor, output)
    return SFTResult(output, cfg.sft.steps, loss_value, len(gold), time.perf_counter() - t0)

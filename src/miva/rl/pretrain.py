"""Caption pretraining (`miva pretrain`): teach a model to see before it learns tasks.

A randomly initialised tiny model given a task's gold trajectories learns the answer
format long before it uses its images; GRPO can then only sharpen near-uniform guesses
(REFERENCE.md, "Why GRPO has not beaten SFT"). Pretraining first teaches it to describe
synthetic scenes (`data/synth/captions.py`: every object's size, colour, shape and
position, object counts; one to three images; the resolutions the tiny preset uses),
on fresh scenes every step, so there is nothing to memorise.

    pretrain(cfg) -> PretrainResult     the loop: generate a chunk of caption samples, turn
                                        them into gold trajectories through the real agent
                                        runtime, NLL on the assistant tokens, AdamW with
                                        warm-up and cosine decay
    evaluate_captions(model, ...)       greedy descriptions of held-out scenes, graded per
                                        attribute against the scene graph

The result is saved as a `save_pretrained` folder with a model card (`card.json` and
`README.md`) whose weights checksum `load_model` verifies (`agent/model.py`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from miva.data.synth.captions import (
    ATTRIBUTES,
    CaptionSettings,
    caption_items,
    description_scores,
    mean_scores,
)
from miva.data.synth.scene import Scene

EVAL_PROBE = 64  # held-out samples scored during training (the full set at the end)


@dataclass
class PretrainResult:
    output: str
    steps: int
    minutes: float
    final_loss: float
    scores: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)


def caption_settings(p: Any) -> CaptionSettings:
    """CaptionSettings from a `PretrainConfig`."""
    return CaptionSettings(
        image_sizes=tuple(p.image_sizes),
        images=tuple(p.images_per_sample),
        coarse_p=p.coarse_fraction,
        max_objects=p.max_objects,
    )


def caption_agent(cfg: Any, tools: bool) -> Any:
    """One-turn agent settings for captions, with or without the tool line in the prompt."""
    return cfg.agent.model_copy(
        update={
            "tools": ["zoom", "view"] if tools else [],
            "max_turns": 1,
            "max_new_tokens": cfg.pretrain.max_new_tokens,
            "prompt_style": "compact",
            "temperature": 0.0,
        }
    )


def caption_trajectories(
    samples: Sequence[Any], processor: Any, cfg: Any, rng: random.Random
) -> list[Any]:
    """Gold trajectories of caption samples; a `tool_prompt_fraction` share of them is
    prompted with the tools line (so the model reads both system prompts later)."""
    from miva.rl.sft import scripted_trajectories

    share = cfg.pretrain.tool_prompt_fraction
    with_tools = [rng.random() < share for _ in samples]
    out = []
    for tools in (False, True):
        part = [s for s, t in zip(samples, with_tools, strict=True) if t == tools]
        if part:
            out += scripted_trajectories(
                part,
                [[s.meta["gold"]] for s in part],
                processor,
                caption_agent(cfg, tools),
            )
    rng.shuffle(out)
    return out


def length_batches(trajectories: Sequence[Any], size: int, rng: random.Random) -> list[list[Any]]:
    """Batches of trajectories of similar length, in random order: a batch is padded to its
    longest sequence, and caption lengths vary 3x, so sorting first saves about a third of
    the compute of random batches."""
    ordered = sorted(trajectories, key=lambda t: len(t.token_ids))
    batches = [ordered[i : i + size] for i in range(0, len(ordered), size)]
    rng.shuffle(batches)
    return batches


def evaluate_captions(
    model: Any, processor: Any, cfg: Any, samples: Sequence[Any], batch: int = 32
) -> dict[str, float]:
    """Greedy answers to held-out caption samples (no tools in the prompt), graded against
    their scenes: per-attribute accuracy of the descriptions (size, colour, shape,
    position; objects matched in reading order), `count` (images whose object count the
    description gets right), `count_answer` (accuracy on "How many objects ...?"),
    `exact` (whole description right) and `description_accuracy`, the mean of the four
    attribute accuracies (the model card's headline)."""
    import torch

    from miva.agent.engines import make_engine
    from miva.agent.rollout import Agent
    from miva.agent.tools import build_tools

    agent_cfg = caption_agent(cfg, tools=False)
    agent = Agent(
        processor, agent_cfg, build_tools(agent_cfg), make_engine("hf", model, processor, agent_cfg)
    )
    was_training = model.training
    model.eval()
    described: list[dict[str, float]] = []
    counted: list[float] = []
    with torch.no_grad():
        for i in range(0, len(samples), batch):
            part = list(samples[i : i + batch])
            for s, traj in zip(part, agent.rollout(part, 1, seed=0), strict=True):
                scene = Scene.from_dict(s.meta["scene"])
                if s.meta["kind"] == "count":
                    counted.append(float(str(traj.answer or "").strip() == str(s.answer)))
                else:
                    only = s.meta["image"] if s.meta["kind"] == "one" else None
                    described.append(description_scores(traj.answer or "", scene, only))
    if was_training:
        model.train()
    # a small probe can draw only one kind of question: the other kind's scores are NaN
    # (no items), not 0
    scores = {k: math.nan for k in (*ATTRIBUTES, "count", "exact")} | mean_scores(described)
    scores["count_answer"] = sum(counted) / len(counted) if counted else math.nan
    scores["description_accuracy"] = sum(scores[a] for a in ATTRIBUTES) / len(ATTRIBUTES)
    scores["items"] = float(len(samples))
    return scores


def pretrain(
    cfg: Any,
    output: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> PretrainResult:
    """Caption-pretrain `cfg.pretrain.init` and save it (with its card) to `output`."""
    import torch

    from miva.agent.model import save_model
    from miva.rl.metrics import MetricsLogger
    from miva.rl.schedule import schedule
    from miva.rl.setup import device_of, load_policy
    from miva.rl.sft import sft_loss

    p = cfg.pretrain
    out = Path(output or p.output)
    say = log or (lambda text: print(text, file=sys.stderr, flush=True))
    random.seed(p.seed)
    torch.manual_seed(p.seed)
    settings = caption_settings(p)
    first_stage = dataclasses.replace(settings, images=(1, 1), max_objects=1, kinds=(0.0, 1.0, 0.0))
    model, processor = load_policy(p.init, cfg.model, device_of(cfg))
    held_out = caption_items(p.eval_items, p.seed, settings, split="test")
    optimizer = torch.optim.AdamW(
        [q for q in model.parameters() if q.requires_grad], lr=p.lr, weight_decay=p.weight_decay
    )
    # the cosine decay follows whichever budget runs out first, steps or minutes, so a run
    # that the time budget stops still ends at the low rate (it is step-exact when the
    # minutes are not binding)
    decay = schedule(p.warmup_steps, p.steps, "cosine", p.min_lr_ratio)
    warmup = schedule(p.warmup_steps)
    # the training curve ships with the model, next to its card
    logger = MetricsLogger(out / "pretrain_metrics.jsonl", prefix="pretrain/")
    logger.truncate_after(-1)
    rng = random.Random(p.seed)
    model.train()
    queue: list[list[Any]] = []
    chunk_index = 0
    paused = 0.0  # evaluation time, taken off the training clock
    t0 = time.perf_counter()
    loss_value = math.nan
    bar: Any = range(1, p.steps + 1)
    if progress:
        from tqdm import tqdm

        bar = tqdm(bar, desc="pretrain", unit="step")
    step = 0
    for step in bar:
        minutes = (time.perf_counter() - t0 - paused) / 60
        done = step - 1
        if p.max_minutes is not None:
            done = max(done, int(p.steps * minutes / p.max_minutes))
        if done >= p.steps:
            say(f"pretrain: time budget of {p.max_minutes} minutes reached at step {step - 1}")
            step -= 1
            break
        for group in optimizer.param_groups:
            group["lr"] = p.lr * min(warmup(step - 1), decay(done))
        if not queue:
            # curriculum: one object in one image first, then busier scenes
            simple = done < p.curriculum_fraction * p.steps
            items = caption_items(
                p.chunk, p.seed * 1_000_003 + chunk_index, first_stage if simple else settings
            )
            queue = length_batches(
                caption_trajectories(items, processor, cfg, rng), p.batch_size, rng
            )
            chunk_index += 1
        batch = queue.pop()
        loss, _ = sft_loss(model, batch, processor)
        optimizer.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), p.max_grad_norm))
            optimizer.step()
            loss_value = float(loss.detach())
        else:
            grad_norm = math.nan
        minutes = (time.perf_counter() - t0 - paused) / 60
        metrics: dict[str, float] = {}
        if step % 50 == 0 or step == p.steps:
            metrics = {
                "loss": loss_value,
                "grad_norm": grad_norm,
                "lr": optimizer.param_groups[0]["lr"],
                "minutes": minutes,
            }
        if p.eval_every and step % p.eval_every == 0:
            t_eval = time.perf_counter()
            probe = evaluate_captions(model, processor, cfg, held_out[:EVAL_PROBE])
            paused += time.perf_counter() - t_eval
            metrics.update({f"pretrain/probe/{k}": v for k, v in probe.items() if k != "items"})
            say(
                f"[pretrain step {step}, {minutes:.1f} min] loss {loss_value:.3f}, probe description "
                f"accuracy {probe['description_accuracy']:.3f}, count {probe['count']:.3f}"
            )
        if metrics:
            logger.log(step, metrics)
        if progress:
            bar.set_postfix(loss=f"{loss_value:.3f}")
    minutes = (time.perf_counter() - t0 - paused) / 60
    model.eval()
    scores = evaluate_captions(model, processor, cfg, held_out)
    save_model(model, processor, out)
    result = PretrainResult(str(out), step, minutes, loss_value, scores, logger.history)
    write_card(out, cfg, result)
    return result


# ----------------------------------------------------------------------------- model card


def _load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def write_card(folder: Path, cfg: Any, result: PretrainResult) -> dict[str, Any]:
    """card.json (figures + weights checksum) and README.md (the model card) in `folder`."""
    from miva.agent.model import weights_sha256

    p = cfg.pretrain
    card = {
        "preset": "tiny-pretrained",
        "base": p.init,
        "created": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "data": {
            "generator": "miva.data.synth.captions",
            "image_sizes": list(p.image_sizes),
            "images_per_sample": list(p.images_per_sample),
            "coarse_fraction": p.coarse_fraction,
            "max_objects": p.max_objects,
            "tool_prompt_fraction": p.tool_prompt_fraction,
            "curriculum": f"one object in one image for the first {p.curriculum_fraction:.0%} "
            "of the schedule",
            "samples_seen": result.steps * p.batch_size,
            "seed": p.seed,
        },
        "training": {
            "steps": result.steps,
            "batch_size": p.batch_size,
            "lr": p.lr,
            "warmup_steps": p.warmup_steps,
            "schedule": f"{p.warmup_steps} warm-up steps, then cosine to {p.min_lr_ratio} x lr "
            f"at step {p.steps} or minute {p.max_minutes}, whichever comes first",
            "minutes": round(result.minutes, 2),
            "final_loss": round(result.final_loss, 4),
            "cpu_threads": _threads(),
            "load_average_at_end": _load_average(),
        },
        "held_out": {k: round(v, 4) for k, v in result.scores.items()},
        "rebuild": "make pretrained-preset",
        "weights_sha256": weights_sha256(folder),
    }
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    s = result.scores
    chance = {"size": "0.50", "colour": "0.20", "shape": "0.25", "position": "0.11"}
    rows = "\n".join(
        f"| {name} | {s.get(key, 0.0):.3f} | {chance.get(key, '-')} |"
        for name, key in (
            ("description accuracy (mean of the four below)", "description_accuracy"),
            ("size", "size"),
            ("colour", "colour"),
            ("shape", "shape"),
            ("position (3 x 3 grid word)", "position"),
            ("object count per image, in descriptions", "count"),
            ('"How many objects are in image k?"', "count_answer"),
            ("whole description exactly right", "exact"),
        )
    )
    (folder / "README.md").write_text(
        f"""# tiny-pretrained

A {_params(folder)} Qwen2.5-VL-architecture model (the `tiny-random` architecture and
tokenizer) pretrained by MIVA to describe synthetic scenes: the size, colour, shape and
position of every object and the number of objects, in one to three images of
{", ".join(str(x) for x in p.image_sizes)} px (seen at 56 and 112 px). It is the start of
`configs/tiny-cpu.yaml`. It knows nothing else: no task, no tools.

- **Data**: `miva.data.synth.captions`, fresh scenes every step (no scene is seen twice),
  {card["data"]["samples_seen"]:,} samples; {int(100 * p.coarse_fraction)} % of images hold one large object, the
  others 1-{p.max_objects} small or large ones; {int(100 * p.tool_prompt_fraction)} % of prompts list the zoom and view tools.
  Questions: "Describe the images.", "Describe image k.", "How many objects are in image k?";
  for the first {int(100 * p.curriculum_fraction)} % of the schedule only one object in one image.
- **Training**: {result.steps} steps of {p.batch_size} samples, AdamW lr {p.lr} with
  {p.warmup_steps} warm-up steps and cosine decay, {result.minutes:.1f} minutes on
  {card["training"]["cpu_threads"]} CPU thread(s) (load average at the end
  {card["training"]["load_average_at_end"]}; the machine was shared).
- **Held-out** ({int(s.get("items", 0))} scenes never trained on, greedy decoding; per
  attribute, objects matched in reading order, a missing object wrong on every attribute;
  chance = guessing uniformly among the attribute's words):

| measure | accuracy | chance |
|---|---|---|
{rows}

- **Limits**: the training budget is {p.max_minutes} minutes, and on a shared machine the
  clock binds before `pretrain.steps` ({p.steps}): a quieter machine trains more steps
  (the cosine decay follows whichever budget ends first), a busier one fewer, so a
  rebuild reproduces this card only on a machine as busy as this one was. Attributes
  near their chance level are not learned yet; busy images (2-3 objects) are described
  far worse than single objects.

- **Rebuild**: `make pretrained-preset` (= `miva pretrain --out src/miva/agent/presets/tiny-pretrained`).
- **Checksum**: `model.safetensors` sha256 `{card["weights_sha256"]}`
  (`card.json`; `load_model("tiny-pretrained")` refuses weights that do not match).
- Created {card["created"]}.
"""
    )
    return card


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _params(folder: Path) -> str:
    try:
        from safetensors import safe_open

        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            n = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
        return f"{n / 1e6:.1f}M-parameter"
    except Exception:
        return "tiny"

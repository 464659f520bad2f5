"""`miva agent`: run the agent on a few samples and show every trajectory.

Prints each trajectory (turns, tool calls, status, parsed answer, rewards), saves every
image the model saw (tool crops included) under `out/<k>_<sample id>/image_<n>.png`, and
with `html=True` writes `out/index.html` with the images inline.

`policy="model"` samples from the model (the rollout engine of `agent.rollout_engine`);
`policy="gold"` replays the gold trajectory of each sample (`miva.rl.sft.gold_texts`: zoom
into the evidence, then the gold answer) through the same runtime and tools, which shows
what a correct tool-using trajectory looks like before any model has learned one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miva.errors import ConfigError, DataError


@dataclass
class ShowResult:
    trajectories: list[Any]
    samples: list[Any]
    text: str
    html_path: Path | None
    image_dirs: list[Path]


def run_show(
    cfg,
    model: str,
    dataset: str,
    split: str = "test",
    n: int = 4,
    out: str | Path = ".miva/agent",
    html: bool = False,
    policy: str = "model",
    n_per_sample: int = 1,
    seed: int = 0,
) -> ShowResult:
    from miva.agent.model import load_from_config
    from miva.agent.render import render_html, render_text, save_images
    from miva.agent.rollout import parse_trajectory_answer, rollout
    from miva.data.io import read_samples
    from miva.rl.rewards import score

    samples = read_samples(dataset, split=split, limit=n)
    if not samples:
        raise DataError(f"{dataset}: split {split!r} has no samples")
    model_cfg = cfg.model.model_copy(update={"name_or_path": model})
    policy_model, processor = load_from_config(model_cfg)
    if policy not in ("model", "gold"):
        raise ConfigError(f"unknown policy {policy!r}; known: model, gold")
    engine = _gold_engine(samples, processor, cfg, n_per_sample) if policy == "gold" else None
    trajs = rollout(
        policy_model, processor, samples, cfg.agent, n=n_per_sample, seed=seed, engine=engine
    )
    group = [s for s in samples for _ in range(n_per_sample)]
    score(trajs, group, cfg.reward)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    blocks, items, dirs = [], [], []
    for i, (t, s) in enumerate(zip(trajs, group, strict=True), start=1):
        folder = out / f"{i:02d}_{s.id[:12]}"
        paths = save_images(t, folder)
        dirs.append(folder)
        parsed = parse_trajectory_answer(t, s)
        blocks.append(render_text(t, s, paths, parsed, index=i))
        items.append((t, s, paths, parsed))
    html_path = None
    if html:
        html_path = out / "index.html"
        html_path.write_text(render_html(items, out, f"miva agent: {model} on {dataset} ({split})"))
    return ShowResult(trajs, group, "\n\n".join(blocks), html_path, dirs)


def _gold_engine(samples, processor, cfg, n_per_sample: int):
    from miva.agent.assembly import encode_image
    from miva.agent.engines.scripted import ScriptedEngine
    from miva.rl.sft import gold_texts

    scripts = []
    for s in samples:
        frames = [encode_image(img, processor).frame for img in s.pil_images()]
        scripts.append(gold_texts(s, frames, processor.family, cfg, processor.tokenizer))

    def script(key: int, turn: int) -> str:
        texts = scripts[key // n_per_sample]
        return texts[min(turn, len(texts) - 1)]

    return ScriptedEngine(processor, script)

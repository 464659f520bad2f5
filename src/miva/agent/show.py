"""`miva agent`: run the agent on a few samples and show every trajectory.

Prints each trajectory (turns, tool calls, status, parsed answer, rewards), saves every
image the model saw (tool crops included) under `out/<k>_<sample id>/image_<n>.png`, and
with `html=True` writes `out/index.html` with the images inline.

`policy="model"` samples from the model (the hf or vllm engine of `agent.engine`);
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
    dataset: str,
    split: str = "test",
    n: int = 4,
    out: str | Path = ".miva/agent",
    html: bool = False,
    policy: str = "model",
    n_per_sample: int = 1,
    seed: int = 0,
) -> ShowResult:
    from miva.agent.engines import make_engine
    from miva.agent.model import load_from_config
    from miva.agent.render import render_html, render_text, save_images
    from miva.agent.rollout import Agent, parse_trajectory_answer
    from miva.agent.tools import build_tools
    from miva.data.io import localize, read_samples

    samples = read_samples(localize(dataset), split=split, limit=n)
    if not samples:
        raise DataError(f"{dataset}: split {split!r} has no samples")
    model, processor = load_from_config(cfg.model)
    tools = build_tools(cfg.agent)
    if policy == "model":
        kwargs: dict[str, Any] = {}
        if cfg.agent.engine == "vllm":
            from miva.agent.model import resolve

            kwargs = dict(
                model_path=str(resolve(cfg.model.name_or_path)),
                dtype=cfg.model.dtype,
                min_pixels=cfg.model.min_pixels,
                max_pixels=cfg.model.max_pixels,
            )
        engine = make_engine(cfg.agent.engine, model, processor, cfg.agent, **kwargs)
    elif policy == "gold":
        engine = _gold_engine(samples, processor, cfg, n_per_sample)
    else:
        raise ConfigError(f"unknown policy {policy!r}; known: model, gold")
    agent = Agent(processor, cfg.agent, tools, engine)
    trajs = agent.rollout(samples, n_per_sample=n_per_sample, seed=seed)
    group = [s for s in samples for _ in range(n_per_sample)]
    try:
        from miva.rl.rewards import score

        score(trajs, group, cfg.reward)
    except ImportError:  # rewards not installed in this build: show without them
        pass
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
        html_path.write_text(
            render_html(items, out, f"miva agent: {cfg.model.name_or_path} on {dataset} ({split})")
        )
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

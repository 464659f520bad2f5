"""The served agent: chat requests -> MIVA samples -> one batched multi-turn rollout -> answers.

`ServedAgent(source, cfg)` loads the model once (`miva.agent.model.load_model`) and answers
a batch of prepared requests with the agent runtime's own loop
(`Agent(processor, agent_cfg, tools, engine).rollout`), the same code `miva eval` and GRPO
run, so a served answer equals the offline rollout of the same sample with the same
sampling settings (greedy by default).

The answer returned to the client is the text inside `<answer>…</answer>` (boxes converted
back to the pixels of the images the client sent); when the model wrote none, its last
turn's text without special tokens.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from miva.serve.images import load_image
from miva.serve.resolve import ModelSource
from miva.serve.schema import ApiError, ChatRequest

FAMILIES = {"qwen2_5_vl": "qwen2.5-vl", "qwen2_vl": "qwen2-vl"}


@dataclass
class Prepared:
    """A validated request: the sample to answer, how many times, with which settings."""

    id: str
    sample: Any  # miva.data.schema.Sample
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int | None
    want_trajectory: bool
    received: float = field(default_factory=time.time)

    @property
    def key(self) -> tuple:
        return (self.temperature, self.top_p, self.max_new_tokens, self.seed)


@dataclass
class Answer:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    trajectory: dict[str, Any] | None


def make_request_sample(
    question: str, images: list[bytes], answer_type: str = "text", choices=None
):
    """The `Sample` a served request is: no gold answer, split `serve`."""
    from miva.data.schema import Sample

    return Sample(
        task="serve",
        images=images,
        question=question,
        answer_type=answer_type,
        answer="",
        choices=list(choices) if choices else None,
        split="serve",
        source="serve",
    )


def prepare(req: ChatRequest, served_names: Sequence[str], cfg: Any) -> Prepared:
    """Validate a request and decode its images; raises `ApiError` with a 4xx on bad input."""
    scfg, agent = cfg.serve, cfg.agent
    if req.stream:
        raise ApiError(400, "streaming is not supported: send stream=false", "stream")
    if req.model not in served_names:
        raise ApiError(
            404,
            f"model {req.model!r} is not served here; available: {list(served_names)}",
            "model",
            "model_not_found",
        )
    if req.n > scfg.max_n:
        raise ApiError(400, f"n={req.n} is above this server's limit of {scfg.max_n}", "n")
    texts: list[str] = []
    image_urls: list[tuple[str, str]] = []
    for i, msg in enumerate(req.messages):
        if msg.role in ("system", "developer"):
            continue  # the agent brings its own system prompt (tools, answer format)
        if msg.role != "user":
            raise ApiError(
                400,
                f"messages[{i}]: role {msg.role!r} is not supported; MIVA answers one question "
                "per request (system and user messages only)",
                f"messages[{i}].role",
            )
        if isinstance(msg.content, str):
            texts.append(msg.content)
            continue
        for j, part in enumerate(msg.content or []):
            if part.type == "text":
                texts.append(part.text)
            else:
                image_urls.append((part.image_url.url, f"messages[{i}].content[{j}]"))
    question = "\n".join(t.strip() for t in texts if t.strip())
    if not question:
        raise ApiError(400, "the request has no question text in its user messages", "messages")
    if len(image_urls) > scfg.max_images:
        raise ApiError(
            400,
            f"the request has {len(image_urls)} images; this server takes at most {scfg.max_images}",
            "messages",
            "too_many_images",
        )
    if scfg.require_image and not image_urls:
        raise ApiError(
            400,
            "the request has no image: MIVA answers questions about images (send image_url "
            "parts with data:image/...;base64 URLs)",
            "messages",
            "image_required",
        )
    if req.miva_answer_type == "choice" and not req.miva_choices:
        raise ApiError(400, "miva_answer_type 'choice' needs miva_choices", "miva_choices")
    images = [load_image(url, where, scfg) for url, where in image_urls]
    cap = scfg.max_tokens or agent.max_new_tokens
    asked = req.max_completion_tokens or req.max_tokens or cap
    return Prepared(
        id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
        sample=make_request_sample(question, images, req.miva_answer_type, req.miva_choices),
        n=req.n,
        temperature=0.0 if req.temperature is None else float(req.temperature),
        top_p=1.0 if req.top_p is None else float(req.top_p),
        max_new_tokens=min(int(asked), int(cap)),
        seed=req.seed,
        want_trajectory=req.miva_trajectory,
    )


def answer_text(traj, sample, processor) -> str:
    """What the client gets: the answer (boxes in the client's image pixels), else the last
    assistant turn without special tokens."""
    if traj.answer is not None:
        if sample.answer_type in ("bbox", "image_bbox"):
            from miva.agent.rollout import parse_trajectory_answer
            from miva.data.schema import format_answer

            typed = parse_trajectory_answer(traj, sample)
            if typed is not None:
                return format_answer(sample.answer_type, typed)
        return traj.answer
    texts = [t.text for t in traj.turns if t.role == "assistant"]
    if not texts:
        return ""
    ids = processor.tokenizer.encode(texts[-1], add_special_tokens=False)
    return processor.tokenizer.decode(ids, skip_special_tokens=True).strip()


def trajectory_extras(traj) -> dict[str, Any]:
    """The `miva_trajectory` of a choice: what the agent did, turn by turn."""
    return {
        "status": traj.status,
        "answer": traj.answer,
        "num_turns": traj.num_turns,
        "turns": [
            {"role": t.role, "text": t.text, "images": t.image_count}
            for t in traj.turns
            if t.role != "system"
        ],
        "tool_calls": [
            {
                "turn": c.turn,
                "name": c.name,
                "arguments": c.arguments,
                "ok": c.ok,
                "result": c.result_text,
                "images": c.image_count,
                "region": c.region,
            }
            for c in traj.tool_calls
        ],
    }


def to_answer(traj, sample, processor, want_trajectory: bool) -> Answer:
    return Answer(
        text=answer_text(traj, sample, processor),
        finish_reason="length" if traj.status == "truncated" else "stop",
        prompt_tokens=int(traj.prompt_length),
        completion_tokens=int(traj.num_sampled_tokens),
        trajectory=trajectory_extras(traj) if want_trajectory else None,
    )


class TimedEngine:
    """An engine that records (start, end) of each generate call: the batch's turns."""

    def __init__(self, engine: Any) -> None:
        self.engine, self.times = engine, []

    def generate(self, requests, seed):
        start = time.time_ns()
        out = self.engine.generate(requests, seed)
        self.times.append((start, time.time_ns()))
        return out


class ServedAgent:
    """The model, its processor and tools, loaded once; `run(batch)` answers prepared requests."""

    def __init__(self, source: ModelSource, cfg: Any, tracer: Any = None) -> None:
        from transformers import AutoConfig

        from miva.agent.model import load_model
        from miva.agent.tools import build_tools

        self.source, self.cfg, self.tracer = source, cfg, tracer
        family = FAMILIES.get(AutoConfig.from_pretrained(str(source.folder)).model_type)
        device = cfg.serve.device
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model, self.processor = load_model(
            str(source.folder),
            family=family or cfg.model.family,
            dtype=cfg.model.dtype,
            device=device,
            min_pixels=cfg.model.min_pixels,
            max_pixels=cfg.model.max_pixels,
            attn_implementation=cfg.model.attn_implementation,
        )
        self.tools = build_tools(cfg.agent)
        self._engines: dict[tuple, Any] = {}
        self._seeds = itertools.count(1)
        self._lock = threading.Lock()  # one rollout at a time on the model

    def _engine(self, agent_cfg) -> Any:
        """The rollout engine for these sampling settings. `hf` engines are cheap views of
        the loaded model: one per (temperature, top-p). A vLLM engine holds its own copy of
        the weights: one for the server, its sampling settings set per batch."""
        from miva.agent.engines import make_engine

        if agent_cfg.rollout_engine != "vllm":
            key = (agent_cfg.temperature, agent_cfg.top_p)
            if key not in self._engines:
                self._engines[key] = make_engine("hf", self.model, self.processor, agent_cfg)
            return self._engines[key]
        if "vllm" not in self._engines:
            self._engines["vllm"] = make_engine(
                "vllm",
                self.model,
                self.processor,
                agent_cfg,
                model_path=str(self.source.folder),
                dtype=self.cfg.model.dtype,
                min_pixels=self.cfg.model.min_pixels,
                max_pixels=self.cfg.model.max_pixels,
            )
        engine = self._engines["vllm"]
        engine.temperature, engine.top_p = agent_cfg.temperature, agent_cfg.top_p
        return engine

    def rollout(self, batch: Sequence[Prepared]) -> tuple[list[list[Any]], list[tuple[int, int]]]:
        """Trajectories per request (n each), from one rollout of the whole batch, and the
        (start, end) of each turn's generation."""
        from miva.agent.rollout import Agent

        first = batch[0]
        agent_cfg = self.cfg.agent.model_copy(
            update={
                "temperature": first.temperature,
                "top_p": first.top_p,
                "max_new_tokens": first.max_new_tokens,
            }
        )
        seed = first.seed if first.seed is not None else next(self._seeds)
        samples = [p.sample for p in batch for _ in range(p.n)]
        engine = TimedEngine(self._engine(agent_cfg))
        with self._lock:
            agent = Agent(self.processor, agent_cfg, self.tools, engine)
            trajs = agent.rollout(samples, n_per_sample=1, seed=seed)
        out, i = [], 0
        for p in batch:
            out.append(trajs[i : i + p.n])
            i += p.n
        return out, engine.times

    def run(self, batch: Sequence[Prepared]) -> list[list[Answer]]:
        start = time.time_ns()
        groups, turn_times = self.rollout(batch)
        end = time.time_ns()
        answers = [
            [to_answer(t, p.sample, self.processor, p.want_trajectory) for t in group]
            for p, group in zip(batch, groups, strict=True)
        ]
        if self.tracer is not None:
            self.tracer.submit(batch, groups, answers, start, end, turn_times)
        return answers

"""MIVA's side of the vllm engine, on the CPU box where vLLM cannot be installed.

`vllm` is replaced by a stand-in module whose `LLM` class (`LLMStandIn`) records what the
engine hands it and answers with outputs the test chooses; nothing of vLLM's own behaviour
is imitated. Checked: the engine configuration (processed log-probs, prefix caching, the
processor's pixel bounds), the prompts (placeholders collapsed, the images the trainer's
pixel values came from, which process back to those exact pixels), the sampling
parameters, how outputs become turns, and that a weight load reaches every worker and
resets the prefix and multimodal caches afterwards. The real engine runs in
test_vllm_engine.py (marked gpu).
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
from PIL import Image


@dataclass
class _Logprob:
    logprob: float


@dataclass
class _Completion:
    token_ids: list[int]
    logprobs: list[dict[int, _Logprob]]
    finish_reason: str


@dataclass
class _Output:
    outputs: list[_Completion]


class SamplingParamsStandIn:
    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs


@dataclass
class _ModelStandIn:
    loaded: list[tuple[str, torch.Tensor]] = field(default_factory=list)

    def load_weights(self, weights):
        self.loaded.extend(weights)


class LLMStandIn:
    """Stands in for `vllm.LLM`: records calls, answers `generate` with `self.reply(prompt)`."""

    last: LLMStandIn | None = None

    def __init__(self, **kwargs: Any):
        self.kwargs = kwargs
        self.events: list[str] = []
        self.prompts: list[dict] = []
        self.params: list[SamplingParamsStandIn] = []
        self.worker = types.SimpleNamespace(
            model_runner=types.SimpleNamespace(model=_ModelStandIn())
        )
        self.reply = None
        LLMStandIn.last = self

    def generate(self, prompts, params, use_tqdm=False):
        self.events.append("generate")
        self.prompts.extend(prompts)
        self.params.extend(params)
        return [_Output([self.reply(p)]) for p in prompts]

    def collective_rpc(self, fn):
        self.events.append("collective_rpc")
        fn(self.worker)

    def reset_prefix_cache(self):
        self.events.append("reset_prefix_cache")

    def reset_mm_cache(self):
        self.events.append("reset_mm_cache")


@pytest.fixture
def vllm_standin(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = LLMStandIn
    mod.SamplingParams = SamplingParamsStandIn
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict
    mod.inputs = inputs
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    return mod


def _engine(processor, tiny_dir, **kw):
    from miva.agent.engines.vllm import VLLMEngine

    return VLLMEngine(
        str(tiny_dir), processor, min_pixels=56 * 56, max_pixels=112 * 112, top_p=0.9, **kw
    )


def _request(processor, images):
    from miva.agent.assembly import SequenceBuilder, encode_image
    from miva.agent.engines.base import GenRequest
    from miva.agent.format import user_prompt

    b = SequenceBuilder(processor)
    encoded = [encode_image(img, processor) for img in images]
    b.start("system", user_prompt("Which one?", len(encoded)), encoded)
    return GenRequest(
        token_ids=list(b.token_ids),
        pixel_values=b.pixel_values(),
        image_grid_thw=b.image_grid_thw(),
        max_new_tokens=8,
        images=[e.image for e in b.images],
    )


def test_engine_asks_vllm_for_processed_logprobs_and_the_trainers_pixel_bounds(
    vllm_standin, processor, tiny_dir
):
    _engine(processor, tiny_dir)
    kw = LLMStandIn.last.kwargs
    assert kw["logprobs_mode"] == "processed_logprobs"
    assert kw["enable_prefix_caching"] is True
    assert kw["mm_processor_kwargs"] == {"min_pixels": 56 * 56, "max_pixels": 112 * 112}


def test_prompts_carry_the_images_the_trainer_pixels_came_from(vllm_standin, processor, tiny_dir):
    rng = torch.Generator().manual_seed(0)
    images = [
        Image.fromarray(torch.randint(0, 256, (300, 448, 3), generator=rng).byte().numpy()),
        Image.fromarray(torch.randint(0, 256, (90, 61, 3), generator=rng).byte().numpy()),
    ]
    req = _request(processor, images)
    engine = _engine(processor, tiny_dir)
    tok = processor.tokenizer
    answer = tok.encode("<answer>2</answer>", add_special_tokens=False)
    extra = tok.encode(" more", add_special_tokens=False)
    LLMStandIn.last.reply = lambda prompt: _Completion(
        answer + extra, [{t: _Logprob(-0.25 - i)} for i, t in enumerate(answer + extra)], "stop"
    )
    (res,) = engine.generate([req], seed=7)

    (prompt,) = LLMStandIn.last.prompts
    image_id = processor.token_id("<|image_pad|>")
    # one placeholder per image; vLLM expands it again from the image's grid
    assert prompt["prompt_token_ids"].count(image_id) == 2
    assert [t for t in prompt["prompt_token_ids"] if t != image_id] == [
        t for t in req.token_ids if t != image_id
    ]
    sent = prompt["multi_modal_data"]["image"]
    grids = req.image_grid_thw.tolist()
    assert [im.size for im in sent] == [(w * 14, h * 14) for _, h, w in grids]
    # processing what vLLM receives gives back the trainer's pixels, exactly
    ip = processor.image_processor
    again = [ip(images=[im], return_tensors="pt") for im in sent]
    assert torch.equal(torch.cat([a["pixel_values"] for a in again]), req.pixel_values)
    assert torch.equal(torch.cat([a["image_grid_thw"] for a in again]), req.image_grid_thw)
    # the turn ends at </answer>; log-probs are vLLM's, token by token
    assert res.finished and res.token_ids == answer
    assert res.logprobs == pytest.approx([-0.25 - i for i in range(len(answer))])
    params = LLMStandIn.last.params[0].kwargs
    assert params["logprobs"] == 0 and params["top_p"] == 0.9 and params["temperature"] == 1.0
    vision = {processor.token_id(t) for t in ("<|image_pad|>", "<|vision_start|>")}
    assert vision <= set(params["logit_bias"]) and all(
        v < -50 for v in params["logit_bias"].values()
    )
    assert 0 <= params["seed"] < 2**63


def test_requests_get_distinct_seeds_that_fit_a_64_bit_generator(vllm_standin, processor, tiny_dir):
    req = _request(processor, [Image.new("RGB", (56, 56)), Image.new("RGB", (56, 56))])
    engine = _engine(processor, tiny_dir)
    LLMStandIn.last.reply = lambda prompt: _Completion([1], [{1: _Logprob(-1.0)}], "length")
    engine.generate([req, req, req], seed=2**31 - 1)
    seeds = [p.kwargs["seed"] for p in LLMStandIn.last.params]
    assert len(set(seeds)) == 3 and all(0 <= s < 2**63 for s in seeds)


def test_weight_load_reaches_the_workers_then_resets_both_caches(
    vllm_standin, processor, tiny_dir, tiny
):
    model, _ = tiny
    engine = _engine(processor, tiny_dir)
    state = {k: v for k, v in model.state_dict().items() if "lm_head" in k}
    engine.load_weights(state)
    llm = LLMStandIn.last
    assert llm.events == ["collective_rpc", "reset_prefix_cache", "reset_mm_cache"]
    loaded = dict(llm.worker.model_runner.model.loaded)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_pixel_values_that_do_not_match_the_grids_fail(processor):
    from miva.agent.engines.vllm import trainer_images

    req = _request(processor, [Image.new("RGB", (56, 56)), Image.new("RGB", (112, 56))])
    with pytest.raises(ValueError, match="patches"):
        trainer_images(req.pixel_values[:-4], req.image_grid_thw, processor.image_processor)

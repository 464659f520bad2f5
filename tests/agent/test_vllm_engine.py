"""The vllm engine on a GPU (skipped without one; never run on the CPU development box)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gpu


def test_vllm_engine_rollout_matches_the_contract(tiny_dir, tiny):
    pytest.importorskip("vllm")
    import torch
    from PIL import Image

    from miva.agent.engines.vllm import VLLMEngine
    from miva.agent.forward import collate, token_logprobs
    from miva.agent.rollout import Agent
    from miva.agent.tools import build_tools
    from miva.config import AgentConfig
    from miva.data.schema import Sample, encode_png

    def _sample():
        imgs = [
            Image.new("RGB", (448, 448), (255, 0, 0)),
            Image.new("RGB", (448, 300), (0, 0, 255)),
        ]
        return Sample(
            task="t",
            images=[encode_png(i) for i in imgs],
            question="Which image is red?",
            answer_type="image_index",
            answer=1,
        )

    model, processor = tiny
    cfg = AgentConfig(max_new_tokens=16, max_turns=2)
    engine = VLLMEngine(
        str(tiny_dir),
        processor,
        dtype="float32",
        gpu_memory_utilization=0.2,
        min_pixels=56 * 56,
        max_pixels=112 * 112,
    )
    agent = Agent(processor, cfg, build_tools(cfg), engine)
    trajs = agent.rollout([_sample()], n_per_sample=4, seed=0)
    for t in trajs:
        t.check()
        assert t.num_sampled_tokens > 0
    batch = collate(trajs, processor)
    with torch.no_grad():
        lp, _ = token_logprobs(model, batch)
    m = batch.loss_mask > 0
    assert torch.allclose(lp[m], batch.rollout_logp[m], atol=5e-2)
    # new weights reach the running model: a zero lm_head makes every token -log(V - 5)
    # (processed log-probs: the 5 vision tokens are pushed down by the logit bias)
    import math

    from miva.agent.engines.hf import SUPPRESSED

    state = {k: v * 0 for k, v in model.state_dict().items() if "lm_head" in k}
    engine.load_weights(state)
    after = agent.rollout([_sample()], n_per_sample=1, seed=0)[0]
    want = -math.log(model.config.text_config.vocab_size - len(SUPPRESSED))
    sampled = [x for x, m in zip(after.sampled_logprobs, after.loss_mask, strict=True) if m]
    assert sampled and all(abs(x - want) < 1e-3 for x in sampled)

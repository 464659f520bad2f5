"""Rejection-sampling curation through the difficulty filter, with a scripted agent policy."""

from __future__ import annotations

import pytest

from miva.config import load_config


def _agent(processor, cfg, answer_for):
    from miva.agent.engines.scripted import ScriptedEngine
    from miva.agent.rollout import Agent

    return Agent(processor, cfg.agent, {}, ScriptedEngine(processor, answer_for))


@pytest.mark.parametrize(
    ("mode", "kept_all"), [("half", True), ("always", False), ("never", False)]
)
def test_keeps_prompts_solved_sometimes(dataset, mode, kept_all):
    from miva.agent.assembly import encode_image
    from miva.agent.format import format_model_answer
    from miva.rl.curate import curate
    from miva.rl.setup import load_policy, load_training_samples

    cfg = load_config(
        "tiny-cpu", ["agent.tools=[]", "agent.max_turns=1", "agent.max_new_tokens=64"]
    )
    samples = load_training_samples(dataset)[:4]
    _, processor = load_policy("tiny-random", cfg.model)
    current = {}

    def policy_text(key, turn):
        s = current["sample"]
        frames = [encode_image(im, processor).frame for im in s.pil_images()]
        gold = format_model_answer(s, processor.family, frames)
        right = {"half": key % 2 == 0, "always": True, "never": False}[mode]
        return f"<answer>{gold if right else 'nothing'}</answer>"

    agent = _agent(processor, cfg, policy_text)
    real_rollout = agent.rollout

    def rollout(batch, n, seed=0):
        current["sample"] = batch[0]
        return real_rollout(batch, n, seed)

    agent.rollout = rollout
    result = curate(samples, agent, 4, cfg.reward)
    expected_rate = {"half": 0.5, "always": 1.0, "never": 0.0}[mode]
    assert result.rates == [expected_rate] * len(samples)
    assert len(result.kept) == (len(samples) if kept_all else 0)

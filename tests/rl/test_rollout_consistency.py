"""Rollout vs trainer: the hf engine's sampled log-probs equal the trainer's forward on
multi-turn trajectories with tool turns and inserted images; the mismatch and truncated
importance sampling show up in the GRPO metrics; `train.rollout_correction` resolves per
rollout engine."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from miva.config import load_config

TOOL_TURNS = 2  # zoom (a new image enters the context), then view (another one)


def _sample():
    from miva.data.schema import Evidence, Sample, encode_png

    red = Image.new("RGB", (448, 448), (0, 0, 255))
    red.paste((255, 0, 0), (224, 224, 448, 448))
    return Sample(
        task="selection",
        images=[encode_png(red), encode_png(Image.new("RGB", (448, 300), (0, 255, 0)))],
        question="Which image shows the red square?",
        answer_type="image_index",
        answer=1,
        evidence=[Evidence(1, (224, 224, 448, 448))],
    )


def _call(name, **args):
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


class ToolTurnsThenModel:
    """Turns 0..1 replay fixed tool calls (a random model never calls a tool itself); later
    turns are sampled by the real hf engine on the grown context (tool responses, images)."""

    def __init__(self, hf, processor):
        from miva.agent.engines.scripted import ScriptedEngine

        calls = [_call("zoom", image=1, bbox=[56, 56, 112, 112]), _call("view", image=2)]
        self.hf = hf
        self.scripted = ScriptedEngine(processor, lambda key, turn: calls[turn])

    def generate(self, requests, seed):
        if requests[0].turn < TOOL_TURNS:
            return self.scripted.generate(requests, seed)
        return self.hf.generate(requests, seed)


@pytest.fixture(scope="module")
def tiny():
    from miva.agent.model import load_model

    return load_model("tiny-random")


def test_hf_logprobs_match_the_trainer_after_tool_turns_and_images(tiny):
    from miva.agent.engines.hf import HFEngine
    from miva.agent.forward import collate, token_logprobs
    from miva.agent.rollout import Agent
    from miva.agent.tools import build_tools
    from miva.config import AgentConfig
    from miva.rl.losses import logp_mismatch

    model, processor = tiny
    cfg = AgentConfig(max_turns=3, max_new_tokens=40, prompt_style="compact")
    engine = ToolTurnsThenModel(HFEngine(model, processor, temperature=1.0), processor)
    trajs = Agent(processor, cfg, build_tools(cfg), engine).rollout([_sample()], 4, seed=3)
    for t in trajs:
        assert [c.name for c in t.tool_calls] == ["zoom", "view"]
        assert all(c.ok for c in t.tool_calls) and len(t.images) == 4  # 2 inserted
        assert t.num_turns == 3
    batch = collate(trajs, processor)
    with torch.no_grad():
        logp, _ = token_logprobs(model, batch)
    # the hf-sampled tokens of the last turn: the scripted tool calls carry log-prob 0 by
    # construction (no model sampled them), so they are left out here
    sampled = (batch.loss_mask > 0) & (batch.rollout_logp != 0)
    n_model = sum(
        1 for t in trajs for lp, m in zip(t.sampled_logprobs, t.loss_mask, strict=True) if m and lp
    )
    assert int(sampled.sum()) == n_model > 0
    mm = logp_mismatch(logp, batch.rollout_logp, sampled)
    assert mm["logp_mismatch_max"] < 1e-4, mm
    # the same forward disagrees with log-probs of another temperature: the check can fail
    with torch.no_grad():
        hot, _ = token_logprobs(model, batch, temperature=2.0)
    assert logp_mismatch(hot, batch.rollout_logp, sampled)["logp_mismatch_mean"] > 1e-2


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from miva.data.synth.build import run_synth

    cfg = load_config(
        "tiny-cpu",
        ["synthesize.n=8", "synthesize.image_size=56", "synthesize.images_per_sample=[2, 2]"],
    )
    out = tmp_path_factory.mktemp("data") / "ds"
    run_synth(cfg.synthesize, out, progress=False)
    return str(out)


def test_grpo_logs_the_mismatch_and_truncated_importance_sampling(dataset, tmp_path, monkeypatch):
    from miva.rl import grpo
    from miva.rl.metrics import read_metrics
    from miva.rl.rewards.registry import REWARDS

    from .dist_worker import BASE, even_token_share

    monkeypatch.setitem(REWARDS, "even_tokens", even_token_share)

    cfg = load_config(
        "tiny-cpu",
        [
            *BASE,
            "grpo.prompts_per_step=2",
            "grpo.steps=1",
            "grpo.rollout_correction.mode=token-tis",
            "grpo.rollout_correction.cap=1.5",
        ],
    )
    grpo.train(cfg, "tiny-random", dataset, str(tmp_path / "out"), progress=False)
    row = read_metrics(tmp_path / "out" / "metrics.jsonl")[-1]
    assert 0 <= row["train/logp_mismatch_mean"] <= row["train/logp_mismatch_max"] < 1e-4
    # hf log-probs match the trainer's: every weight is exp(~0) = 1, none clipped
    assert row["train/tis_weight_mean"] == pytest.approx(1.0, abs=1e-4)
    assert row["train/tis_clip_frac"] == 0.0


def test_rollout_correction_is_on_for_vllm_and_off_for_hf():
    cfg = load_config("tiny-cpu")
    rc = cfg.grpo.rollout_correction
    assert rc.mode == "auto" and rc.cap == 2.0
    assert rc.resolved("vllm") == "token-tis" and rc.resolved("hf") == "off"
    forced = load_config("tiny-cpu", ["grpo.rollout_correction.mode=off"])
    assert forced.train.rollout_correction.resolved("vllm") == "off"

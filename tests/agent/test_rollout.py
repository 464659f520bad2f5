"""The rollout loop with a scripted policy (a deterministic generator emitting known tool
calls, named ScriptedEngine) and with the tiny model through the hf engine."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from miva.agent.engines.hf import HFEngine
from miva.agent.engines.scripted import ScriptedEngine
from miva.agent.forward import collate, token_logprobs
from miva.agent.rollout import Agent, parse_trajectory_answer
from miva.agent.tools import build_tools
from miva.config import AgentConfig
from miva.data.schema import Evidence, Sample, encode_png


def _sample(question="Which image shows the red square?"):
    red = Image.new("RGB", (448, 448), (0, 0, 255))
    red.paste((255, 0, 0), (224, 224, 448, 448))
    return Sample(
        task="selection",
        images=[encode_png(red), encode_png(Image.new("RGB", (448, 300), (0, 255, 0)))],
        question=question,
        answer_type="image_index",
        answer=1,
        evidence=[Evidence(1, (224, 224, 448, 448))],
    )


def call(name, **args):
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


def _agent(processor, script, **overrides):
    cfg = AgentConfig(**overrides)
    engine = ScriptedEngine(processor, script)
    return Agent(processor, cfg, build_tools(cfg), engine), engine


def test_scripted_zoom_view_answer(processor):
    script = {
        0: "<think>look closer</think>" + call("zoom", image=1, bbox=[56, 56, 112, 112]),
        1: call("view", image=2),
        2: "<answer>1</answer><|im_end|>",
    }
    agent, engine = _agent(processor, lambda key, turn: script[turn], max_turns=3)
    trajs = agent.rollout([_sample()], n_per_sample=2, seed=0)
    assert len(trajs) == 2
    t = trajs[0]
    assert t.status == "ok" and t.answer == "1" and t.num_turns == 3
    assert [c.name for c in t.tool_calls] == ["zoom", "view"] and all(c.ok for c in t.tool_calls)
    # model pixels [56,56,112,112] of a 448 image shown at 112: x4 -> the red quadrant
    assert t.tool_calls[0].region == {"image": 1, "bbox": [224.0, 224.0, 448.0, 448.0]}
    assert len(t.images) == 4 and t.images[2].size == (112, 112)
    assert t.images[2].getpixel((5, 5)) == (255, 0, 0)
    assert t.image_grid_thw.shape == (4, 3)
    assert parse_trajectory_answer(t, _sample()) == 1
    # the sampled tokens are exactly the script's tokens, in order; everything else has mask 0
    tok = processor.tokenizer
    want = [i for k in range(3) for i in tok.encode(script[k], add_special_tokens=False)]
    assert [x for x, m in zip(t.token_ids, t.loss_mask, strict=True) if m] == want
    image_id = processor.token_id("<|image_pad|>")
    assert all(m == 0 for x, m in zip(t.token_ids, t.loss_mask, strict=True) if x == image_id)
    assert not any(t.loss_mask[: t.prompt_length])
    # later turns saw the new images: the turn-2 request carried 3 images, turn 3 four
    assert [len(r.images) for r in engine.requests if r.key == 0] == [2, 3, 4]
    # tool responses come back as their own turns, mask 0
    tool_turns = [x for x in t.turns if x.role == "tool"]
    assert "Image 3: <image>" in tool_turns[0].text and tool_turns[0].image_count == 1


def test_the_trajectory_sequence_is_the_prefix_the_policy_saw(processor):
    script = {0: call("view", image=1), 1: "<answer>2</answer>"}
    agent, engine = _agent(processor, lambda k, turn: script[turn], max_turns=2)
    t = agent.rollout([_sample()], 1)[0]
    last = next(r for r in engine.requests if r.turn == 1)
    assert t.token_ids[: len(last.token_ids)] == last.token_ids  # never re-tokenised


@pytest.mark.parametrize(
    "script,overrides,status,n_calls",
    [
        (lambda k, t: "I do not know", {}, "ok", 0),  # no call, no answer
        (lambda k, t: "zoom zoom zoom " * 40, {"max_new_tokens": 8}, "truncated", 0),
        (lambda k, t: call("view", image=1), {"max_turns": 2}, "max_turns", 2),
        (lambda k, t: call("zoom", image=9, bbox=[0, 0, 5, 5]), {"max_turns": 2}, "tool_error", 2),
        (lambda k, t: call("rotate", image=1), {"max_turns": 2}, "tool_error", 2),
        (lambda k, t: "<tool_call>zoom(1)</tool_call>", {"max_turns": 2}, "malformed", 2),
        (
            lambda k, t: "<tool_call>zoom(1)</tool_call>",
            {"max_turns": 3, "malformed_call": "stop"},
            "malformed",
            1,
        ),
        (
            lambda k, t: call("view", image=1),
            {"max_trajectory_pixels": 3 * 112 * 112},
            "image_budget",
            2,
        ),
        (
            lambda k, t: call("view", image=1),
            {"max_total_tokens": 520, "max_turns": 5},
            "truncated",
            1,
        ),
    ],
)
def test_statuses(processor, script, overrides, status, n_calls):
    agent, _ = _agent(processor, script, **overrides)
    t = agent.rollout([_sample()], 1)[0]
    assert t.status == status, [x.text for x in t.turns]
    assert len(t.tool_calls) == n_calls
    t.check()


def test_malformed_call_returns_an_error_turn_then_recovers(processor):
    script = {
        0: '<tool_call>{"name": "zoom", "arguments": {"image": 1, bbox: [1]}</tool_call>',
        1: "<answer>1</answer>",
    }
    agent, _ = _agent(processor, lambda k, t: script[t])
    t = agent.rollout([_sample()], 1)[0]
    assert t.status == "ok" and not t.tool_calls[0].ok
    assert "not valid JSON" in next(x for x in t.turns if x.role == "tool").text


def test_initial_images_over_budget(processor):
    agent, engine = _agent(
        processor, lambda k, t: "<answer>1</answer>", max_trajectory_pixels=112 * 112
    )
    t = agent.rollout([_sample()], 1)[0]
    assert t.status == "image_budget" and t.num_sampled_tokens == 0 and not engine.requests


def test_injected_markup_in_questions_is_neutralised(processor):
    agent, _ = _agent(processor, lambda k, t: "<answer>1</answer>")
    t = agent.rollout([_sample("Which? <|vision_start|><|image_pad|><|vision_end|>")], 1)[0]
    # only the two real images: 448x448 -> 8x8 patches -> 16 tokens; 448x300 -> 112x84 -> 8x6 -> 12
    assert t.token_ids.count(processor.token_id("<|image_pad|>")) == 16 + 12


def test_sample_major_group_order(processor):
    a, b = _sample("first question?"), _sample("second question?")
    agent, _ = _agent(processor, lambda k, t: "<answer>1</answer>")
    out = agent.rollout([a, b], n_per_sample=3)
    assert [t.sample_id for t in out] == [a.id] * 3 + [b.id] * 3


# ----------------------------------------------------------------------------- tiny model


@pytest.fixture(scope="module")
def tiny_trajectories(tiny):
    model, processor = tiny
    cfg = AgentConfig(max_new_tokens=12, max_turns=2)
    agent = Agent(processor, cfg, build_tools(cfg), HFEngine(model, processor, temperature=1.0))
    return agent.rollout([_sample(), _sample("Is there a green image?")], n_per_sample=3, seed=1)


def test_tiny_model_rollout_produces_valid_trajectories(tiny, tiny_trajectories):
    _, processor = tiny
    image_id = processor.token_id("<|image_pad|>")
    for t in tiny_trajectories:
        t.check()
        assert 0 < t.num_sampled_tokens <= 2 * 12
        sampled = [x for x, m in zip(t.token_ids, t.loss_mask, strict=True) if m]
        assert image_id not in sampled
        assert t.token_ids.count(image_id) == sum(int(g.prod()) // 4 for g in t.image_grid_thw)
    # sampling differs between the members of a group
    assert len({tuple(t.token_ids) for t in tiny_trajectories[:3]}) > 1


def test_forward_logprobs_match_the_sampler(tiny, tiny_trajectories):
    model, processor = tiny
    batch = collate(tiny_trajectories, processor)
    with torch.no_grad():
        lp, _ = token_logprobs(model, batch, temperature=1.0)
    mask = batch.loss_mask.bool()
    assert mask.sum() == sum(t.num_sampled_tokens for t in tiny_trajectories)
    assert torch.allclose(lp[mask], batch.rollout_logp[mask], atol=1e-4)
    assert (lp[mask] < 0).all() and (lp[~mask] == 0).all()


def test_vision_tokens_are_suppressed_even_when_the_model_prefers_them(tiny):
    model, processor = tiny
    image_id = processor.token_id("<|image_pad|>")
    start_id = processor.token_id("<|vision_start|>")

    def boost(_module, _inp, out):
        out = out.clone()
        out[..., image_id] += 1e4
        out[..., start_id] += 1e4
        return out

    handle = model.lm_head.register_forward_hook(boost)
    try:
        cfg = AgentConfig(max_new_tokens=6, max_turns=1)
        agent = Agent(processor, cfg, {}, HFEngine(model, processor, temperature=1.0))
        t = agent.rollout([_sample()], 2, seed=0)
    finally:
        handle.remove()
    for traj in t:
        sampled = [x for x, m in zip(traj.token_ids, traj.loss_mask, strict=True) if m]
        assert len(sampled) == 6 and image_id not in sampled and start_id not in sampled


def test_greedy_is_deterministic_and_top_p_narrows(tiny):
    model, processor = tiny
    cfg = AgentConfig(max_new_tokens=6, max_turns=1, temperature=0.0)
    greedy = Agent(processor, cfg, {}, HFEngine(model, processor, temperature=0.0)).rollout(
        [_sample()], 2, seed=3
    )
    assert greedy[0].token_ids == greedy[1].token_ids
    # a nucleus this small keeps only the top token: same as greedy
    nucleus = Agent(
        processor, cfg, {}, HFEngine(model, processor, temperature=1.0, top_p=1e-6)
    ).rollout([_sample()], 1, seed=9)
    assert nucleus[0].token_ids == greedy[0].token_ids


def test_one_call_rollout_function(tiny):
    from miva.agent.rollout import rollout

    model, processor = tiny
    cfg = AgentConfig(max_new_tokens=4, max_turns=1, temperature=0.0)
    out = rollout(model, processor, [_sample(), _sample("Other?")], cfg, n=2)
    assert len(out) == 4 and out[0].token_ids == out[1].token_ids
    assert all(t.num_sampled_tokens == 4 or t.status == "ok" for t in out)


def test_sampling_leaves_the_callers_rng_alone(tiny):
    model, processor = tiny
    cfg = AgentConfig(max_new_tokens=3, max_turns=1)
    engine = HFEngine(model, processor, temperature=1.0)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    Agent(processor, cfg, {}, engine).rollout([_sample()], 1, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_load_weights_takes_new_tensors_and_refuses_unknown_ones(tiny):
    import copy

    model, processor = tiny
    clone = copy.deepcopy(model)
    engine = HFEngine(clone, processor)
    name = "lm_head.weight"
    engine.load_weights({name: torch.zeros_like(model.state_dict()[name])})
    assert torch.count_nonzero(clone.state_dict()[name]) == 0
    with pytest.raises(ValueError, match="unknown parameters"):
        engine.load_weights({"no.such.weight": torch.zeros(1)})


def test_multi_token_stop_strings_end_the_turn(tiny):
    """Real Qwen vocabularies spell </answer> with several tokens: generation stops on the string."""
    model, processor = tiny
    engine = HFEngine(model, processor, temperature=1.0)
    close = processor.tokenizer.convert_tokens_to_ids("</answer>")
    engine.stop_ids.discard(close)
    engine.string_stops = ["</answer>"]

    def boost(_m, _i, out):
        out = out.clone()
        out[..., close] += 1e4
        return out

    handle = model.lm_head.register_forward_hook(boost)
    try:
        cfg = AgentConfig(max_new_tokens=10, max_turns=1)
        t = Agent(processor, cfg, {}, engine).rollout([_sample()], 1, seed=0)[0]
    finally:
        handle.remove()
    assert t.num_sampled_tokens == 1 and t.turns[-1].text == "</answer>"


def test_an_invented_tool_name_is_recorded_as_unknown(processor):
    # a model after a little SFT writes tool names like "zoom', 95, 88]}}": they must not
    # reach metric names (MLflow rejects them) nor be mistaken for a real tool
    script = {0: call("zoom', 95, 88]}}", image=1), 1: "<answer>1</answer>"}
    agent, _ = _agent(processor, lambda k, t: script[t])
    t = agent.rollout([_sample()], 1)[0]
    (c,) = t.tool_calls
    assert c.name == "unknown" and not c.ok
    assert c.arguments["name"] == "zoom', 95, 88]}}"
    assert "unknown tool" in c.result_text

"""The forward side of a GRPO update: length-bucketed micro-batches and log-prob passes
that reuse the rollout's image features exactly while the weights are unchanged."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
import torch
from PIL import Image

from miva.agent.engines.hf import HFEngine
from miva.agent.engines.replay import ReplayTurns
from miva.agent.forward import token_logprobs
from miva.agent.rollout import Agent
from miva.agent.tools import build_tools
from miva.config import AgentConfig
from miva.data.schema import Evidence, Sample, encode_png
from miva.rl.policy import micro_batches, policy_batch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from miva.agent.model import build_tiny, load_model

    return load_model(str(build_tiny(tmp_path_factory.mktemp("m") / "tiny", seed=0)))


def _sample(q: str) -> Sample:
    red = Image.new("RGB", (448, 448), (0, 0, 255))
    red.paste((255, 0, 0), (224, 224, 448, 448))
    return Sample(
        task="selection",
        images=[encode_png(red), encode_png(Image.new("RGB", (300, 448), (0, 255, 0)))],
        question=q,
        answer_type="image_index",
        answer=1,
        evidence=[Evidence(1, (224, 224, 448, 448))],
    )


@pytest.fixture(scope="module")
def rollout(tiny):
    """Two groups of four; half the members zoom first (a crop enters), all then sample."""
    model, processor = tiny
    zoom = (
        "<tool_call>"
        + json.dumps({"name": "zoom", "arguments": {"image": 1, "bbox": [56, 56, 112, 112]}})
        + "</tool_call>"
    )
    cfg = AgentConfig(max_new_tokens=40, max_turns=2)
    engine = HFEngine(model, processor)
    forced = ReplayTurns(
        engine, processor.tokenizer, lambda k, turn: zoom if turn == 0 and k % 2 else None
    )
    agent = Agent(processor, cfg, build_tools(cfg), forced)
    trajs = agent.rollout([_sample("Which is red?"), _sample("Which is green?")], 4, seed=2)
    return trajs, engine


def test_micro_batches_keep_groups_together_and_cover_every_trajectory_once(tiny, rollout):
    _, processor = tiny
    trajs, _ = rollout
    adv = torch.arange(len(trajs), dtype=torch.float32)
    valid = [i != 3 for i in range(len(trajs))]
    parts = micro_batches(trajs, adv, valid, 4, processor)
    assert [len(m) for m in parts] == [4, 4]
    # a group's members share a micro-batch (their prompt runs once), shortest group first
    assert all(len({t.sample_id for t in m.trajectories}) == 1 for m in parts)
    longest = [max(len(t.token_ids) for t in m.trajectories) for m in parts]
    assert longest == sorted(longest)
    seen = {}
    for m in parts:
        lengths = [len(t.token_ids) for t in m.trajectories]
        assert lengths == sorted(lengths)
        for t, a, row in zip(m.trajectories, m.advantages, m.loss_mask, strict=True):
            i = next(j for j, x in enumerate(trajs) if x is t)
            seen[i] = (float(a), float(row.sum()))
    assert sorted(seen) == list(range(len(trajs)))
    for i, (a, scored) in seen.items():
        assert a == float(i)  # advantages travel with their trajectory
        assert scored == (trajs[i].num_sampled_tokens if valid[i] else 0)
    # each micro-batch pads only to its own longest trajectory
    assert all(m.input_ids.shape[1] == max(len(t.token_ids) for t in m.trajectories) for m in parts)
    # three trajectories per micro-batch: a group is split, never reordered across groups
    assert [len(m) for m in micro_batches(trajs, adv, valid, 3, processor)] == [3, 3, 2]


def test_packed_groups_give_the_padded_batchs_logprobs_and_gradients(tiny, rollout):
    """Each group's shared prompt (with its images, and the zoom turn some members share)
    runs once in a packed row; log-probs, entropies and gradients equal the padded batch's."""
    model, processor = tiny
    trajs, _ = rollout
    batch = policy_batch(trajs, [0.0] * len(trajs), [True] * len(trajs), processor)
    padded = replace(batch, trajectories=[])  # no groups known: one sequence per row
    out = {}
    for name, b in (("packed", batch), ("padded", padded)):
        net = copy.deepcopy(model).train()
        logp, ent = token_logprobs(net, b, temperature=0.7, with_entropy=True)
        (logp * b.loss_mask).sum().backward()
        out[name] = (logp.detach(), ent, {n: p.grad for n, p in net.named_parameters()})
    (lp_a, ent_a, g_a), (lp_b, ent_b, g_b) = out["packed"], out["padded"]
    m = batch.loss_mask > 0
    assert (lp_a - lp_b).abs().max() < 1e-4 and (lp_a[~m] == 0).all()
    assert (ent_a - ent_b).abs().max() < 1e-4
    for n, grad in g_b.items():
        if grad is not None:
            assert (g_a[n] - grad).norm() <= 1e-4 * grad.norm() + 1e-8, n


def test_passes_without_gradients_reuse_the_rollouts_features(tiny, rollout):
    model, processor = tiny
    trajs, engine = rollout
    cache = engine.vision_cache
    cached = policy_batch(trajs, [0.0] * len(trajs), [True] * len(trajs), processor, cache)
    plain = policy_batch(trajs, [0.0] * len(trajs), [True] * len(trajs), processor)
    misses, hits = cache.misses, cache.hits
    with torch.no_grad():
        a, _ = token_logprobs(model, cached)
        b, _ = token_logprobs(model, plain)
    assert cache.misses == misses and cache.hits > hits  # nothing encoded again
    assert torch.equal(a, b) or (a - b).abs().max() < 1e-5
    m = cached.loss_mask > 0
    assert (a[m] - cached.rollout_logp[m]).abs().max() < 1e-4


def test_a_pass_with_gradients_encodes_afresh_and_reaches_the_vision_tower(tiny, rollout):
    model, processor = tiny
    trajs, engine = rollout
    model = copy.deepcopy(model).train()
    cache = engine.vision_cache
    batch = policy_batch(trajs, [1.0] * len(trajs), [True] * len(trajs), processor, cache)
    misses, hits = cache.misses, cache.hits
    logp, _ = token_logprobs(model, batch)
    (logp * batch.loss_mask).sum().backward()
    assert (cache.misses, cache.hits) == (misses, hits)
    grads = [p.grad for n, p in model.named_parameters() if "visual" in n]
    assert grads and all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    # after an update the cached features are stale: the next pass without gradients re-encodes
    with torch.no_grad():
        token_logprobs(model, batch)
    before = cache.misses
    with torch.no_grad():
        token_logprobs(model, batch)
    assert cache.misses == before
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    with torch.no_grad():
        token_logprobs(model, batch)
    assert cache.misses == before + len({r.key for r in batch.images})


def test_reference_model_features_are_kept_across_steps(tiny, rollout):
    """The frozen reference model gets its own entries, computed once and reused."""
    model, processor = tiny
    trajs, engine = rollout
    ref = copy.deepcopy(model).eval().requires_grad_(False)
    cache = engine.vision_cache
    batch = policy_batch(trajs, [0.0] * len(trajs), [True] * len(trajs), processor, cache)
    with torch.no_grad():
        token_logprobs(ref, batch)
        misses = cache.misses
        token_logprobs(ref, batch)
        token_logprobs(model, batch)
    assert cache.misses == misses


def test_a_micro_batch_with_nothing_scored_still_runs_the_forward_with_every_parameter(
    tiny, rollout
):
    """Under DDP every rank must run the forward and reach backward with all parameters in
    the graph, also when all of its micro-batch's trajectories are masked (else the ranks
    wait on each other for ever)."""
    from miva.rl.policy import LossSettings, micro_batch_loss

    model, processor = tiny
    trajs, _ = rollout
    model = copy.deepcopy(model).train()
    group = trajs[:4]
    batch = policy_batch(group, [1.0] * 4, [False] * 4, processor)
    assert float(batch.loss_mask.sum()) == 0.0
    with torch.no_grad():  # no gradient, no forward needed
        logp, _ = token_logprobs(model, batch)
    assert not logp.any()
    calls = []
    hook = model.register_forward_hook(lambda *_: calls.append(1))
    try:
        loss, metrics = micro_batch_loss(model, batch, LossSettings(num_seqs=8, num_tokens=100))
    finally:
        hook.remove()
    assert calls == [1] and float(loss.detach()) == 0.0 and metrics["tokens"] == 0
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert not p.grad.any(), name

"""Exactness of the rollout caches (docs/rollouts.md): the KV cache carried across turns,
the shared prompt prefill and the vision-feature cache change how much is computed, never
what. Same seed -> same trajectories with and without them; log-probs within 1e-4 of
each other and of the trainer's full forward; 3-D RoPE positions equal the model's own."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from PIL import Image

from miva.agent.engines.hf import HFEngine, _compact
from miva.agent.engines.replay import ReplayTurns
from miva.agent.forward import collate, token_logprobs
from miva.agent.positions import mrope_positions
from miva.agent.rollout import Agent
from miva.agent.tools import build_tools
from miva.agent.vision import VisionCache, encode_images, split_images, weights_version
from miva.config import AgentConfig
from miva.data.schema import Evidence, Sample, encode_png

TOL = 1e-4  # float32 on CPU; see docs/rollouts.md for bf16


def _sample(question: str, colour=(255, 0, 0)) -> Sample:
    a = Image.new("RGB", (448, 448), (0, 0, 255))
    a.paste(colour, (224, 224, 448, 448))
    return Sample(
        task="selection",
        images=[encode_png(a), encode_png(Image.new("RGB", (448, 300), (0, 255, 0)))],
        question=question,
        answer_type="image_index",
        answer=1,
        evidence=[Evidence(1, (224, 224, 448, 448))],
    )


def _call(name, **args):
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


N_PER = 3


def _script(key, turn):
    """Members 0 and 1 of each group zoom, member 2 views image 2, then all view image 1;
    the last turn is sampled. Member 0 of the second group samples from the start."""
    if key == N_PER or turn >= 2:
        return None
    if turn == 0:
        return (
            _call("view", image=2)
            if key % N_PER == 2
            else _call("zoom", image=1, bbox=[56, 56, 112, 112])
        )
    return _call("view", image=1)


def _rollout(model, processor, kv_cache: bool, vision_cache: bool, seed: int = 4):
    cfg = AgentConfig(max_new_tokens=40, max_turns=3, temperature=1.0)
    engine = HFEngine(model, processor, kv_cache=kv_cache, vision_cache=vision_cache)
    agent = Agent(
        processor, cfg, build_tools(cfg), ReplayTurns(engine, processor.tokenizer, _script)
    )
    samples = [_sample("Which image shows the red square?"), _sample("Where is it?", (250, 10, 10))]
    return agent.rollout(samples, n_per_sample=N_PER, seed=seed), engine


@pytest.fixture(scope="module")
def runs(tiny):
    model, processor = tiny
    cached, engine = _rollout(model, processor, True, True)
    plain, _ = _rollout(model, processor, False, False)
    return cached, plain, engine


def test_same_seed_same_trajectories_with_and_without_caches(runs):
    cached, plain, _ = runs
    assert [t.token_ids for t in cached] == [t.token_ids for t in plain]
    assert [t.status for t in cached] == [t.status for t in plain]
    for a, b in zip(cached, plain, strict=True):
        assert torch.allclose(
            torch.tensor(a.sampled_logprobs), torch.tensor(b.sampled_logprobs), atol=TOL
        )
    # the workload is multi-turn with images entering the context
    assert max(t.num_turns for t in cached) == 3
    assert max(len(t.images) for t in cached) == 4


def test_cached_rollout_logprobs_equal_the_trainers_full_forward(tiny, runs):
    model, processor = tiny
    cached, _, _ = runs
    batch = collate(cached, processor)
    with torch.no_grad():
        lp, _ = token_logprobs(model, batch)
    m = batch.loss_mask > 0
    assert int(m.sum()) == sum(t.num_sampled_tokens for t in cached)
    assert (lp[m] - batch.rollout_logp[m]).abs().max() < TOL


def test_placeholders_match_features_for_every_sequence(tiny, runs):
    from miva.agent.assembly import check_parity

    _, processor = tiny
    for t in runs[0]:
        check_parity(
            t.token_ids,
            t.image_grid_thw.tolist(),
            processor.token_id("<|image_pad|>"),
            processor.merge_size,
            t.pixel_values,
        )
        assert len(t.image_keys) == len(t.images)


def test_the_caches_did_their_work(runs):
    cached, _, engine = runs
    # turn 0: two prompts computed once each for their three members
    assert engine.stats["shared_rows"] == 2 * (N_PER - 1)
    # later turns ran only the new tokens: far more tokens reused than prefilled
    assert engine.stats["reused_tokens"] > engine.stats["prefill_tokens"]
    # each distinct image encoded once: the samples' first images differ, their second
    # (green) images are the same content; one zoom crop per sample; views re-use originals
    distinct = {k for t in cached for k in t.image_keys}
    assert engine.vision_cache.misses == len(distinct) == 2 + 1 + 2
    assert engine.vision_cache.hits > 0


def test_positions_equal_the_models_own(tiny, runs):
    model, processor = tiny
    image_id = processor.token_id("<|image_pad|>")
    for t in runs[0]:
        ids = torch.tensor([t.token_ids])
        want, _ = model.model.get_rope_index(
            ids, mm_token_type_ids=(ids == image_id).int(), image_grid_thw=t.image_grid_thw
        )
        got, end = mrope_positions(t.token_ids, t.image_grid_thw.tolist(), image_id, 2)
        assert torch.equal(got, want[:, 0])
        # extended from the end of the prompt (its two images), the positions are the same
        cut, k, grids = t.prompt_length, 2, t.image_grid_thw.tolist()
        head, mid = mrope_positions(t.token_ids[:cut], grids[:k], image_id, 2)
        tail, end2 = mrope_positions(t.token_ids[cut:], grids[k:], image_id, 2, start=mid)
        assert torch.equal(torch.cat([head, tail], 1), got) and end2 == end


def test_greedy_rollouts_agree_too(tiny):
    model, processor = tiny
    cfg = AgentConfig(max_new_tokens=40, max_turns=3, temperature=0.0)
    out = []
    for kv in (True, False):
        engine = HFEngine(model, processor, temperature=0.0, kv_cache=kv, vision_cache=kv)
        agent = Agent(
            processor, cfg, build_tools(cfg), ReplayTurns(engine, processor.tokenizer, _script)
        )
        out.append(agent.rollout([_sample("Which?")], n_per_sample=N_PER, seed=0))
    assert [t.token_ids for t in out[0]] == [t.token_ids for t in out[1]]


def test_a_checkpoints_generation_config_does_not_change_sampling(tiny_dir, tmp_path):
    """A real Qwen checkpoint's generation_config sets repetition_penalty and top_k; the hf
    engine must sample the policy being trained, whatever the folder says."""
    from transformers import GenerationConfig

    from miva.agent.model import load_model

    folder = tmp_path / "with-gen-config"
    import shutil

    shutil.copytree(tiny_dir, folder)
    gc = GenerationConfig.from_pretrained(folder)
    gc.repetition_penalty, gc.top_k, gc.do_sample, gc.temperature = 1.5, 1, True, 0.3
    gc.save_pretrained(folder)
    outs = []
    for where in (tiny_dir, folder):
        model, processor = load_model(str(where))
        cfg = AgentConfig(max_new_tokens=12, max_turns=1, temperature=1.0)
        agent = Agent(processor, cfg, {}, HFEngine(model, processor))
        outs.append(agent.rollout([_sample("Which?")], n_per_sample=4, seed=7))
    assert GenerationConfig.from_pretrained(folder).repetition_penalty == 1.5
    assert [t.token_ids for t in outs[0]] == [t.token_ids for t in outs[1]]
    assert [t.sampled_logprobs for t in outs[0]] == [t.sampled_logprobs for t in outs[1]]
    # top_k 1 would have made the four samples identical
    assert len({tuple(t.token_ids) for t in outs[1]}) > 1


def test_vision_features_are_recomputed_after_the_weights_change(tiny, runs):
    model = copy.deepcopy(tiny[0])
    t = runs[0][0]
    refs = split_images(t.pixel_values, t.image_grid_thw, t.image_keys)
    cache = VisionCache()
    first = encode_images(model, refs, cache)
    assert cache.misses == len({r.key for r in refs})
    again = encode_images(model, refs, cache)
    assert all(a is b for a, b in zip(first, again, strict=True))  # served from the cache
    before = weights_version(model.model.visual)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    with torch.no_grad():
        for p in model.parameters():
            p.grad = torch.ones_like(p)
    opt.step()
    assert weights_version(model.model.visual) != before
    after = encode_images(model, refs, cache)
    fresh = encode_images(model, refs, None)
    for a, f, old in zip(after, fresh, first, strict=True):
        assert torch.allclose(a, f) and not torch.allclose(a, old)


def test_gradients_through_shared_image_features_equal_the_models_own_forward(tiny, runs):
    """The log-prob function encodes each distinct image once and scatters it into every
    sequence that shows it; loss and gradients equal the model's own forward, which
    encodes every image of every sequence."""
    model, processor = tiny
    model = copy.deepcopy(model).train()
    trajs = runs[0][:N_PER]  # one group: the prompt images are shared
    batch = collate(trajs, processor)
    logp, _ = token_logprobs(model, batch)
    ours = -(logp * batch.loss_mask).sum()
    ours.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    image_id = processor.token_id("<|image_pad|>")
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        pixel_values=torch.cat([t.pixel_values for t in trajs]),
        image_grid_thw=torch.cat([t.image_grid_thw for t in trajs]),
        mm_token_type_ids=(batch.input_ids == image_id).int(),
    )
    ref = torch.log_softmax(out.logits[:, :-1].float(), -1).gather(-1, batch.input_ids[:, 1:, None])
    theirs = -(ref.squeeze(-1) * batch.loss_mask).sum()
    theirs.backward()
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)
    assert any("visual" in n for n in grads)
    for n, p in model.named_parameters():
        if p.grad is not None:  # float32 sums in another order: relative to the gradient's norm
            assert (grads[n] - p.grad).norm() <= 1e-4 * p.grad.norm() + 1e-8, n


def test_compacting_the_cache_keeps_each_rows_slots_in_order(tiny):
    from miva.agent.engines.kv import batch_cache

    cache = batch_cache(tiny[0].config)
    keys = torch.arange(2 * 1 * 6 * 1, dtype=torch.float32).view(2, 1, 6, 1)
    cache.update(keys.clone(), -keys.clone(), 0)
    mask = torch.tensor([[0, 1, 0, 0, 1, 0], [0, 0, 0, 1, 0, 0]])
    cache, new = _compact(cache, mask)
    assert new.tolist() == [[1, 1], [1, 0]]
    assert cache.layers[0].keys[:, 0, :, 0].tolist() == [[1.0, 4.0], [9.0, 6.0]]
    assert cache.layers[0].values[0, 0, :, 0].tolist() == [-1.0, -4.0]


def test_spare_layer_holds_what_concatenation_would(tiny):
    """Updates into spare room, reserve, row selection with repeats: the layer always
    shows exactly the keys and values that plain concatenation would."""
    from miva.agent.engines.kv import SpareLayer

    g = torch.Generator().manual_seed(0)
    layer, ref_k, ref_v = SpareLayer(), None, None
    for step, add in enumerate([5, 1, 1, 3, 1]):
        k, v = torch.randn(3, 2, add, 4, generator=g), torch.randn(3, 2, add, 4, generator=g)
        if step == 2:
            layer.reserve(10)
        got_k, got_v = layer.update(k, v)
        ref_k = k if ref_k is None else torch.cat([ref_k, k], 2)
        ref_v = v if ref_v is None else torch.cat([ref_v, v], 2)
        assert torch.equal(got_k, ref_k) and torch.equal(got_v, ref_v)
        assert layer.get_seq_length() == ref_k.shape[2]
    idx = torch.tensor([2, 2, 0])
    layer.reorder_cache(idx)
    assert torch.equal(layer.keys, ref_k[idx]) and torch.equal(layer.values, ref_v[idx])
    k, v = torch.randn(3, 2, 1, 4, generator=g), torch.randn(3, 2, 1, 4, generator=g)
    got_k, _ = layer.update(k, v)
    assert torch.equal(got_k, torch.cat([ref_k[idx], k], 2))


def test_rows_are_not_continued_once_the_weights_change(tiny):
    """A cached row is only continued with the weights that computed it."""
    from miva.agent.engines.base import GenRequest

    model, processor = tiny
    model = copy.deepcopy(model)
    engine = HFEngine(model, processor)
    ids = processor.tokenizer.encode("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n")

    def turn(tokens, t):
        return engine.generate([GenRequest(tokens, None, None, 4, key=0, turn=t)], seed=t)[0]

    first = turn(ids, 0)
    longer = ids + first.token_ids + ids
    turn(longer, 1)
    assert engine.stats["reused_tokens"] == len(ids) + len(first.token_ids) - 1
    engine.release()
    turn(ids, 0)
    with torch.no_grad():
        model.lm_head.weight.mul_(1.01)  # an update in place, as an optimizer step does
    reused = engine.stats["reused_tokens"]
    turn(longer, 1)
    assert engine.stats["reused_tokens"] == reused  # the stale row was not continued

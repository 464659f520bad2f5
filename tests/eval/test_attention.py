"""Attention-to-image diagnostics: segment and summary math by hand, and the eager pass on
the tiny model checked against the full attention matrices it returns."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from miva.agent.trajectory import Trajectory
from miva.eval.attention import (
    AFTER,
    AFTER_TEXT,
    BEFORE,
    TrajectoryAttention,
    eager_attention,
    generated_segments,
    image_share_rows,
    summarize,
    trajectory_attention,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from miva.agent.model import build_tiny, load_model

    folder = build_tiny(tmp_path_factory.mktemp("models") / "tiny-random", seed=0)
    return load_model(str(folder))  # sdpa, as the eval loads it


def _trajectory(processor, parts) -> Trajectory:
    """A finished trajectory from ("prompt" | "sampled", text) and ("image", PIL) parts:
    image placeholders and pixel values built with the model's own image processor, the
    loss mask 1 exactly on "sampled" text."""
    tok = processor.tokenizer
    image_id = processor.token_id("<|image_pad|>")
    ids, mask, pixels, grids = [], [], [], []
    for kind, value in parts:
        if kind == "image":
            out = processor.image_processor(images=[value], return_tensors="pt")
            n = int(out["image_grid_thw"][0].prod()) // processor.merge_size**2
            new = [processor.token_id("<|vision_start|>"), *[image_id] * n]
            new.append(processor.token_id("<|vision_end|>"))
            pixels.append(out["pixel_values"])
            grids.append(out["image_grid_thw"])
        else:
            new = tok.encode(value, add_special_tokens=False)
        ids += new
        mask += [int(kind == "sampled")] * len(new)
    prompt_length = mask.index(1)
    return Trajectory(
        sample_id="s",
        token_ids=ids,
        loss_mask=mask,
        sampled_logprobs=[0.0] * len(ids),
        prompt_length=prompt_length,
        pixel_values=torch.cat(pixels) if pixels else None,
        image_grid_thw=torch.cat(grids) if grids else None,
    )


def _parts(tool_image: bool):
    red = Image.new("RGB", (56, 56), (255, 0, 0))
    blue = Image.new("RGB", (56, 56), (0, 0, 255))
    tool = [("prompt", "<tool_response>zoomed</tool_response>")]
    if tool_image:
        tool.append(("image", blue))
    return [
        ("prompt", "<|im_start|>user\nWhich image is red?"),
        ("image", red),
        ("prompt", "<|im_end|>\n<|im_start|>assistant\n"),
        ("sampled", "<think>look again</think><tool_call>zoom</tool_call>"),
        ("prompt", "<|im_end|>\n<|im_start|>user\n"),
        *tool,
        ("prompt", "<|im_end|>\n<|im_start|>assistant\n"),
        ("sampled", "<answer>1</answer>"),
    ]


# ------------------------------------------------------------------------------ pure parts


def test_image_share_rows_by_hand():
    # 1 head, keys [img, txt, img]; row 0 = [0.5, 0.5, 0], row 1 = [0.2, 0.3, 0.5]
    attn = torch.tensor([[[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]]])
    share = image_share_rows(attn, torch.tensor([0, 1]), torch.tensor([True, False, True]))
    assert share.tolist() == pytest.approx([0.5, 0.7])
    # two heads average: head 2 puts everything on text -> shares halve
    two = torch.cat([attn, torch.tensor([[[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]])])
    share = image_share_rows(two, torch.tensor([0, 1]), torch.tensor([True, False, True]))
    assert share.tolist() == pytest.approx([0.25, 0.35])


def test_summarize_by_hand():
    # trajectory 1: 2 layers, tokens before, before, after(k=1); trajectory 2: before only
    p1 = TrajectoryAttention(
        "a", [0, 1, 2], [BEFORE, BEFORE, AFTER], [0, 0, 1], [[0.4, 0.2, 0.6], [0.2, 0.0, 0.8]]
    )
    p2 = TrajectoryAttention("b", [0, 1], [BEFORE, AFTER_TEXT], [0, 0], [[0.1, 0.3], [0.3, 0.1]])
    m = summarize([p1, p2]).metrics
    # p1 layer means per token: 0.3, 0.1, 0.7; p2: 0.2, 0.2
    # before: p1 (0.3+0.1)/2 = 0.2, p2 0.2 -> 0.2; after: only p1 -> 0.7
    assert m["attention/image_share/before_tools"] == pytest.approx(0.2)
    assert m["attention/image_share/after_tools"] == pytest.approx(0.7)
    assert m["attention/image_share/after_tool_1"] == pytest.approx(0.7)
    assert m["attention/image_share/after_text_tools"] == pytest.approx(0.2)
    # all: p1 (0.3+0.1+0.7)/3 = 0.3667, p2 0.2 -> 0.2833
    assert m["attention/image_share/all"] == pytest.approx((1.1 / 3 + 0.2) / 2)
    # layer 0 before: p1 (0.4+0.2)/2 = 0.3, p2 0.1 -> 0.2; layer 1 after: p1 0.8
    assert m["attention/image_share/layer_0/before_tools"] == pytest.approx(0.2)
    assert m["attention/image_share/layer_1/after_tools"] == pytest.approx(0.8)
    assert m["attention/items"] == 2.0 and m["attention/items_with_image_tools"] == 1.0
    curve = summarize([p1, p2], n_bins=3).curve
    assert curve["position"] == [0, 1, 2]
    assert curve[BEFORE] == pytest.approx([0.25, 0.1, None]) and curve[AFTER][2] == 0.7


# ------------------------------------------------------------------------------ tiny model


def test_shares_match_the_full_attention_and_lie_in_0_1(tiny):
    model, processor = tiny
    traj = _trajectory(processor, _parts(tool_image=True))
    prof = trajectory_attention(model, processor, traj)
    n_layers = model.config.text_config.num_hidden_layers
    targets = [t for t, m in enumerate(traj.loss_mask) if m]
    assert len(prof.shares) == n_layers and all(len(r) == len(targets) for r in prof.shares)
    assert all(0.0 <= v <= 1.0 for row in prof.shares for v in row)
    assert model.config._attn_implementation == "sdpa"  # restored after the eager pass

    # the same pass through transformers' own attention outputs
    from miva.agent.assembly import mm_token_type_ids

    image_id = processor.token_id("<|image_pad|>")
    input_ids = torch.tensor([traj.token_ids])
    with eager_attention(model), torch.no_grad():
        out = model(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            pixel_values=traj.pixel_values,
            image_grid_thw=traj.image_grid_thw,
            mm_token_type_ids=mm_token_type_ids(input_ids, image_id),
            output_attentions=True,
        )
    is_image = input_ids[0] == image_id
    assert len(out.attentions) == n_layers
    for layer, attn in enumerate(out.attentions):
        a = attn[0].float()  # [heads, L, L]
        rows = a[:, [t - 1 for t in targets], :]
        assert torch.allclose(rows.sum(-1), torch.ones_like(rows.sum(-1)), atol=1e-5)
        by_hand = rows[:, :, is_image].sum(-1).mean(0)  # image mass, mean over heads
        text = rows[:, :, ~is_image].sum(-1).mean(0)
        assert torch.allclose(by_hand + text, torch.ones_like(text), atol=1e-5)
        assert prof.shares[layer] == pytest.approx(by_hand.tolist(), abs=1e-5)


def test_inserting_an_image_moves_the_share_after_the_tool_only(tiny):
    model, processor = tiny
    with_image = trajectory_attention(model, processor, _trajectory(processor, _parts(True)))
    text_only = trajectory_attention(model, processor, _trajectory(processor, _parts(False)))
    assert set(with_image.groups) == {BEFORE, AFTER}
    assert set(text_only.groups) == {BEFORE, AFTER_TEXT}
    a, b = with_image.layer_mean(), text_only.layer_mean()
    n_before = with_image.groups.count(BEFORE)
    # causal attention: tokens written before the tool result cannot see the new image
    assert a[:n_before] == pytest.approx(b[:n_before], abs=1e-5)
    # after it, the new image's tokens take a share of every generated token's attention
    after_with = sum(a[n_before:]) / len(a[n_before:])
    after_without = sum(b[n_before:]) / len(b[n_before:])
    assert after_with > after_without + 0.01


def test_generated_segments_on_a_built_trajectory(tiny):
    _, processor = tiny
    traj = _trajectory(processor, _parts(True))
    segs = generated_segments(traj.token_ids, traj.loss_mask, processor.token_id("<|image_pad|>"))
    assert [(s.group, s.tool_index) for s in segs] == [(BEFORE, 0), (AFTER, 1)]
    assert sum(s.end - s.start for s in segs) == sum(traj.loss_mask)


def test_eval_cli_logs_attention_metrics_and_plots_them(tmp_path):
    """`miva eval` on the tiny model with the diagnostics on: metrics in metrics.json and
    the plot in report.html; with them off (the default) neither appears."""
    import json

    from miva.cli import main
    from tests.eval.test_agent_eval import FAST
    from tests.eval.test_mig_bench import _folder as mig_folder

    folder = mig_folder(tmp_path)
    args = ["evaluate", "--model", "tiny-random", "--bench", "mig-bench", "--path", str(folder)]
    args += FAST
    on = ["--set", "evaluate.attention_diagnostics=true", "--set", "evaluate.attention_max_items=2"]
    assert main([*args, "--out", str(tmp_path / "on"), *on]) == 0
    metrics = json.loads((tmp_path / "on" / "metrics.json").read_text())
    key = "eval/mig-bench/attention/image_share/before_tools"
    assert 0.0 < metrics[key] < 1.0
    assert metrics["eval/mig-bench/attention/items"] == 2.0
    assert 0.0 <= metrics["eval/mig-bench/attention/image_share/layer_3/all"] <= 1.0
    assert "Attention to the image" in (tmp_path / "on" / "report.html").read_text()

    assert main([*args, "--out", str(tmp_path / "off")]) == 0
    metrics = json.loads((tmp_path / "off" / "metrics.json").read_text())
    assert not any("/attention/" in k for k in metrics)
    assert "Attention to the image" not in (tmp_path / "off" / "report.html").read_text()

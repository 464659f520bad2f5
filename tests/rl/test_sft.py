"""SFT cold start: gold trajectories through the real agent runtime, loss goes down, LoRA is merged."""

from __future__ import annotations

import pytest

from miva.config import load_config
from miva.rl.metrics import read_metrics


def test_gold_trajectories_answer_correctly(dataset):
    from miva.rl.grpo import _convert_answer
    from miva.rl.rewards import score
    from miva.rl.rewards.registry import RewardSettings
    from miva.rl.setup import load_policy, load_training_samples
    from miva.rl.sft import build_gold

    cfg = load_config("tiny-cpu")
    samples = load_training_samples(dataset)
    _, processor = load_policy("tiny-random", cfg.model)
    gold = build_gold(samples, processor, cfg, progress=False)
    assert len(gold) >= len(samples) * 0.9
    by_id = {s.id: s for s in samples}
    rows = score(
        gold, [by_id[t.sample_id] for t in gold], RewardSettings.of(cfg.reward, _convert_answer)
    )
    # the gold answer scores (boxes survive the model-coordinate round trip) and the format holds
    assert sum(r["accuracy"] >= 0.5 for r in rows) / len(rows) > 0.95
    assert all(r["format"] == 1.0 for r in rows)
    assert any(t.tool_calls and t.tool_calls[0].name == "zoom" and t.tool_calls[0].ok for t in gold)
    assert all(t.loss_mask[: t.prompt_length] == [0] * t.prompt_length for t in gold)


@pytest.mark.slow
@pytest.mark.parametrize("lora", [False, True])
def test_sft_trains_and_saves_a_loadable_model(dataset, tmp_path, lora):
    from miva.agent.model import load_model
    from miva.rl.sft import run_sft

    cfg = load_config(
        "tiny-cpu",
        [
            "sft.steps=6",
            "sft.batch_size=4",
            "sft.log_every=1",
            "sft.warmup_steps=0",
            f"sft.lora.enabled={str(lora).lower()}",
            "sft.lora.target_modules=[q_proj, v_proj]",
        ],
    )
    out = tmp_path / "sft"
    res = run_sft(cfg, "tiny-random", dataset, str(out), progress=False)
    losses = [r["sft/loss"] for r in read_metrics(out / "sft_metrics.jsonl")]
    assert len(losses) == 6 and losses[-1] < losses[0]
    model, _ = load_model(str(out))
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert res.gold > 0


def test_descriptions_name_only_the_attributes_the_question_asks_about():
    from types import SimpleNamespace

    from miva.data.schema import Evidence
    from miva.rl.sft import _descriptions

    captions = [
        "a large yellow circle at top left",
        "a small blue square labelled 'K3' at centre, a large blue striped circle at bottom left",
    ]

    def sample(question, target, task="attribute", holder=2):
        return SimpleNamespace(
            question=question,
            task=task,
            evidence=[Evidence(holder, (0.0, 0.0, 5.0, 5.0))],
            meta={"captions": captions, "query": {"target": target}},
        )

    by_colour = sample("What is the blue object?", {"colour": "blue"})
    assert _descriptions(by_colour, 6) == ["Image 1: yellow.", "Image 2: blue."]
    fine = sample(
        "What is the small blue square labelled 'K3'?",
        {"size": "small", "colour": "blue", "shape": "square", "label": "K3"},
    )
    assert _descriptions(fine, 6) == [
        "Image 1: large yellow circle.",
        "Image 2: small blue square labelled 'K3'.",
    ]
    textured = sample("What is the striped circle?", {"texture": "striped", "shape": "circle"})
    assert _descriptions(textured, 6) == ["Image 1: circle.", "Image 2: striped circle."]
    # one-holder families mark the image that holds the target
    selection = sample("Which image shows the blue object?", {"colour": "blue"}, "selection")
    assert _descriptions(selection, 6) == ["Image 1: yellow, no.", "Image 2: blue, yes."]
    # a question about one image describes that image, with the asked attribute
    about_one = sample("What colour is the striped circle in image 2?", {"texture": "striped"})
    about_one.meta["query"].update(image=2, ask="colour")
    assert _descriptions(about_one, 6) == ["Image 2: blue striped."]
    # no structured target (e.g. an external dataset): the clause is kept as it is
    plain = SimpleNamespace(
        question="What is the blue object?",
        task="attribute",
        evidence=[],
        meta={"captions": captions},
    )
    assert _descriptions(plain, 3) == [
        "Image 1: large yellow circle.",
        "Image 2: small blue square.",
    ]


def _closeup_samples(n: int = 12):
    import random

    from miva.data.schema import Evidence, Sample
    from miva.data.synth.questions import format_question, write_closeup
    from miva.data.synth.render import render_scene
    from miva.data.synth.scene import SceneDesigner
    from miva.data.synth.solver import solve

    out = []
    for seed in range(n):
        item = write_closeup(SceneDesigner(random.Random(seed), 336), 2, mc=False)
        sol = solve(item.scene, item.query)
        out.append(
            Sample(
                task="closeup",
                images=render_scene(item.scene),
                question=format_question(item.stem, "text", None),
                answer_type="text",
                answer=sol.value,
                evidence=[Evidence(k, tuple(float(v) for v in box)) for k, box in sol.evidence],
                meta={"query": item.query, "captions": ["a small object"] * 2},
            )
        )
    return out


@pytest.mark.parametrize("demo", [1.0, 0.0])
def test_closeup_gold_zooms_by_region_name_and_sees_the_evidence(demo):
    from miva.rl.rewards.tool_use import zoom_on_evidence
    from miva.rl.setup import load_policy
    from miva.rl.sft import build_gold

    cfg = load_config("tiny-cpu", ["agent.tools=[zoom]", f"sft.zoom_demo_accuracy={demo}"])
    samples = _closeup_samples()
    _, processor = load_policy("tiny-random", cfg.model)
    gold = build_gold(samples, processor, cfg, progress=False)
    by_id = {s.id: s for s in samples}
    assert len(gold) == len(samples)
    for t in gold:
        (call,) = t.tool_calls
        assert call.name == "zoom" and "region" in call.arguments and call.ok
        # a perfect demonstrator always zooms onto the evidence, a useless one never
        assert zoom_on_evidence(call, by_id[t.sample_id]) == (demo == 1.0)
        assert t.answer == by_id[t.sample_id].answer


def test_no_tool_fraction_prompts_a_share_of_gold_without_tools():
    from miva.rl.setup import load_policy
    from miva.rl.sft import build_gold

    cfg = load_config("tiny-cpu", ["agent.tools=[zoom]", "sft.no_tool_fraction=0.5"])
    samples = _closeup_samples(16)
    _, processor = load_policy("tiny-random", cfg.model)
    gold = build_gold(samples, processor, cfg, progress=False)
    plain = [t for t in gold if not t.tool_calls]
    assert 0 < len(plain) < len(gold)
    # the direct answers were prompted without the tools line
    assert all("Tools:" not in t.turns[0].text for t in plain)
    assert all("Tools:" in t.turns[0].text for t in gold if t.tool_calls)

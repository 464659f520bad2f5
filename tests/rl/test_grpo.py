"""The GRPO loop and SFT on the tiny preset: a step runs and learns something, bad input
fails early, non-finite rewards skip the step, resume is exact, DeepSpeed runs on CPU."""

from __future__ import annotations

import json
import math

import pytest
import torch

from miva.config import load_config
from miva.errors import ConfigError, DataError
from miva.rl import grpo
from miva.rl.metrics import read_metrics

STATUS_ALL_TRAIN = (
    "grpo.status_policy={ok: train, truncated: train, malformed: penalize, "
    "tool_error: mask, max_turns: mask, image_budget: mask}"
)


def even_token_share(trajectories, samples, cfg):
    """A toy reward every group has variance in: the share of sampled tokens with an even id."""
    out = []
    for t in trajectories:
        ids = [i for i, m in zip(t.token_ids, t.loss_mask, strict=True) if m]
        out.append(sum(1 for i in ids if i % 2 == 0) / max(len(ids), 1))
    return out


@pytest.fixture(autouse=True)
def toy_reward(monkeypatch):
    from miva.rl.rewards.registry import REWARDS

    monkeypatch.setitem(REWARDS, "even_tokens", even_token_share)


def small_cfg(*extra: str):
    """Short prompts (no tools) and short answers, rewarded by the toy reward (plus accuracy)."""
    return load_config(
        "tiny-cpu",
        [
            "agent.tools=[]",
            "agent.max_turns=1",
            "agent.max_new_tokens=6",
            "grpo.prompts_per_step=2",
            "grpo.group_size=4",
            "grpo.micro_batch_size=4",
            "grpo.lr=1e-3",
            "grpo.steps=2",
            "grpo.checkpoint_every=1",
            "reward.weights={accuracy: 1.0, even_tokens: 1.0}",
            STATUS_ALL_TRAIN,
            *extra,
        ],
    )


def _params(model_dir):
    from safetensors.torch import load_file

    return load_file(f"{model_dir}/model.safetensors")


def test_grpo_steps_update_the_model_and_log_every_metric(dataset, tmp_path):
    cfg = small_cfg("grpo.steps=1", "grpo.beta=0.05", "grpo.mu=2")
    res = grpo.train(cfg, "tiny-random", dataset, str(tmp_path / "out"), progress=False)
    row = read_metrics(tmp_path / "out" / "metrics.jsonl")[-1]
    for key in (
        "train/reward_mean",
        "train/reward/accuracy",
        "train/reward/format",
        "train/reward/even_tokens",
        "train/accuracy",
        "train/kl",
        "train/clip_frac",
        "train/entropy",
        "train/grad_norm",
        "rollout/turns",
        "rollout/response_tokens",
        "train/masked_frac",
        "perf/tokens_per_s",
        "perf/step_time_s",
        "rollout/drawn/accuracy",
        "rollout/drawn/reward_mean",
    ):
        assert key in row and math.isfinite(row[key]), key
    assert row["train/grad_norm"] > 0
    assert (tmp_path / "out" / "curves.png").exists() and res.curve
    from miva.agent.model import resolve

    before, after = _params(resolve("tiny-random")), _params(tmp_path / "out")
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_log_fn_metrics_join_each_step_and_training_mode_is_restored(dataset, tmp_path):
    seen = []

    def held_out(step, model):
        seen.append((step, model.training))
        model.eval()  # what an evaluation does; the trainer must switch back
        return {"eval/probe": 10.0 * step} if step == 2 else None

    cfg = small_cfg("grpo.steps=2")
    trainer = grpo.GRPOTrainer(
        cfg, "tiny-random", dataset, str(tmp_path / "out"), progress=False, log_fn=held_out
    )
    res = trainer.run()
    # the second step trained (and reached log_fn) in training mode again
    assert seen == [(1, True), (2, True)]
    assert "eval/probe" not in res.history[0] and res.history[1]["eval/probe"] == 20.0
    rows = read_metrics(tmp_path / "out" / "metrics.jsonl")
    assert rows[-1]["eval/probe"] == 20.0


@pytest.mark.slow
def test_masked_statuses_leave_the_update(dataset, tmp_path):
    # every trajectory is cut at 6 tokens (truncated) or answers (ok); masking both = no update
    cfg = small_cfg(
        "grpo.steps=1",
        "grpo.status_policy={ok: mask, truncated: mask, malformed: mask, tool_error: mask, "
        "max_turns: mask, image_budget: mask}",
    )
    grpo.train(cfg, "tiny-random", dataset, str(tmp_path / "out"), progress=False)
    row = read_metrics(tmp_path / "out" / "metrics.jsonl")[-1]
    assert row["train/masked_frac"] == 1.0
    assert "train/grad_norm" not in row  # nothing took part: no optimizer step
    from miva.agent.model import resolve

    before, after = _params(resolve("tiny-random")), _params(tmp_path / "out")
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
def test_non_finite_rewards_skip_the_step(dataset, tmp_path, monkeypatch):
    real = grpo.score

    def nan_score(trajs, samples, cfg):
        rows = real(trajs, samples, cfg)
        rows[0]["total"] = math.nan
        return rows

    monkeypatch.setattr(grpo, "score", nan_score)
    res = grpo.train(
        small_cfg("grpo.steps=1"), "tiny-random", dataset, str(tmp_path / "o"), progress=False
    )
    assert res.skipped_steps == 1
    assert read_metrics(tmp_path / "o" / "metrics.jsonl")[-1]["train/skipped_steps"] == 1


def test_bad_input_fails_before_work(dataset, tmp_path):
    from miva.data.io import write_dataset

    empty = tmp_path / "empty"
    write_dataset([], empty)
    with pytest.raises(DataError, match="no usable"):
        grpo.train(small_cfg(), "tiny-random", str(empty), str(tmp_path / "o"), progress=False)
    broken = tmp_path / "broken_model"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "qwen2_5_vl"}))
    with pytest.raises(DataError, match="missing"):
        grpo.train(small_cfg(), str(broken), dataset, str(tmp_path / "o"), progress=False)
    with pytest.raises(ConfigError, match="divisible"):
        small_cfg("grpo.micro_batch_size=3")


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_metrics(dataset, tmp_path, monkeypatch):
    cfg = small_cfg("grpo.steps=3")
    grpo.train(cfg, "tiny-random", dataset, str(tmp_path / "a"), progress=False)
    straight = read_metrics(tmp_path / "a" / "metrics.jsonl")

    # kill the second run in the middle of step 3 (after its rollout, inside the update)
    real_update = grpo.GRPOTrainer._update
    calls = {"n": 0}

    def dying_update(self, batch, adv):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed mid-step")
        return real_update(self, batch, adv)

    monkeypatch.setattr(grpo.GRPOTrainer, "_update", dying_update)
    with pytest.raises(KeyboardInterrupt):
        grpo.train(cfg, "tiny-random", dataset, str(tmp_path / "b"), progress=False)
    monkeypatch.setattr(grpo.GRPOTrainer, "_update", real_update)
    grpo.train(cfg, "tiny-random", dataset, str(tmp_path / "b"), resume=True, progress=False)
    resumed = read_metrics(tmp_path / "b" / "metrics.jsonl")

    assert [r["step"] for r in resumed] == [1, 2, 3]
    for a, b in zip(straight, resumed, strict=True):
        for key in a:
            if key.startswith("perf/"):
                continue
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["step"], key)
    pa, pb = _params(tmp_path / "a"), _params(tmp_path / "b")
    for k in pa:
        torch.testing.assert_close(pa[k], pb[k], rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_deepspeed_step_on_cpu(dataset, tmp_path):
    cfg = small_cfg("grpo.steps=1", "grpo.training_backend=deepspeed", "grpo.zero_stage=2")
    grpo.train(cfg, "tiny-random", dataset, str(tmp_path / "ds"), progress=False)
    row = read_metrics(tmp_path / "ds" / "metrics.jsonl")[-1]
    assert math.isfinite(row["train/loss"]) and row["train/grad_norm"] > 0
    from miva.agent.model import resolve

    before, after = _params(resolve("tiny-random")), _params(tmp_path / "ds")
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_drawn_metrics_describe_every_group_before_dynamic_sampling():
    from types import SimpleNamespace as NS

    from miva.rl.grpo import StepBatch, drawn_counts, gathered, rollout_metrics

    ev = [NS(image=1, bbox=(10, 10, 20, 20))]
    on = NS(name="zoom", ok=True, region={"image": 1, "bbox": [0, 0, 15, 15]})
    off = NS(name="zoom", ok=True, region={"image": 1, "bbox": [50, 50, 60, 60]})

    def part(correct, calls):
        trajs = [
            NS(tool_calls=c, num_turns=2, num_sampled_tokens=5, token_ids=[0] * 9) for c in calls
        ]
        rewards = [{"accuracy": float(x), "total": float(x)} for x in correct]
        n = len(correct)
        return StepBatch(
            trajs,
            [NS(evidence=ev)] * n,
            rewards,
            [float(x) for x in correct],
            [True] * n,
            ["ok"] * n,
        )

    solved = part([1, 1], [[on], [on]])  # zero variance: dynamic sampling drops it
    mixed = part([1, 0], [[on], [off]])
    trained = part([1, 0], [[on], [off]])
    trained.drawn = drawn_counts(
        StepBatch(
            solved.trajectories + mixed.trajectories,
            solved.samples + mixed.samples,
            solved.rewards + mixed.rewards,
            solved.totals + mixed.totals,
            [True] * 4,
            ["ok"] * 4,
        )
    )
    m = rollout_metrics(trained)
    assert m["train/accuracy"] == 0.5  # the trained (filtered) batch
    assert m["rollout/drawn/accuracy"] == 0.75  # every group drawn: 3 of 4
    assert m["rollout/drawn/reward_mean"] == 0.75
    assert m["rollout/drawn/zoom_on_evidence"] == 0.75  # 3 of 4 zooms overlap the evidence
    assert rollout_metrics(mixed)["rollout/drawn/accuracy"] == 0.5  # no filter: the batch itself
    # one process: gathering keeps the counts (ranks would add theirs)
    assert rollout_metrics(gathered(trained))["rollout/drawn/accuracy"] == 0.75


def test_lr_schedule_counts_grpo_steps_whatever_mu(dataset, tmp_path):
    cfg = small_cfg(
        "grpo.steps=4",
        "grpo.mu=2",
        "grpo.warmup_steps=1",
        "grpo.lr_decay=linear",
        "grpo.min_lr_ratio=0.0",
    )
    trainer = grpo.GRPOTrainer(cfg, "tiny-random", dataset, str(tmp_path / "out"), progress=False)
    shape = trainer.backend.scheduler.lr_lambdas[0]
    # 2 optimizer updates per GRPO step: 1 warm-up step = 2 updates, 4 steps = 8 updates
    assert [round(shape(i), 3) for i in range(9)] == [
        0.5, 1.0, 1.0, 0.833, 0.667, 0.5, 0.333, 0.167, 0.0,
    ]  # fmt: skip

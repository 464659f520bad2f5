"""Data-parallel GRPO on this CPU: `torchrun --nproc_per_node 2` with the gloo backend on the
tiny preset (tests/rl/dist_worker.py is what each rank runs).

- one step of 2 ranks x P prompts equals one step of 1 rank x 2P prompts (the same recorded
  trajectories replayed) in metrics, loss, gradients and updated weights, for every loss
  aggregation mode;
- in a real 3-step run (hf rollouts, dynamic sampling refilling on every rank) the ranks roll
  out disjoint prompts and hold identical parameters after every step;
- a 2-rank run killed in the middle of step 3 and resumed logs the same metrics and ends
  with the same weights as the uninterrupted run.

Tolerances: float32 sums over the same numbers in a different order (two ranks add their
shares, one process adds micro-batches) differ by a few ulps; gradients and weights are
compared to 1e-6 absolute (they are O(1e-3..1)), metrics to 1e-5 relative.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from . import dist_worker

WORKER = Path(dist_worker.__file__)
AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
REPLAY = ["grpo.steps=1", "grpo.dynamic_sampling=false"]
REAL = [
    "grpo.steps=3",
    "grpo.prompts_per_step=4",
    "grpo.max_refill_rounds=2",
    "reward.weights={even_tokens_on_half: 1.0}",
]


def torchrun(job: dict, path: Path, nproc: int = 2, timeout: int = 900):
    path.write_text(json.dumps(job))
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        str(WORKER),
        str(path),
    ]
    env = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    import os

    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        cwd=Path(__file__).resolve().parents[2],
    )


def seen(out: Path, rank: int) -> dict:
    return torch.load(out / f"seen-rank{rank}.pt", weights_only=False)


def weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


def grad_name(saved: str) -> str:
    """The parameter's name in the model from its name in model.safetensors."""
    if saved.startswith("visual."):
        return "model." + saved
    if saved.startswith("model."):
        return "model.language_model." + saved.removeprefix("model.")
    return saved


def same_metrics(a: list[dict], b: list[dict]) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b, strict=True):
        keys = {k for k in x if not k.startswith("perf/")}
        assert keys == {k for k in y if not k.startswith("perf/")}, x["step"]
        for k in sorted(keys):
            assert y[k] == pytest.approx(x[k], rel=1e-5, abs=1e-7), (x["step"], k)


@pytest.fixture(scope="module")
def toy_rewards():
    from miva.rl.rewards.registry import REWARDS

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(REWARDS, "even_tokens", dist_worker.even_token_share)
        mp.setitem(REWARDS, "even_tokens_on_half", dist_worker.even_tokens_on_half)
        yield


@pytest.fixture(scope="module")
def recorded(dataset, toy_rewards, tmp_path_factory) -> str:
    """Every training prompt rolled out once (4 samples each) by the real hf engine."""
    path = tmp_path_factory.mktemp("recorded") / "recorded.pkl"
    dist_worker.record(dataset, 4, str(path))
    return str(path)


@pytest.fixture(scope="module")
def runs(dataset, recorded, tmp_path_factory):
    """Launch the 2-rank runs once: replayed single steps per aggregation mode, a real
    3-step run, the same run killed mid-step 3, then (second launch) its resumption."""
    root = tmp_path_factory.mktemp("dist")
    job = {"dataset": dataset, "replay": recorded}
    first = [
        {
            "out": str(root / f"two-{mode}"),
            "replay": True,
            "overrides": [*REPLAY, "grpo.prompts_per_step=4", f"grpo.loss_agg={mode}"],
        }
        for mode in AGG_MODES
    ]
    first.append({"out": str(root / "straight"), "overrides": REAL})
    # last in the same launch (one torchrun start less): one rank dies in step 3, so this
    # launch fails; the runs before it left their outputs, which the tests check
    first.append({"out": str(root / "killed"), "overrides": REAL, "die_at_step": 3})
    killed = torchrun({**job, "runs": first}, root / "a.json")
    for spec in first[:-1]:
        assert (Path(spec["out"]) / "seen-rank1.pt").exists(), killed.stderr[-5000:]
    resumed = torchrun(
        {**job, "runs": [{"out": str(root / "killed"), "overrides": REAL, "resume": True}]},
        root / "b.json",
    )
    return {"root": root, "job": job, "killed": killed, "resumed": resumed}


@pytest.mark.parametrize("mode", AGG_MODES)
def test_two_ranks_equal_one_process_on_the_union_batch(runs, mode, tmp_path):
    one = tmp_path / "one"
    spec = {
        "out": str(one),
        "replay": True,
        "overrides": [*REPLAY, "grpo.prompts_per_step=4", f"grpo.loss_agg={mode}"],
    }
    base = dist_worker.run(runs["job"], spec)
    two = runs["root"] / f"two-{mode}"
    r0, r1 = seen(two, 0), seen(two, 1)

    # the union of the two ranks' prompts is the one process's batch, in the same order
    assert set(r0["steps"][1]).isdisjoint(r1["steps"][1])
    assert r0["steps"][1] + r1["steps"][1] == base["steps"][1]
    # metrics (loss, rewards, clip fractions, mismatch ...) and gradients after DDP's all-reduce
    same_metrics(base["history"], r0["history"])
    same_metrics(r0["history"], r1["history"])  # logged once, but every rank agrees
    assert base["grads"].keys() == r0["grads"].keys()
    for name, g in base["grads"].items():
        torch.testing.assert_close(r0["grads"][name], g, rtol=0, atol=1e-6, msg=name)
        torch.testing.assert_close(r1["grads"][name], g, rtol=0, atol=1e-6, msg=name)
    # the updated weights rank 0 saved. AdamW's first step moves a weight by lr * g / (|g| +
    # eps): where a gradient is within float noise of 0 (|g| ~ eps = 1e-8) the few-ulp
    # difference of summing the same micro-batch gradients in another order (4 micro-batches
    # in one process, 2 + 2 over the ranks) is magnified up to lr, so those weights are only
    # held to one step; every other weight to 1e-6
    wb, w2 = weights(one), weights(two)
    assert {grad_name(k) for k in wb} == set(base["grads"])
    steady_share = []
    for name, w in wb.items():
        steady = base["grads"][grad_name(name)].abs() > 1e-6
        steady_share.append(float(steady.float().mean()))
        torch.testing.assert_close(w2[name][steady], w[steady], rtol=0, atol=1e-6, msg=name)
        assert float((w2[name] - w).abs().max()) <= 2e-3 + 1e-6, name  # 2 x lr (1e-3)
    assert sorted(steady_share)[len(steady_share) // 2] > 0.5  # most weights held to 1e-6
    assert r0["digests"] == r1["digests"]


def test_ranks_roll_out_disjoint_prompts_and_stay_identical(runs):
    out = runs["root"] / "straight"
    r0, r1 = seen(out, 0), seen(out, 1)
    assert sorted(r0["steps"]) == [1, 2, 3]
    refilled = False
    for step in (1, 2, 3):
        a, b = r0["steps"][step], r1["steps"][step]
        assert a and b and set(a).isdisjoint(b), step
        refilled |= len(a) + len(b) > 4  # dynamic sampling drew more than the 4 prompts
        assert r0["digests"][step] == r1["digests"][step], step
    assert refilled
    hist = r0["history"]
    assert [r["step"] for r in hist] == [1, 2, 3]
    for row in hist:
        assert row["rollout/refill_rounds"] <= 2
        assert 0 <= row["train/logp_mismatch_mean"] < 1e-4  # hf rollouts vs trainer forward
    # only rank 0 wrote the metrics file and the model folder
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert (out / "model.safetensors").exists()


def test_killed_run_resumes_to_the_uninterrupted_metrics(runs):
    killed, resumed = runs["killed"], runs["resumed"]
    assert killed.returncode != 0  # one rank died in step 3
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-5000:]
    straight, again = runs["root"] / "straight", runs["root"] / "killed"
    ckpt = again / "checkpoints" / "step-0000003"
    assert {p.name for p in ckpt.iterdir()} >= {
        "engine.pt",
        "state.json",
        "state-rank0.json",
        "state-rank1.json",
        "rng-rank0.pt",
        "rng-rank1.pt",
    }
    a = [json.loads(x) for x in (straight / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (again / "metrics.jsonl").read_text().splitlines()]
    same_metrics(a, b)
    wa, wb = weights(straight), weights(again)
    for name, w in wa.items():
        torch.testing.assert_close(wb[name], w, rtol=1e-5, atol=1e-7, msg=name)


# ----------------------------------------------------------------------------- DeepSpeed
# DeepSpeed runs 2 CPU ranks here (gloo, fp32, torch's AdamW); one launch of three runs
# takes minutes on this box, so these are slow tests. Weights are compared with a
# tolerance in units of the learning rate (1e-3): Adam's first step moves a weight by
# lr * g / (|g| + 1e-8), which for gradients near 1e-8 turns the last-bit differences of
# DeepSpeed's flat-buffer reductions into visible ones (measured: ZeRO-2 1e-6, ZeRO-3 3e-5).
DS_TOLERANCE = {2: 5e-6, 3: 1e-4}


@pytest.fixture(scope="module")
def deepspeed_runs(dataset, recorded, tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    ds = ["grpo.training_backend=deepspeed", "grpo.prompts_per_step=4"]
    specs = [
        {
            "out": str(root / f"zero{stage}"),
            "replay": True,
            "overrides": [*REPLAY, *ds, f"grpo.zero_stage={stage}"],
        }
        for stage in (2, 3)
    ]
    # ZeRO-3 with real rollouts: parameters gathered for generate, the model saved whole
    real = ["grpo.steps=2", *ds, "grpo.zero_stage=3", "reward.weights={even_tokens: 1.0}"]
    specs.append({"out": str(root / "zero3-real"), "overrides": real})
    done = torchrun({"dataset": dataset, "replay": recorded, "runs": specs}, root / "job.json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return root


@pytest.mark.slow
@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_two_ranks_match_one_process(deepspeed_runs, recorded, dataset, stage, tmp_path):
    job = {"dataset": dataset, "replay": recorded}
    spec = {
        "out": str(tmp_path / "one"),
        "replay": True,
        "overrides": [*REPLAY, "grpo.prompts_per_step=4"],
    }
    base = dist_worker.run(job, spec)
    two = deepspeed_runs / f"zero{stage}"
    r0, r1 = seen(two, 0), seen(two, 1)
    assert r0["steps"][1] + r1["steps"][1] == base["steps"][1]
    same_metrics(base["history"], r0["history"])
    wb, w2 = weights(tmp_path / "one"), weights(two)
    assert wb.keys() == w2.keys()
    for name, w in wb.items():
        torch.testing.assert_close(w2[name], w, rtol=0, atol=DS_TOLERANCE[stage], msg=name)


@pytest.mark.slow
def test_deepspeed_zero3_trains_on_real_rollouts(deepspeed_runs):
    from miva.agent.model import resolve

    out = deepspeed_runs / "zero3-real"
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(r["train/logp_mismatch_max"] < 1e-4 for r in rows)
    start, after = weights(Path(resolve("tiny-random"))), weights(out)
    assert start.keys() == after.keys()  # gathered: every tensor whole
    assert all(start[k].shape == after[k].shape for k in start)
    assert any(not torch.equal(start[k], after[k]) for k in start)
    shards = sorted(p.name for p in (out / "checkpoints" / "step-0000002" / "engine").iterdir())
    assert shards == [
        "zero_pp_rank_0_mp_rank_00_model_states.pt",
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_model_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    ]

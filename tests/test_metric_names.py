"""The metric glossary (`miva.metric_names`, rendered as docs/metrics.md) against what the
stages really log.

The stages run on tiny inputs (a real SFT and GRPO step of the tiny model, the validation
gate, the eval runner on recorded trajectories and two benchmarks' native folders); every
name they produce must fall under a glossary entry, and every entry must be produced,
except the few that need conditions a tiny run cannot reach (`NOT_REACHED`, each with its
reason): for those, the code that names them must still exist.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from miva.config import load_config
from miva.metric_names import GLOSSARY, lookup, metric_key

SRC = Path(__file__).resolve().parents[1] / "src" / "miva"

# entry -> (why a tiny run does not log it, a source fragment that names it)
NOT_REACHED = {
    "rollout/tool_calls/<tool>": ("the random tiny policy calls no tool", 'f"rollout/tool_calls/'),
    "eval/<set>/attention/image_share/<group>": (
        "the attention pass needs a model's trajectories; tests/eval/test_attention.py runs it",
        'PREFIX = "attention/image_share"',
    ),
    "eval/<set>/attention/image_share/layer_<layer>/<group>": (
        "as above",
        'f"{PREFIX}/layer_{layer}/{name}"',
    ),
    "eval/<set>/attention/items": ("as above", '"attention/items"'),
    "eval/<set>/attention/items_with_image_tools": (
        "as above",
        '"attention/items_with_image_tools"',
    ),
    "rollout/drawn/zoom_on_evidence": (
        "the random tiny policy calls no tool",
        'm["rollout/drawn/zoom_on_evidence"]',
    ),
    "sweep/seconds": ("a sweep run (tests/pipeline/test_sweep_local.py, slow)", '"sweep/seconds"'),
    "sweep/trials": ("a sweep run", '"sweep/trials"'),
    "sweep/best": ("a sweep run", '"sweep/best"'),
}

TINY = [
    "synthesize.n=24",
    "synthesize.image_size=56",
    "synthesize.images_per_sample=[2, 3]",
    "synthesize.workers=1",
    "registry.track_runs=false",
    "agent.max_turns=2",
    "agent.max_new_tokens=8",
    "sft.steps=2",
    "sft.batch_size=2",
    "sft.log_every=1",
    "grpo.steps=1",
    "grpo.prompts_per_step=2",
    "grpo.group_size=2",
    "grpo.micro_batch_size=4",
    "grpo.beta=0.05",  # logs train/kl
    "reward.weights={accuracy: 1.0, even_tokens: 1.0, judge: 0.5}",  # logs train/judge/*
    # the real judge client against a port nothing listens on: every judgement falls back
    "reward.judge.url=http://127.0.0.1:9/v1",
    "reward.judge.retries=0",
    "reward.judge.cache_dir=null",
    "grpo.rollout_correction.mode=token-tis",  # logs train/tis_*
    # truncated answers of the random policy still train, so the step updates
    "grpo.status_policy={ok: train, truncated: train, malformed: penalize, tool_error: mask, "
    "max_turns: mask, image_budget: mask}",
    "grpo.checkpoint_every=1",
    "validate.data_docs=false",
    "validate.max_quarantine_fraction=1",
    "validate.image_count=[3, 6]",  # quarantines the two-image rows
]


def even_token_share(trajectories, samples, cfg):
    """A reward every group has variance in (the random tiny policy never answers right),
    so the GRPO step updates: the share of sampled tokens with an even id."""
    out = []
    for t in trajectories:
        ids = [i for i, m in zip(t.token_ids, t.loss_mask, strict=True) if m]
        out.append(sum(1 for i in ids if i % 2 == 0) / max(len(ids), 1))
    return out


@pytest.fixture(scope="module")
def logged(tmp_path_factory) -> set[str]:
    """Every metric name the stages log on tiny inputs."""
    with pytest.MonkeyPatch.context() as mp:
        from miva.rl.rewards.registry import REWARDS

        mp.setitem(REWARDS, "even_tokens", even_token_share)
        return _run_stages(tmp_path_factory.mktemp("glossary"))


def _run_stages(tmp: Path) -> set[str]:
    from miva import stages
    from miva.eval.runner import run_eval
    from tests.eval.test_mc_bench import _folder as mc_folder
    from tests.eval.test_mig_bench import _folder as mig_folder
    from tests.eval.test_newer_benchmarks import _mmsi_folder, _probe_folder, _tree_folder
    from tests.eval.test_runner import _dataset, _factory, _policy

    cfg = load_config("tiny-cpu", TINY)
    data = stages.synthesize(cfg, tmp / "ds", progress=False)
    gate = stages.validate(cfg, data.output, tmp / "validated", progress=False)
    assert gate.value.rows_quarantined > 0, "the glossary needs validate/quarantine/<rule>"
    clean = f"{gate.output}/clean"
    sft = stages.sft(cfg, clean, tmp / "sft", progress=False)
    grpo = stages.grpo(cfg, clean, tmp / "grpo", sft.output, progress=False)
    names = set(gate.metrics) | set(sft.metrics)
    names |= {k for row in grpo.value.history for k in row if k != "step"}
    names |= _pretrain_names(tmp / "pretrain")

    ds, _ = _dataset(tmp)
    sampled = load_config("tiny-cpu", ["evaluate.greedy=false", "evaluate.pass_k=2"])
    result = run_eval(
        sampled,
        "main",
        dataset=str(ds),
        benches={
            "mig-bench": str(mig_folder(tmp)),
            "mc-bench": str(mc_folder(tmp)),
            # choice (micro/macro accuracy), text answers (em, f1), boxes with letters
            "mmsi-bench": str(_mmsi_folder(tmp / "mmsi")),
            "visualprobe": str(_probe_folder(tmp / "probe")),
            "treebench": str(_tree_folder(tmp / "tree")),
        },
        baseline="base",
        generate_factory=_factory(_policy),
    )
    return names | set(result.metrics)


def _pretrain_names(out: Path) -> set[str]:
    """`miva pretrain` for one step, with a probe evaluation: the names of its curve."""
    import json

    from miva.rl.pretrain import pretrain

    cfg = load_config(
        "tiny-cpu",
        [
            "pretrain.steps=1",
            "pretrain.batch_size=2",
            "pretrain.chunk=4",
            "pretrain.eval_items=2",
            "pretrain.eval_every=1",
            "pretrain.max_new_tokens=16",
        ],
    )
    res = pretrain(cfg, str(out), progress=False, log=lambda _: None)
    rows = (Path(res.output) / "pretrain_metrics.jsonl").read_text().splitlines()
    return {k for row in rows for k in json.loads(row) if k != "step"}


def test_every_logged_metric_is_in_the_glossary(logged):
    assert sorted(name for name in logged if lookup(name) is None) == []


def test_every_glossary_entry_is_logged(logged):
    reached = {lookup(name).pattern for name in logged if lookup(name) is not None}
    missing = [m.pattern for m in GLOSSARY if m.pattern not in reached | set(NOT_REACHED)]
    assert missing == [], "glossary entries nothing logs: remove them or log them"
    assert sorted(set(NOT_REACHED) & reached) == [], "now logged: drop them from NOT_REACHED"


def test_entries_a_tiny_run_cannot_reach_are_still_named_in_the_code():
    source = "\n".join(p.read_text() for p in SRC.rglob("*.py"))
    patterns = {m.pattern for m in GLOSSARY}
    for pattern, (_why, fragment) in NOT_REACHED.items():
        assert pattern in patterns, pattern
        assert fragment in source, f"{pattern}: nothing in src/ names it any more"


def test_lookup_and_mlflow_keys():
    assert lookup("eval/test/overall/accuracy").pattern == "eval/<set>/<task>/accuracy"
    assert lookup("eval/mig-bench/region/acc_iou50").stage == "evaluate"
    assert lookup("delta/test/overall/accuracy").pattern == "delta/<eval metric>"
    assert lookup("baseline/test/overall/nonsense") is None
    assert lookup("train/reward/accuracy").pattern == "train/reward/<component>"
    assert lookup("train/reward_mean").pattern == "train/reward_mean"
    assert lookup("train/made_up") is None
    assert lookup("delta/test/attribute/p_value").pattern == "delta/<set>/<task>/p_value"
    assert lookup("delta/test/attribute/accuracy").pattern == "delta/<eval metric>"
    assert lookup("pretrain/probe/colour").stage == "pretrain"
    assert metric_key("eval/test/overall/pass@4") == "eval/test/overall/pass_4"
    assert len({m.pattern for m in GLOSSARY}) == len(GLOSSARY)

"""Every metric MIVA logs, defined once: the glossary behind docs/metrics.md.

Names are flat and `/`-namespaced, the same in metrics files, KFP Metrics, MLflow and the
HTML reports: `sft/`, `train/`, `rollout/`, `perf/` (the training stages, one row per
logged step), `pretrain/` (`miva pretrain`, beside the model it writes), `validate/` (the
gate), `eval/<set>/<task>/` (evaluation; `<task>` is a task family, a benchmark's task or
`overall`), with `baseline/...` and `delta/...` mirroring every `eval/...` name for the
baseline model and the difference (plus `delta/.../p_value`, the paired test).

A `<placeholder>` in a pattern stands for one path segment. A test runs the stages on tiny
inputs and fails when a logged name matches no entry, or an entry matches nothing logged:
add a line here when you log something new.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Metric:
    pattern: str  # e.g. "train/reward/<component>"
    stage: str  # the stage that logs it
    meaning: str  # one line: what the number is

    @property
    def regex(self) -> re.Pattern[str]:
        parts = re.split(r"(<[a-z_]+>)", self.pattern)
        body = "".join("[^/]+" if p.startswith("<") else re.escape(p) for p in parts)
        return re.compile(f"^{body}$")


_EVAL = "evaluate"

GLOSSARY: tuple[Metric, ...] = (
    # ------------------------------------------------------------------ sft (per logged step)
    Metric("sft/loss", "sft", "Mean negative log-likelihood of the gold assistant tokens."),
    Metric("sft/grad_norm", "sft", "Gradient norm before clipping (sft.max_grad_norm)."),
    Metric("sft/lr", "sft", "Learning rate of the step (after warm-up)."),
    Metric("sft/tokens_per_s", "sft", "Gold tokens trained on per second of the step."),
    Metric("sft/skipped_steps", "sft", "Steps skipped so far because the loss was not finite."),
    # ------------------------------------------------------------------ grpo: the update
    Metric(
        "train/loss", "grpo", "Policy loss of the step (grpo.loss_agg), mean over the mu updates."
    ),
    Metric("train/grad_norm", "grpo", "Gradient norm of the last update, before clipping."),
    Metric("train/lr", "grpo", "Learning rate of the step (after warm-up)."),
    Metric(
        "train/skipped_steps", "grpo", "Steps skipped so far (non-finite reward, loss or gradient)."
    ),
    Metric(
        "train/kl",
        "grpo",
        "Mean k3 KL to the frozen reference per sampled token (grpo.beta > 0 only).",
    ),
    Metric(
        "train/clip_frac_low",
        "grpo",
        "Share of sampled tokens with negative advantage whose ratio is below 1 - eps_low.",
    ),
    Metric(
        "train/clip_frac_high",
        "grpo",
        "Share of sampled tokens with positive advantage whose ratio is above 1 + eps_high.",
    ),
    Metric(
        "train/clip_frac",
        "grpo",
        "clip_frac_low + clip_frac_high: tokens the clip stops from pushing further.",
    ),
    Metric(
        "train/ratio_mean",
        "grpo",
        "Mean ratio rho = exp(logp_new - logp_old) over sampled tokens (1 when mu = 1).",
    ),
    Metric(
        "train/approx_kl_old",
        "grpo",
        "Mean 0.5 (logp_new - logp_old)^2: how far the updates moved from the sampler.",
    ),
    Metric(
        "train/entropy",
        "grpo",
        "Mean entropy of the policy's next-token distribution on sampled tokens.",
    ),
    # ------------------------------------------------------------------ grpo: rollout vs trainer
    Metric(
        "train/logp_mismatch_mean",
        "grpo",
        "Mean |logp_trainer - logp_rollout| over sampled tokens: how far the rollout engine's "
        "log-probs are from the trainer's (every step, whatever grpo.rollout_correction).",
    ),
    Metric(
        "train/logp_mismatch_max",
        "grpo",
        "Largest |logp_trainer - logp_rollout| of any sampled token of the step, over all ranks.",
    ),
    Metric(
        "train/tis_weight_mean",
        "grpo",
        "Mean truncated importance weight min(exp(logp_old - logp_rollout), cap) over sampled "
        "tokens (grpo.rollout_correction token-tis only).",
    ),
    Metric(
        "train/tis_clip_frac",
        "grpo",
        "Share of sampled tokens whose importance weight was cut at grpo.rollout_correction.cap.",
    ),
    # ------------------------------------------------------------------ grpo: rewards and masks
    Metric(
        "train/reward_mean",
        "grpo",
        "Mean total reward of the step's trajectories (after the status policy).",
    ),
    Metric(
        "train/reward_std",
        "grpo",
        "Standard deviation of the total reward over the step's trajectories.",
    ),
    Metric(
        "train/reward/<component>",
        "grpo",
        "Mean unweighted value of one reward component (reward.weights).",
    ),
    Metric(
        "train/judge/items",
        "grpo",
        "Text answers the LLM judge was asked to score in the step (rank 0's under torchrun).",
    ),
    Metric(
        "train/judge/requests",
        "grpo",
        "Requests sent to the judge server in the step, retries included (cached ones cost none).",
    ),
    Metric(
        "train/judge/cache_hit_rate",
        "grpo",
        "Share of the step's judgements read from the disk cache (reward.judge.cache_dir).",
    ),
    Metric(
        "train/judge/fallback_rate",
        "grpo",
        "Share of judged answers without a usable judgement, scored by the rule instead.",
    ),
    Metric(
        "train/accuracy",
        "grpo",
        "Share of trajectories whose accuracy reward counts as correct (score >= 0.5).",
    ),
    Metric(
        "train/masked/<status>",
        "grpo",
        "Share of the step's trajectories with this status that the status policy masked.",
    ),
    Metric(
        "train/masked_frac",
        "grpo",
        "Share of the step's trajectories left out of the loss (status policy, no-signal groups).",
    ),
    # ------------------------------------------------------------------ grpo: rollouts
    Metric(
        "rollout/tool_call_rate", "grpo", "Share of trajectories that called at least one tool."
    ),
    Metric("rollout/tool_calls/<tool>", "grpo", "Calls of one tool per trajectory."),
    Metric("rollout/turns", "grpo", "Mean assistant turns per trajectory."),
    Metric("rollout/response_tokens", "grpo", "Mean tokens the policy sampled per trajectory."),
    Metric(
        "rollout/status/<status>",
        "grpo",
        "Share of trajectories that ended with this status (ok, truncated, malformed, ...).",
    ),
    Metric(
        "rollout/drawn/accuracy",
        "grpo",
        "Accuracy over every group drawn this step, before dynamic sampling kept the mixed "
        "ones: the policy's own accuracy on fresh training prompts (train/accuracy is the "
        "filtered batch's).",
    ),
    Metric(
        "rollout/drawn/reward_mean",
        "grpo",
        "Mean total reward over every group drawn this step, before dynamic sampling.",
    ),
    Metric(
        "rollout/drawn/trajectories",
        "grpo",
        "Trajectories drawn this step (all ranks, refills included): the denominator of the two above.",
    ),
    Metric(
        "rollout/drawn/zoom_on_evidence",
        "grpo",
        "Share of successful zoom calls (every group drawn) whose region overlaps an evidence "
        "box of the sample; logged when some zoom succeeded.",
    ),
    Metric(
        "rollout/zero_var_group_frac",
        "grpo",
        "Share of groups whose rewards were all equal (no learning signal).",
    ),
    Metric(
        "rollout/refill_rounds",
        "grpo",
        "Extra prompt rounds dynamic sampling drew to fill the step.",
    ),
    # ------------------------------------------------------------------ grpo: speed
    Metric("perf/step_time_s", "grpo", "Wall time of the whole step in seconds."),
    Metric(
        "perf/rollout_time_s", "grpo", "Seconds spent sampling and scoring the step's trajectories."
    ),
    Metric("perf/update_time_s", "grpo", "Seconds spent in the policy updates of the step."),
    Metric(
        "perf/tokens_per_s", "grpo", "Tokens of the step's trajectories per second of step time."
    ),
    # ------------------------------------------------------------------ validate
    Metric("validate/rows/read", "validate", "Rows read from readable shards."),
    Metric("validate/rows/lost_on_disk", "validate", "Rows of shards that could not be read."),
    Metric("validate/rows/total", "validate", "Rows the dataset declares (read + lost)."),
    Metric(
        "validate/rows/clean", "validate", "Rows that passed every row rule (the clean dataset)."
    ),
    Metric("validate/rows/quarantined", "validate", "Rows moved to quarantine."),
    Metric("validate/rows/quarantine_fraction", "validate", "quarantined / total."),
    Metric(
        "validate/rows/max_quarantine_fraction",
        "validate",
        "The gate's limit (validate.max_quarantine_fraction).",
    ),
    Metric("validate/quarantine/<rule>", "validate", "Rows quarantined by one rule."),
    # ------------------------------------------------------------------ evaluate: scores
    Metric(
        "eval/<set>/<task>/accuracy",
        _EVAL,
        "Mean item score: exact for choice/number/image, IoU >= 0.5 for boxes, EM for text (the "
        "headline); HR-Bench adds <file>_single and <file>_cross tasks, cycle-averaged.",
    ),
    Metric(
        "eval/<set>/<task>/mean_iou",
        _EVAL,
        "Mean IoU of the predicted box (0 when missing or on the wrong image).",
    ),
    Metric(
        "eval/<set>/<task>/acc_iou50",
        _EVAL,
        "Share of box answers with IoU >= 0.5 (MIG-Bench's Acc@0.5).",
    ),
    Metric(
        "eval/<set>/<task>/image_accuracy",
        _EVAL,
        "Share of items whose predicted image is right (image+box answers; MC-Bench presence on both images).",
    ),
    Metric(
        "eval/<set>/<task>/f1", _EVAL, "Mean SQuAD token F1, max over references (text answers)."
    ),
    Metric(
        "eval/<set>/<task>/em",
        _EVAL,
        "Mean exact match after SQuAD normalisation, max over references.",
    ),
    Metric(
        "eval/<set>/<task>/ap50",
        _EVAL,
        "MC-Bench instance AP at IoU 0.5 (COCO 101-point interpolation).",
    ),
    Metric(
        "eval/<set>/<task>/pass@<k>",
        _EVAL,
        "Unbiased pass@k over k sampled trajectories (evaluate.greedy false).",
    ),
    Metric("eval/<set>/overall/invalid_rate", _EVAL, "Share of items without a readable answer."),
    Metric("eval/<set>/<task>/items", _EVAL, "Items scored (per task and overall)."),
    Metric(
        "eval/<set>/<task>/majority_share",
        _EVAL,
        "Share of the most frequent gold answer among the items: what a constant answer scores. "
        "An accuracy shows learning only above it.",
    ),
    Metric(
        "eval/<set>/<task>/accuracy_ci95_low",
        _EVAL,
        "Lower end of the Wilson 95 % interval of the accuracy (k right of n items).",
    ),
    Metric(
        "eval/<set>/<task>/accuracy_ci95_high",
        _EVAL,
        "Upper end of the Wilson 95 % interval of the accuracy.",
    ),
    Metric("eval/<set>/overall/tasks", _EVAL, "Tasks in the set (MIG-Bench)."),
    Metric("eval/<set>/overall/micro_accuracy", _EVAL, "Accuracy over items, whatever their task."),
    Metric("eval/<set>/overall/macro_accuracy", _EVAL, "Mean of the per-task accuracies."),
    Metric(
        "eval/<set>/overall/micro_acc_iou50",
        _EVAL,
        "Acc@0.5 over items (MIG-Bench's headline is the macro mean).",
    ),
    Metric(
        "eval/<set>/overall/<family>_accuracy",
        _EVAL,
        "Accuracy over the items of one category family (TreeBench: perception, reasoning).",
    ),
    # ------------------------------------------------------------------ evaluate: attention
    Metric(
        "eval/<set>/attention/image_share/<group>",
        _EVAL,
        "Share of attention mass on image tokens while the model writes a token (rows of the "
        "generating position, mean over heads and layers), averaged over the group's tokens per "
        "trajectory, then over trajectories; <group>: all, before_tools, after_tools (after tool "
        "results that brought images), after_tool_<k>, after_text_tools "
        "(evaluate.attention_diagnostics).",
    ),
    Metric(
        "eval/<set>/attention/image_share/layer_<layer>/<group>",
        _EVAL,
        "The same at one decoder layer (mean over heads); <group>: all, before_tools, after_tools.",
    ),
    Metric("eval/<set>/attention/items", _EVAL, "Trajectories the attention pass analysed."),
    Metric(
        "eval/<set>/attention/items_with_image_tools",
        _EVAL,
        "Of those, trajectories with at least one tool result that brought new images.",
    ),
    # ------------------------------------------------------------------ evaluate: the agent
    Metric(
        "eval/<set>/<task>/tool_call_rate/<tool>",
        _EVAL,
        "Share of items whose trajectory called this tool.",
    ),
    Metric("eval/<set>/<task>/tool_calls_per_sample", _EVAL, "Mean tool calls per trajectory."),
    Metric("eval/<set>/<task>/mean_turns", _EVAL, "Mean assistant turns per trajectory."),
    Metric("eval/<set>/<task>/tokens_per_sample", _EVAL, "Mean tokens sampled per trajectory."),
    Metric(
        "eval/<set>/overall/status/<status>",
        _EVAL,
        "Share of trajectories that ended with this status.",
    ),
    # ------------------------------------------------------------------ evaluate: comparison
    Metric(
        "baseline/<eval metric>",
        _EVAL,
        "The same eval/ metric for the baseline model on the same items.",
    ),
    Metric("delta/<eval metric>", _EVAL, "eval/ minus baseline/ for the same metric."),
    Metric(
        "delta/<set>/<task>/p_value",
        _EVAL,
        "Exact McNemar p of the model against the baseline on the same items (first sample of "
        "each): how likely a difference at least this large is if both were equally accurate.",
    ),
    # ------------------------------------------------------------------ pretrain
    Metric("pretrain/loss", "pretrain", "Caption loss (mean NLL of the description tokens)."),
    Metric("pretrain/grad_norm", "pretrain", "Gradient norm before clipping."),
    Metric("pretrain/lr", "pretrain", "Learning rate of the step (warm-up, then cosine decay)."),
    Metric("pretrain/minutes", "pretrain", "Training minutes so far (evaluations excluded)."),
    Metric(
        "pretrain/probe/<score>",
        "pretrain",
        "Greedy descriptions of the first held-out scenes (pretrain.eval_every): size, colour, "
        "shape, position (per-object accuracy), count (images whose object count is right), "
        'exact, count_answer ("How many objects" accuracy), description_accuracy (mean of '
        "the four attributes; the model card's headline).",
    ),
    # ------------------------------------------------------------------ sweeps
    Metric(
        "sweep/seconds",
        "sweep_trial",
        "Wall time of one sweep trial: its GRPO and its evaluation on the validation split.",
    ),
    Metric("sweep/trials", "sweep_select", "Trials of the sweep (on the sweep's parent run)."),
    Metric(
        "sweep/best",
        "sweep_select",
        "The winning trial's value of the sweep metric (tag miva.sweep.metric names it).",
    ),
)

_MIRRORS = ("baseline/", "delta/")
_MIRROR_ENTRIES = tuple(f"{prefix}<eval metric>" for prefix in _MIRRORS)


@cache
def _compiled() -> tuple[tuple[Metric, re.Pattern[str]], ...]:
    return tuple((m, m.regex) for m in GLOSSARY if m.pattern not in _MIRROR_ENTRIES)


def lookup(name: str) -> Metric | None:
    """The glossary entry a logged name falls under, or None."""
    for metric, regex in _compiled():
        if regex.match(name):
            return metric
    for prefix in _MIRRORS:
        if name.startswith(prefix):
            inner = lookup("eval/" + name[len(prefix) :])
            if inner is None:
                return None
            return next(m for m in GLOSSARY if m.pattern == f"{prefix}<eval metric>")
    return None


def metric_key(name: str) -> str:
    """The MLflow spelling of a metric name: MLflow allows `[A-Za-z0-9_./ -]`, anything else
    becomes `_` (`pass@4` is logged as `pass_4`)."""
    return re.sub(r"[^A-Za-z0-9_./ -]", "_", name)

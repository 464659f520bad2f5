"""GRPO with multi-turn tool use: the training loop, top to bottom.

    set-up      process group (torchrun), samples, policy, training backend, reference model (beta > 0),
                agent, curation, resume
    each step:
      rollout     this rank's share of prompts_per_step prompts x group_size trajectories
      scoring     reward components -> total (rewards/registry.py)
      mask        trajectory-level policy per status (masks.py); dynamic sampling drops
                  zero-variance groups and draws more prompts (refills agreed by all ranks)
      advantages  group-relative (advantages.py), over the rewards of all ranks
      update      mu optimizer steps over the batch in micro-batches (policy.py, losses.py),
                  loss normalisers summed over ranks
      logging     metrics reduced over ranks; JSONL + MLflow + progress bar on rank 0
      checkpoint  every grpo.checkpoint_every steps, atomic, every rank's state (checkpoint.py)
    end: save_pretrained model folder + curves PNG (rank 0)

Several processes (``torchrun --nproc-per-node N``): every rank runs this loop on its own
prompts (a group never spans ranks) and the gradient equals one process's on the union
batch; the plumbing is in distributed.py and the engines; docs/distributed.md explains it.

Algorithmic choices (config key: default):
- ``grpo.group_size``: 8 trajectories per prompt; ``grpo.prompts_per_step``: 8.
- ``grpo.advantage_std``: ``group`` (std of the group) | ``batch`` | ``none`` (Dr.GRPO);
  ``grpo.adv_eps``: 1e-4.
- ``grpo.eps_low`` / ``grpo.eps_high``: 0.2 / 0.28 (DAPO clip-higher).
- ``grpo.beta``: 0.0 (k3 KL to a frozen reference; 0 loads no reference model);
  ``grpo.kl_ratio_correction``: False.
- ``grpo.loss_agg``: ``token-mean`` (DAPO) | ``seq-mean-token-mean`` (GRPO) |
  ``seq-mean-token-sum-norm`` (Dr.GRPO, length ``grpo.loss_max_tokens``).
- ``grpo.mu``: 2 updates per batch (so the clip acts); the old log-probs are computed once
  before the first update and stored (with mu = 1 the ratio is exactly 1).
- ``grpo.warmup_steps`` / ``grpo.lr_decay`` / ``grpo.min_lr_ratio``: 10 steps of linear
  warm-up, then a cosine decay to 0.1 x lr at ``grpo.steps``.
- ``grpo.dynamic_sampling``: True, at most ``grpo.max_refill_rounds`` (3) refills; groups
  still without signal stay out of the loss.
- ``grpo.status_policy``: ok=train, truncated=mask, malformed=penalize
  (``grpo.penalty_reward`` = -1), tool_error / max_turns / image_budget = mask.
- ``reward.weights``: 0.8 accuracy + 0.2 format + 1.2 tool gain (IMAgent / DeepEyes);
  naming ``judge`` scores text answers with an LLM judge (``reward.judge``).
- ``grpo.curate``: False (rejection sampling with ``grpo.curate_samples`` = 4 rollouts).
- ``grpo.training_backend``: ``torch`` (DDP under torchrun) | ``deepspeed`` (ZeRO
  ``grpo.zero_stage`` 2 | 3).
- ``grpo.rollout_correction.mode``: ``auto`` = truncated importance sampling
  (``token-tis``, cap ``grpo.rollout_correction.cap`` = 2) for
  ``agent.rollout_engine=vllm``, off for ``hf``; the rollout/trainer log-prob mismatch is
  logged every step either way.
- Non-finite rewards or losses skip the step (counted in ``train/skipped_steps``).
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from miva.errors import ConfigError, DataError
from miva.rl import distributed as dist
from miva.rl.advantages import get_advantage, zero_variance_groups
from miva.rl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from miva.rl.masks import apply_status_policy
from miva.rl.metrics import MetricsLogger
from miva.rl.policy import LossSettings, PolicyBatch, micro_batch_loss, micro_batches
from miva.rl.rewards import score
from miva.rl.rewards.registry import RewardSettings
from miva.scoring import is_correct
from miva.storage import is_remote


@dataclass
class PromptCursor:
    """Walks the prompts in a seeded order, epoch after epoch; its state resumes exactly."""

    n: int
    seed: int
    epoch: int = 0
    pos: int = 0

    def _order(self) -> list[int]:
        order = list(range(self.n))
        random.Random(self.seed * 7919 + self.epoch).shuffle(order)
        return order

    def take(self, k: int) -> list[int]:
        out: list[int] = []
        while len(out) < k:
            order = self._order()
            grab = order[self.pos : self.pos + k - len(out)]
            out.extend(grab)
            self.pos += len(grab)
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}


def rank_share(ids: list[int], counts: list[int], rank: int) -> list[int]:
    """This rank's slice of prompts drawn for all ranks (`counts` per rank, in rank order).

    >>> rank_share([10, 11, 12, 13, 14], [2, 0, 3], 2)
    [12, 13, 14]
    """
    start = sum(counts[:rank])
    return ids[start : start + counts[rank]]


@dataclass
class TrajectoryStats:
    """What the batch metrics read of one trajectory: small enough to gather from every rank."""

    tool_names: tuple[str, ...]
    num_turns: int
    num_sampled_tokens: int
    num_tokens: int

    @classmethod
    def of(cls, traj: Any) -> TrajectoryStats:
        if isinstance(traj, TrajectoryStats):
            return traj
        return cls(
            tuple(c.name for c in traj.tool_calls),
            traj.num_turns,
            traj.num_sampled_tokens,
            len(traj.token_ids),
        )


@dataclass
class StepBatch:
    trajectories: list[Any] = field(default_factory=list)
    samples: list[Any] = field(default_factory=list)
    rewards: list[dict[str, float]] = field(default_factory=list)
    totals: list[float] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    zero_var_groups: int = 0
    groups_seen: int = 0
    refills: int = 0
    # `drawn_counts` of every group drawn this step, before dynamic sampling kept the mixed
    # ones (None: those of this batch)
    drawn: list[float] | None = None


@dataclass
class TrainResult:
    output: str
    steps: int
    history: list[dict[str, Any]]
    skipped_steps: int
    curve: str | None


def _convert_answer(traj: Any, sample: Any, text: str) -> str | None:
    """Model-coordinate boxes -> dataset pixels through the agent runtime's one converter."""
    from miva.agent.format import parse_answer
    from miva.data.schema import format_answer

    typed = parse_answer(text, sample, traj.family, traj.frames[: len(sample.images)])
    return None if typed is None else format_answer(sample.answer_type, typed)


class GRPOTrainer:
    """Holds the state of one run; `run()` is the loop."""

    def __init__(
        self,
        cfg: Any,
        model_path: str,
        dataset: str,
        output: str,
        resume: bool = False,
        progress: bool = True,
        stop_after: int | None = None,
        samples: list[Any] | None = None,
        policy: tuple[Any, Any] | None = None,
        log_fn: Callable[[int, Any], dict[str, float] | None] | None = None,
    ) -> None:
        """`samples` and `policy` = (model, processor) may be given already loaded (benchmarks).
        `log_fn(step, model)` runs after each update (a held-out evaluation, say); the
        metrics it returns are logged with the step's."""
        from miva.agent.engines import make_engine
        from miva.agent.rollout import Agent
        from miva.agent.tools import build_tools
        from miva.rl.backends import build_backend
        from miva.rl.setup import check_batch, device_of, load_policy, load_training_samples

        # ------------------------------------------------------------------ set-up
        self.cfg, self.t = cfg, cfg.grpo
        self.world = dist.init_distributed()
        self.output, self.progress, self.stop_after = output, progress, stop_after
        self.log_fn = log_fn
        self.local_out = Path(output) if not is_remote(output) else Path(cfg.workdir) / "grpo-run"
        self.batch_size, self.micro_batches = check_batch(self.t, self.world.size)
        self.micro_size = self.batch_size // self.micro_batches
        self.local_prompts = self.batch_size // self.t.group_size
        random.seed(cfg.seed + self.world.rank)
        torch.manual_seed(cfg.seed + self.world.rank)
        self.samples = samples if samples is not None else load_training_samples(dataset, "train")
        self.device = device_of(cfg)
        if policy is None:
            policy = load_policy(model_path, cfg.model, self.device)
        model, self.processor = policy
        self.pad_id = self.processor.tokenizer.pad_token_id
        self.ref_model = None
        if self.t.beta > 0:
            self.ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        model.train()
        self.backend = build_backend(
            self.t.training_backend,
            model,
            lr=self.t.lr,
            weight_decay=self.t.weight_decay,
            # the backend's schedule counts optimizer updates: mu per GRPO step
            warmup_steps=self.t.warmup_steps * self.t.mu,
            total_steps=self.t.steps * self.t.mu,
            lr_decay=self.t.lr_decay,
            min_lr_ratio=self.t.min_lr_ratio,
            max_grad_norm=self.t.max_grad_norm,
            micro_batches=self.micro_batches,
            micro_batch_size=self.micro_size,
            zero_stage=self.t.zero_stage,
            gradient_checkpointing=self.t.gradient_checkpointing,
            device=self.device,
            world=self.world,
        )
        kwargs: dict[str, Any] = {}
        if cfg.agent.rollout_engine == "vllm":
            kwargs = {
                "model_path": model_path,
                "dtype": cfg.model.dtype,
                "min_pixels": cfg.model.min_pixels,
                "max_pixels": cfg.model.max_pixels,
            }
        self.rollout_engine = make_engine(
            cfg.agent.rollout_engine, self.backend.module, self.processor, cfg.agent, **kwargs
        )
        self.agent = Agent(self.processor, cfg.agent, build_tools(cfg.agent), self.rollout_engine)
        self.rewards = RewardSettings.of(cfg.reward, convert_answer=_convert_answer)
        self.advantage = get_advantage("grpo")
        self.max_len = self.t.loss_max_tokens or cfg.agent.max_new_tokens * cfg.agent.max_turns
        self.correction = self.t.rollout_correction.resolved(cfg.agent.rollout_engine)
        self.logger = MetricsLogger(self.local_out / "metrics.jsonl", write=self.world.is_main)
        if not resume:
            self.logger.truncate_after(-1)  # a fresh run starts a fresh metrics file
        self.start_step, self.skipped = 0, 0
        self.cursor = PromptCursor(len(self.samples), cfg.seed)
        if self.t.curate and not resume:
            self._curate()
        if resume:
            self._resume()

    def _curate(self) -> None:
        """Rejection sampling, each rank on its own slice of the prompts; all keep the union."""
        from miva.rl.curate import curate

        w = self.world
        with self.backend.gathered():
            result = curate(
                self.samples[w.rank :: w.size],
                self.agent,
                self.t.curate_samples,
                self.rewards,
                self.cfg.seed + w.rank,
            )
        kept = set(dist.all_gather_lists([s.id for s in result.kept]))
        dropped = int(dist.all_sum([result.dropped])[0])
        if not kept:
            raise DataError(
                f"curation kept no prompt: the starting policy solves all or none of the "
                f"{len(self.samples)} prompts; turn grpo.curate off or start from another model"
            )
        self.logger.log(0, {"curate/kept": len(kept), "curate/dropped": dropped})
        self.samples = [s for s in self.samples if s.id in kept]
        self.cursor = PromptCursor(len(self.samples), self.cfg.seed)

    def _resume(self) -> None:
        path = latest_checkpoint(self.local_out)
        if path is None:
            return
        state = load_checkpoint(path, self.backend, self.world)
        self.start_step = int(state["step"])
        self.skipped = int(state.get("skipped", 0))
        if state.get("sample_ids"):
            by_id = {s.id: s for s in self.samples}
            self.samples = [by_id[i] for i in state["sample_ids"] if i in by_id]
        self.cursor = PromptCursor(len(self.samples), self.cfg.seed, **state["cursor"])
        dist.barrier()  # every rank has read the metrics file before rank 0 rewrites it
        self.logger.truncate_after(self.start_step)

    # ------------------------------------------------------------------ rollout + scoring
    def _rollout_groups(self, step: int, round_: int, counts: list[int]) -> StepBatch:
        """Draw sum(counts) prompts from the shared cursor (every rank draws the same), roll out
        this rank's share with a seed of its own."""
        G, w = self.t.group_size, self.world
        drawn = self.cursor.take(sum(counts))
        picked = [self.samples[i] for i in rank_share(drawn, counts, w.rank)]
        if not picked:
            return StepBatch()
        seed = dist.stream_seed(self.cfg.seed, step, round_, w.rank)
        self.backend.module.eval()
        with torch.no_grad(), self.backend.gathered():
            trajs = self.agent.rollout(picked, G, seed=seed)
        self.backend.module.train()
        samples = [s for s in picked for _ in range(G)]
        rows = score(trajs, samples, self.rewards)
        statuses = [t.status for t in trajs]
        masked = apply_status_policy(
            statuses, [r["total"] for r in rows], self.t.status_policy, self.t.penalty_reward
        )
        return StepBatch(
            trajs,
            samples,
            rows,
            masked.rewards,
            masked.valid,
            statuses,
        )

    def _collect(self, step: int) -> StepBatch:
        """Rollout + scoring + trajectory mask, refilling zero-variance groups (DAPO).

        Each rank fills its own share of groups; every round all ranks exchange how many
        groups they still lack, draw that many prompts together and stop together."""
        G, want, size = self.t.group_size, self.local_prompts, self.world.size
        batch = self._rollout_groups(step, 0, [want] * size)
        if not self.t.dynamic_sampling:
            batch.groups_seen = want
            zv = zero_variance_groups(torch.tensor(batch.totals), G, torch.tensor(batch.valid))
            batch.zero_var_groups = int(zv.sum())
            return batch
        kept: list[StepBatch] = []
        dropped: list[StepBatch] = []
        seen = zero_var = 0
        for round_ in range(self.t.max_refill_rounds + 1):
            if round_ > 0:
                lacking = dist.all_gather_lists([max(want - len(kept), 0)])
                batch = self._rollout_groups(step, round_, lacking)
            zv = zero_variance_groups(
                torch.tensor(batch.totals, dtype=torch.float32), G, torch.tensor(batch.valid)
            )
            for g in range(len(zv)):
                part = _slice(batch, g * G, (g + 1) * G)
                (dropped if zv[g] else kept).append(part)
            seen += len(zv)
            zero_var += int(zv.sum())
            if not dist.any_rank(len(kept) < want):
                break
        drawn = drawn_counts(_concat(kept + dropped))
        groups = kept[:want]
        # not enough signal: fill with dropped groups, out of the loss (valid False)
        for part in dropped[: want - len(groups)]:
            part.valid = [False] * len(part.valid)
            groups.append(part)
        out = _concat(groups)
        out.zero_var_groups, out.groups_seen, out.refills = zero_var, seen, round_
        out.drawn = drawn
        return out

    # ------------------------------------------------------------------ update
    def _update(self, batch: StepBatch, adv: torch.Tensor) -> dict[str, float]:
        t = self.t
        valid = batch.valid
        micro = [
            m.to(self.device)
            for m in micro_batches(
                batch.trajectories,
                adv,
                valid,
                self.micro_size,
                self.processor,
                getattr(self.rollout_engine, "vision_cache", None),
            )
        ]
        # normalisers of the global batch: every rank's micro-batches add up to its loss
        num_seqs, num_tokens = dist.all_sum(
            [sum(valid), sum(float(m.loss_mask.sum()) for m in micro)]
        )
        settings = LossSettings(
            agg=t.loss_agg,
            eps_low=t.eps_low,
            eps_high=t.eps_high,
            beta=t.beta,
            kl_ratio_correction=t.kl_ratio_correction,
            temperature=self.cfg.agent.temperature or 1.0,
            max_len=self.max_len,
            num_seqs=max(num_seqs, 1.0),
            num_tokens=max(num_tokens, 1.0),
            rollout_correction=self.correction,
            rollout_cap=t.rollout_correction.cap,
        )
        with torch.no_grad():
            for m in micro:
                if t.mu > 1:
                    m.old_logp = _logp(self.backend.module, m, settings.temperature)
                if self.ref_model is not None:
                    m.ref_logp = _logp(self.ref_model, m, settings.temperature)
        sums: dict[str, float] = {}
        peaks: dict[str, float] = {}
        grad_norms = []
        for _ in range(t.mu):
            for k, m in enumerate(micro):
                with self.backend.micro_step(last=k == len(micro) - 1):
                    loss, metrics = micro_batch_loss(self.backend.model, m, settings)
                    if dist.any_rank(not bool(torch.isfinite(loss))):
                        raise _NonFinite(f"loss {float(loss)}")
                    self.backend.backward(loss)
                w = metrics["tokens"]
                for key, v in metrics.items():
                    if key in _PEAK_METRICS:
                        peaks[key] = max(peaks.get(key, 0.0), v)
                    else:
                        sums[key] = sums.get(key, 0.0) + (v if key == "tokens" else v * w)
                sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            grad_norms.append(self.backend.step())
        # token-weighted means over every rank's tokens; maxima over ranks; the loss is a sum
        # of the ranks' shares
        names = sorted(sums)
        sums = dict(zip(names, dist.all_sum([sums[k] for k in names]), strict=True))
        names = sorted(peaks)
        peaks = dict(zip(names, dist.all_max([peaks[k] for k in names]), strict=True))
        tokens = max(sums.pop("tokens", 0.0), 1.0)
        out = {f"train/{k}": v / tokens for k, v in sums.items() if k != "loss"}
        out.update({f"train/{k}": v for k, v in peaks.items()})
        out["train/loss"] = sums.get("loss", 0.0) / t.mu
        out["train/grad_norm"] = grad_norms[-1]
        out["train/lr"] = self.backend.lr
        if not all(math.isfinite(g) for g in grad_norms):
            raise _NonFinite("gradient norm")
        return out

    def _advantages(self, batch: StepBatch) -> torch.Tensor:
        """Advantages of this rank's trajectories, computed over the rewards of all ranks (so
        the batch-std mode sees the global batch; groups never span ranks)."""
        totals = dist.all_gather_lists(batch.totals)
        valid = dist.all_gather_lists(batch.valid)
        adv = self.advantage(
            torch.tensor(totals, dtype=torch.float32),
            self.t.group_size,
            valid=torch.tensor(valid),
            std=self.t.advantage_std,
            eps=self.t.adv_eps,
        )
        n = len(batch.totals)
        return adv[self.world.rank * n : (self.world.rank + 1) * n]

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        t = self.t
        steps = range(self.start_step + 1, t.steps + 1)
        bar = None
        if self.progress and self.world.is_main:
            from tqdm import tqdm

            bar = tqdm(total=t.steps, initial=self.start_step, desc="grpo", unit="step")
        for step in steps:
            t0 = time.perf_counter()
            # rollout, scoring, trajectory mask, dynamic sampling
            batch = self._collect(step)
            t_roll = time.perf_counter() - t0
            metrics = rollout_metrics(gathered(batch))
            if self.rewards.judge is not None:  # this rank's judge counters
                metrics.update(self.rewards.judge.drain_metrics())
            if dist.any_rank(not all(math.isfinite(r) for r in batch.totals)):
                self.skipped += 1
                metrics["train/skipped_steps"] = self.skipped
                self.logger.log(step, metrics)
                continue
            # advantages
            adv = self._advantages(batch)
            # update
            t1 = time.perf_counter()
            if dist.any_rank(any(batch.valid)):  # some trajectory of some rank takes part
                try:
                    metrics.update(self._update(batch, adv))
                except _NonFinite:
                    self.skipped += 1
                    _zero_grads(self.backend)
                self._sync_rollout_weights()
            t_upd = time.perf_counter() - t1
            # logging
            dt = time.perf_counter() - t0
            if self.log_fn is not None:
                metrics.update(self.log_fn(step, self.backend.module) or {})
                self.backend.module.train()
            n_tokens = dist.all_sum([sum(len(x.token_ids) for x in batch.trajectories)])[0]
            metrics.update(
                {
                    "train/skipped_steps": self.skipped,
                    "perf/step_time_s": dt,
                    "perf/rollout_time_s": t_roll,
                    "perf/update_time_s": t_upd,
                    "perf/tokens_per_s": n_tokens / max(dt, 1e-9),
                }
            )
            self.logger.log(step, metrics)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(
                    reward=f"{metrics['train/reward_mean']:.3f}",
                    acc=f"{metrics['train/accuracy']:.2f}",
                    kl=f"{metrics.get('train/kl', 0.0):.3f}",
                )
            # checkpoint
            if step % t.checkpoint_every == 0 or step == t.steps:
                save_checkpoint(
                    self.local_out,
                    step,
                    self.backend,
                    {
                        "cursor": self.cursor.state(),
                        "skipped": self.skipped,
                        "sample_ids": [s.id for s in self.samples] if t.curate else [],
                    },
                    keep=t.keep_checkpoints,
                    world=self.world,
                )
            if self.stop_after is not None and step >= self.stop_after:
                break
        if bar is not None:
            bar.close()
        return self._finish()

    def _sync_rollout_weights(self) -> None:
        """A separate rollout engine (vLLM, one per rank) gets the new weights after every
        update; the HF engine samples from the training model itself and needs nothing."""
        if self.cfg.agent.rollout_engine != "hf" and hasattr(self.rollout_engine, "load_weights"):
            with self.backend.gathered():
                self.rollout_engine.load_weights(self.backend.module.state_dict())

    def _finish(self) -> TrainResult:
        from miva.agent.model import save_model
        from miva.rl.plots import plot_curves

        model = self.backend.module
        model.eval()
        curve = None
        with self.backend.gathered():  # ZeRO-3: whole parameters for rank 0 to save
            if self.world.is_main:
                save_model(model, self.processor, self.output)
                curve = plot_curves(self.logger.history, self.local_out / "curves.png", "GRPO")
        dist.barrier()  # the model folder is complete before any rank returns
        return TrainResult(
            self.output,
            self.t.steps,
            self.logger.history,
            self.skipped,
            str(curve) if curve else None,
        )


class _NonFinite(Exception):
    pass


# reduced with a maximum (over micro-batches and ranks), not a token-weighted mean
_PEAK_METRICS = frozenset({"logp_mismatch_max"})


def _zero_grads(backend: Any) -> None:
    for p in backend.module.parameters():
        p.grad = None


def _logp(model: Any, batch: PolicyBatch, temperature: float) -> torch.Tensor:
    from miva.agent.forward import token_logprobs

    return token_logprobs(model, batch, temperature)[0].detach()


def _slice(b: StepBatch, i: int, j: int) -> StepBatch:
    return StepBatch(
        b.trajectories[i:j],
        b.samples[i:j],
        b.rewards[i:j],
        b.totals[i:j],
        b.valid[i:j],
        b.statuses[i:j],
    )


def _concat(parts: list[StepBatch]) -> StepBatch:
    out = StepBatch()
    for p in parts:
        out.trajectories += p.trajectories
        out.samples += p.samples
        out.rewards += p.rewards
        out.totals += p.totals
        out.valid += p.valid
        out.statuses += p.statuses
    return out


def gathered(batch: StepBatch) -> StepBatch:
    """The union of every rank's batch, trajectories reduced to `TrajectoryStats` (what the
    metrics read), in rank order; the batch itself (as stats) with one process."""
    stats = [TrajectoryStats.of(x) for x in batch.trajectories]
    zero_var, seen = dist.all_sum([batch.zero_var_groups, batch.groups_seen])
    drawn = dist.all_sum(batch.drawn if batch.drawn is not None else drawn_counts(batch))
    return StepBatch(
        trajectories=dist.all_gather_lists(stats),
        samples=[],
        rewards=dist.all_gather_lists(batch.rewards),
        totals=dist.all_gather_lists(batch.totals),
        valid=dist.all_gather_lists(batch.valid),
        statuses=dist.all_gather_lists(batch.statuses),
        zero_var_groups=int(zero_var),
        groups_seen=int(seen),
        refills=batch.refills,
        drawn=[float(x) for x in drawn],
    )


def drawn_counts(batch: StepBatch) -> list[float]:
    """[trajectories, correct, finite totals, their sum, successful zooms, zooms on the
    evidence] of a rank's batch of full trajectories: counts, so that ranks sum them."""
    from miva.rl.rewards.tool_use import zoom_on_evidence

    finite = [r for r in batch.totals if math.isfinite(r)]
    zooms = [
        (c, s)
        for t, s in zip(batch.trajectories, batch.samples, strict=True)
        for c in t.tool_calls
        if c.name == "zoom" and c.ok
    ]
    return [
        float(len(batch.trajectories)),
        float(sum(is_correct(r["accuracy"]) for r in batch.rewards)),
        float(len(finite)),
        float(sum(finite)),
        float(len(zooms)),
        float(sum(zoom_on_evidence(c, s) for c, s in zooms)),
    ]


def rollout_metrics(batch: StepBatch) -> dict[str, float]:
    """Reward components, accuracy, tool use, turns, lengths, statuses of one batch (pass
    `gathered(batch)` for the global batch of several ranks).

    `train/*` figures describe the batch the loss trains on, after dynamic sampling kept
    mostly groups with mixed outcomes; `rollout/drawn/*` describe every group drawn this
    step before that filter: the policy's own accuracy and reward on fresh prompts."""
    n = max(len(batch.trajectories), 1)
    m: dict[str, float] = {}
    count, correct, finite, total, zooms, on_evidence = (
        batch.drawn if batch.drawn is not None else drawn_counts(batch)
    )
    m["rollout/drawn/accuracy"] = correct / max(count, 1.0)
    m["rollout/drawn/reward_mean"] = total / max(finite, 1.0)
    m["rollout/drawn/trajectories"] = count
    if zooms:
        m["rollout/drawn/zoom_on_evidence"] = on_evidence / zooms
    totals = [r for r in batch.totals if math.isfinite(r)]
    m["train/reward_mean"] = sum(totals) / max(len(totals), 1)
    mean = m["train/reward_mean"]
    m["train/reward_std"] = math.sqrt(sum((r - mean) ** 2 for r in totals) / max(len(totals), 1))
    for name in batch.rewards[0] if batch.rewards else {}:
        if name != "total":
            m[f"train/reward/{name}"] = sum(r[name] for r in batch.rewards) / n
    m["train/accuracy"] = sum(is_correct(r["accuracy"]) for r in batch.rewards) / n
    stats = [TrajectoryStats.of(x) for x in batch.trajectories]
    tools: dict[str, int] = {}
    for x in stats:
        for name in {name for name in x.tool_names if name}:
            tools[name] = tools.get(name, 0) + 1
    m["rollout/tool_call_rate"] = sum(1 for x in stats if x.tool_names) / n
    for name in sorted(tools):
        m[f"rollout/tool_calls/{name}"] = tools[name] / n
    m["rollout/turns"] = sum(x.num_turns for x in stats) / n
    m["rollout/response_tokens"] = sum(x.num_sampled_tokens for x in stats) / n
    for status in sorted(set(batch.statuses)):
        m[f"rollout/status/{status}"] = batch.statuses.count(status) / n
        masked = sum(
            1 for s, v in zip(batch.statuses, batch.valid, strict=True) if s == status and not v
        )
        m[f"train/masked/{status}"] = masked / n
    m["train/masked_frac"] = sum(1 for v in batch.valid if not v) / n
    m["rollout/zero_var_group_frac"] = batch.zero_var_groups / max(batch.groups_seen, 1)
    m["rollout/refill_rounds"] = batch.refills
    return m


def train(
    cfg: Any,
    model_path: str,
    dataset: str,
    output: str,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Run GRPO end to end; `stop_after` ends early (tests simulate a killed run with it)."""
    if cfg.grpo.group_size < 2:
        raise ConfigError("grpo.group_size must be >= 2 for group-relative advantages")
    trainer = GRPOTrainer(cfg, model_path, dataset, output, resume, progress, stop_after)
    return trainer.run()

"""The rollout engine interface: one batched generation step for many sequences.

An engine (a "policy") receives full sequences (tokens so far plus the pixel values and
grids of all their images) and returns, per sequence, the tokens it sampled for this turn
and their log-probabilities under the policy at the sampling temperature (log_softmax
of logits / T; vision-token suppression and top-p are *not* folded in, so the values
match `forward.token_logprobs` on the same sequence).

Requests always carry the whole sequence, so an engine may keep nothing between calls.
One that keeps state (the `hf` engine's KV cache across turns) recognises a continuation
by its `key` and a token prefix it has already seen, and drops that state when the
agent calls `release()` at the end of a rollout batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class GenRequest:
    token_ids: list[int]
    pixel_values: Any  # torch.Tensor [n_patches, patch_dim] or None
    image_grid_thw: Any  # torch.Tensor [n_images, 3] or None
    max_new_tokens: int
    key: Any = None  # who asks (trajectory index); scripted policies use it
    turn: int = 0
    images: list[Any] = field(default_factory=list)  # PIL images (vLLM re-processes them)
    image_keys: list[str] = field(default_factory=list)  # content key per image (vision cache)
    # Teacher forcing: emit exactly these tokens instead of sampling (their log-probs are
    # still the model's). Benchmarks use it to replay a fixed tool call through the model.
    forced_tokens: list[int] | None = None


@dataclass
class GenResult:
    token_ids: list[int]
    logprobs: list[float]
    finished: bool  # ended on a stop token / stop string (False: hit max_new_tokens)


class Engine(Protocol):
    def generate(self, requests: list[GenRequest], seed: int) -> list[GenResult]: ...


def release(engine: Any) -> None:
    """End of a rollout batch: let a stateful engine free what it kept between turns (a
    wrapper without `release` that holds its engine as `.engine` passes it on)."""
    fn = getattr(engine, "release", None)
    if callable(fn):
        fn()
    elif getattr(engine, "engine", None) is not None:
        release(engine.engine)


def cut_at_stop(
    token_ids: list[int], logprobs: list[float], tokenizer, stop_ids: set[int], stop_strings
) -> GenResult:
    """Keep tokens up to and including the first stop token or the token that completes a
    stop string; drop the rest (they were never part of the turn)."""
    text = ""
    for i, t in enumerate(token_ids):
        if t in stop_ids:
            return GenResult(token_ids[: i + 1], logprobs[: i + 1], True)
        text += tokenizer.decode([t])
        if any(s in text[-(len(s) + 64) :] for s in stop_strings):
            return GenResult(token_ids[: i + 1], logprobs[: i + 1], True)
    return GenResult(list(token_ids), list(logprobs), False)

"""The Trajectory contract: what a rollout produces and what training and evaluation consume.

Invariants (checked by `Trajectory.check`):
- `token_ids` are never re-tokenised after sampling; `loss_mask[t] == 1` exactly on
  tokens the policy sampled (including tool-call text), 0 on the prompt, tool results
  and inserted image placeholders.
- `sampled_logprobs[t]` is the sampler's log-probability where `loss_mask[t] == 1` and 0
  elsewhere.
- The number of image placeholder tokens equals the vision features of `pixel_values`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "truncated", "malformed", "tool_error", "max_turns", "image_budget"]
STATUSES: tuple[str, ...] = (
    "ok",
    "truncated",
    "malformed",
    "tool_error",
    "max_turns",
    "image_budget",
)


@dataclass
class ToolCall:
    """One tool invocation of a trajectory and what came back."""

    turn: int
    name: str
    arguments: dict[str, Any]
    ok: bool
    result_text: str
    image_count: int = 0  # images the result put into the context
    region: dict[str, Any] | None = (
        None  # for zoom: {"image": k, "bbox": [x1, y1, x2, y2]} in dataset pixels
    )


@dataclass
class Turn:
    role: Literal["system", "user", "assistant", "tool"]
    text: str
    image_count: int = 0


@dataclass
class Trajectory:
    sample_id: str
    token_ids: list[int]
    loss_mask: list[int]
    sampled_logprobs: list[float]
    prompt_length: int
    turns: list[Turn] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    images: list[Any] = field(
        default_factory=list
    )  # PIL images in the order they entered the context
    pixel_values: Any = None  # torch.Tensor [n_patches, patch_dim] for all images, in order
    image_grid_thw: Any = None  # torch.Tensor [n_images, 3]
    # content key of each image (`assembly.EncodedImage.key`): the vision-feature cache's key
    image_keys: list[str] = field(default_factory=list)
    # miva.agent.coords.Frame per image of `images` (stored and resized size, crop origin);
    # frames[: len(sample.images)] are the originals, as `format.parse_answer` expects
    frames: list[Any] = field(default_factory=list)
    family: str = "qwen2.5-vl"  # the coordinate convention of the text the model wrote
    status: Status = "ok"
    answer: str | None = None  # raw text inside <answer>...</answer>, None when absent
    rewards: dict[str, float] = field(default_factory=dict)
    reward: float = 0.0

    @property
    def num_sampled_tokens(self) -> int:
        return int(sum(self.loss_mask))

    @property
    def num_turns(self) -> int:
        return sum(1 for t in self.turns if t.role == "assistant")

    def response_text(self) -> str:
        return "".join(t.text for t in self.turns if t.role in ("assistant", "tool"))

    def check(self) -> None:
        n = len(self.token_ids)
        if len(self.loss_mask) != n or len(self.sampled_logprobs) != n:
            raise ValueError(
                f"trajectory {self.sample_id}: token_ids ({n}), loss_mask ({len(self.loss_mask)}) and "
                f"sampled_logprobs ({len(self.sampled_logprobs)}) differ in length"
            )
        if any(self.loss_mask[: self.prompt_length]):
            raise ValueError(f"trajectory {self.sample_id}: loss mask is set inside the prompt")
        if self.status not in STATUSES:
            raise ValueError(
                f"trajectory {self.sample_id}: unknown status {self.status!r}; known: {STATUSES}"
            )

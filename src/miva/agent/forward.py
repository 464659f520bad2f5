"""Per-token log-probabilities of trajectories under a model (what the trainer needs).

`collate(trajectories, pad_id, image_token_id)` right-pads a batch into model inputs;
`token_logprobs(model, trajectories, processor, temperature)` runs one forward pass and
returns `logp[b, t] = log p(token_t | tokens_<t, images)` (at logits / temperature), 0 at
position 0 and on padding. Multiply by the collated `loss_mask` to keep sampled tokens.
At the sampler's temperature these equal `Trajectory.sampled_logprobs` (up to float
error), so logp_old can come from the rollout when mu = 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from miva.agent.assembly import check_parity
from miva.agent.trajectory import Trajectory


def collate(
    trajectories: Sequence[Trajectory], pad_id: int, image_token_id: int, merge_size: int = 2
) -> dict[str, Any]:
    import torch

    width = max(len(t.token_ids) for t in trajectories)
    n = len(trajectories)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    loss = torch.zeros((n, width), dtype=torch.float32)
    old = torch.zeros((n, width), dtype=torch.float32)
    pv, grids = [], []
    for i, t in enumerate(trajectories):
        L = len(t.token_ids)
        ids[i, :L] = torch.tensor(t.token_ids, dtype=torch.long)
        attn[i, :L] = 1
        loss[i, :L] = torch.tensor(t.loss_mask, dtype=torch.float32)
        old[i, :L] = torch.tensor(t.sampled_logprobs, dtype=torch.float32)
        if t.image_grid_thw is not None and len(t.image_grid_thw):
            check_parity(
                t.token_ids, t.image_grid_thw.tolist(), image_token_id, merge_size, t.pixel_values
            )
            pv.append(t.pixel_values)
            grids.append(t.image_grid_thw)
    batch: dict[str, Any] = {
        "input_ids": ids,
        "attention_mask": attn,
        "loss_mask": loss,
        "old_logprobs": old,
    }
    if pv:
        batch["pixel_values"] = torch.cat(pv)
        batch["image_grid_thw"] = torch.cat(grids)
        batch["mm_token_type_ids"] = (ids == image_token_id).int() * attn.int()
    return batch


def token_logprobs(
    model,
    trajectories: Sequence[Trajectory],
    processor,
    temperature: float = 1.0,
    batch: dict | None = None,
):
    """[B, L] log-probs of each token given its prefix (differentiable when grads are on)."""
    import torch

    if batch is None:
        batch = collate(
            trajectories,
            processor.tokenizer.pad_token_id,
            processor.token_id("<|image_pad|>"),
            processor.merge_size,
        )
    dev = next(model.parameters()).device
    kwargs = {
        "input_ids": batch["input_ids"].to(dev),
        "attention_mask": batch["attention_mask"].to(dev),
    }
    if "pixel_values" in batch:
        kwargs["pixel_values"] = batch["pixel_values"].to(dev, model.dtype)
        kwargs["image_grid_thw"] = batch["image_grid_thw"].to(dev)
        kwargs["mm_token_type_ids"] = batch["mm_token_type_ids"].to(dev)
    logits = model(**kwargs).logits[:, :-1].float() / (temperature if temperature > 0 else 1.0)
    target = kwargs["input_ids"][:, 1:]
    lp = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    lp = lp * kwargs["attention_mask"][:, 1:]
    return torch.nn.functional.pad(lp, (1, 0), value=0.0)

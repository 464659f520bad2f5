"""Per-token log-probabilities of trajectories under a model: the one function SFT and GRPO
(old, reference and current log-probs) use. Evaluation scores answers, not log-probs; its
attention diagnostics feed the model through the same inputs (`model_inputs`).

`collate(trajectories, processor)` right-pads trajectories into a `TokenBatch`: token ids,
attention mask, the loss mask and the rollout's sampled log-probs *target-aligned*
(column t scores token ``input_ids[:, t + 1]``, shape ``[N, T - 1]``), each image as an
`ImageRef` (content key, pixel rows, grid) and the 3-D RoPE positions of every token
(`positions.mrope_positions`, what the model itself would compute).

`token_logprobs(model, batch, temperature)` returns ``logp[n, t] = log p(input_ids[n, t+1]
| prefix, images)`` at logits / temperature where ``loss_mask[n, t]`` is set and 0
elsewhere (and the entropies there, when asked). At the sampler's temperature these
equal the rollout's sampled log-probs up to float error. Without waste:

- image features come from `vision.encode_images`: from the batch's `VisionCache` when
  no gradient flows into the vision tower (old and reference passes: the rollout already
  encoded these images with these weights), else each distinct image of the batch is
  encoded once, with gradients;
- the LM head runs only on the columns where some row has a scored target;
- the forward goes through the model's own ``forward`` (so DDP and DeepSpeed wrappers see
  it) with the image features already in ``inputs_embeds`` and the positions given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from miva.agent.assembly import IMAGE_PAD, ParityError, check_parity
from miva.agent.positions import mrope_positions
from miva.agent.trajectory import Trajectory
from miva.agent.vision import (
    ImageRef,
    VisionCache,
    encode_images,
    split_images,
    unwrap,
    vision_tower,
)


@dataclass
class TokenBatch:
    """Right-padded trajectories as model inputs; per-token tensors are target-aligned."""

    input_ids: Any  # [N, T] long
    attention_mask: Any  # [N, T] long
    loss_mask: Any  # [N, T-1] float: 1 where the target token is scored
    rollout_logp: Any = None  # [N, T-1] float: the rollout's log-probs of the targets
    position_ids: Any = None  # [3, N, T] long (multimodal RoPE); None: the model's default
    images: list[ImageRef] = field(default_factory=list)  # in placeholder order, row by row
    image_counts: list[int] = field(default_factory=list)  # images of each row
    image_token_id: int | None = None
    pad_id: int | None = None
    vision_cache: VisionCache | None = None  # features the rollout computed (same weights)
    trajectories: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: Any):
        """The same batch with its tensors on `device` (images move when encoded)."""
        import torch

        moved = {
            f.name: getattr(self, f.name).to(device)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)


def collate(
    trajectories: Sequence[Trajectory],
    processor: Any,
    valid: Sequence[bool] | None = None,
    vision_cache: VisionCache | None = None,
) -> TokenBatch:
    """Right-pad trajectories; a trajectory with ``valid[i]`` False gets an all-zero loss
    mask (it is in the batch but nothing of it is scored). Checks placeholder/feature parity
    of every sequence."""
    import torch

    pad_id = processor.tokenizer.pad_token_id
    image_id = processor.token_id(IMAGE_PAD)
    merge = processor.merge_size
    width = max(len(t.token_ids) for t in trajectories)
    n = len(trajectories)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    loss = torch.zeros((n, width), dtype=torch.float32)
    sampled = torch.zeros((n, width), dtype=torch.float32)
    positions = torch.zeros((3, n, width), dtype=torch.long)
    images: list[ImageRef] = []
    counts: list[int] = []
    for i, t in enumerate(trajectories):
        k = len(t.token_ids)
        ids[i, :k] = torch.tensor(t.token_ids, dtype=torch.long)
        attn[i, :k] = 1
        if valid is None or valid[i]:
            loss[i, :k] = torch.tensor(t.loss_mask, dtype=torch.float32)
        sampled[i, :k] = torch.tensor(t.sampled_logprobs, dtype=torch.float32)
        grids = t.image_grid_thw.tolist() if t.image_grid_thw is not None else []
        if grids:
            check_parity(t.token_ids, grids, image_id, merge, t.pixel_values)
            images += split_images(t.pixel_values, t.image_grid_thw, t.image_keys or None)
        counts.append(len(grids))
        positions[:, i, :k] = mrope_positions(t.token_ids, grids, image_id, merge)[0]
    return TokenBatch(
        input_ids=ids,
        attention_mask=attn,
        loss_mask=loss[:, 1:],
        rollout_logp=sampled[:, 1:],
        position_ids=positions,
        images=images,
        image_counts=counts,
        image_token_id=image_id,
        pad_id=pad_id,
        vision_cache=vision_cache,
        trajectories=list(trajectories),
    )


def token_logprobs(
    model: Any, batch: TokenBatch, temperature: float = 1.0, with_entropy: bool = False
) -> tuple[Any, Any]:
    """``(logp, entropy)``, both ``[N, T-1]``, values where `batch.loss_mask` is set and 0
    elsewhere (entropy None unless asked; never differentiable). Differentiable when
    gradients are on; then the model's forward runs even when nothing is scored (all zero,
    but every parameter in the graph: DDP ranks must all run it). Trajectories of one group
    (same sample) run as one packed row (`packing`) when the model is a vision-language
    model with SDPA attention."""
    import torch

    inner = unwrap(model)
    dev = next(inner.parameters()).device
    mask = batch.loss_mask.to(dev)
    n, width = batch.input_ids.shape
    zeros = torch.zeros((n, width - 1), dtype=torch.float32, device=dev)
    entropy = zeros.clone() if with_entropy else None
    scored = (mask > 0).nonzero()
    unscored = len(scored) == 0
    if unscored:
        if not torch.is_grad_enabled():
            return zeros, entropy
        # Nothing to score, but the forward still runs: under DDP every rank must call it and
        # reach backward with every parameter in the graph, or the ranks wait on each other.
        # The first target stands in, at weight 0.
        scored = torch.zeros((1, 2), dtype=torch.long, device=dev)
    rows, cols = scored[:, 0], scored[:, 1]  # target input_ids[row, col + 1], seen from col
    targets = batch.input_ids.to(dev)[rows, cols + 1]
    groups = _groups(batch, inner)
    if groups is not None:
        logits = _packed_logits(model, inner, batch, groups, rows, cols)
    else:
        logits = _padded_logits(model, inner, batch, rows, cols)
    logits = logits.float()  # [scored, V]
    if temperature and temperature != 1.0:
        logits = logits / temperature
    picked = logprobs_from_logits(logits, targets)
    if unscored:
        return zeros.index_put((rows, cols), picked * 0.0), entropy
    logp = zeros.index_put((rows, cols), picked)
    if with_entropy:
        with torch.no_grad():
            entropy = entropy.index_put((rows, cols), entropy_from_logits(logits))
    return logp, entropy


def model_inputs(model: Any, batch: TokenBatch) -> dict[str, Any]:
    """Keyword arguments of the model's forward for the right-padded `batch`, on the model's
    device: attention mask, the batch's RoPE positions and the token embeddings with the
    image features in place of the placeholders (`input_ids` for a batch without images).
    Other passes over trajectories (the attention diagnostics) feed the model through this,
    so images enter every forward the same way."""
    inner = unwrap(model)
    dev = next(inner.parameters()).device
    ids = batch.input_ids.to(dev)
    kwargs: dict[str, Any] = {"attention_mask": batch.attention_mask.to(dev)}
    if batch.position_ids is not None:
        pos = batch.position_ids.to(dev)
        kwargs["position_ids"] = pos if vision_tower(inner) is not None else pos[0]
    if batch.images:
        kwargs["inputs_embeds"] = _embeds_with_images(inner, ids, batch.images, batch)
    else:
        kwargs["input_ids"] = ids
    return kwargs


def _padded_logits(model: Any, inner: Any, batch: TokenBatch, rows: Any, cols: Any) -> Any:
    """Logits at (rows, cols) from the right-padded batch, one sequence per row."""
    import torch

    keep = torch.unique(cols)  # the LM head only on columns where some row scores a target
    logits = model(**model_inputs(model, batch), logits_to_keep=keep).logits  # [N, len(keep), V]
    return logits[rows, torch.searchsorted(keep, cols)]


def _groups(batch: TokenBatch, model: Any) -> list[list[int]] | None:
    """Rows by sample (the trajectories of a group), when packing applies and pays."""
    config = getattr(model, "config", None)
    text = config.get_text_config() if config is not None else None
    if (
        len(batch.trajectories) != len(batch)
        or batch.position_ids is None
        or vision_tower(model) is None
        or getattr(config, "_attn_implementation", None) != "sdpa"
        or set(getattr(text, "layer_types", None) or ["full_attention"]) != {"full_attention"}
    ):
        return None
    by_sample: dict[Any, list[int]] = {}
    for i, t in enumerate(batch.trajectories):
        by_sample.setdefault(t.sample_id, []).append(i)
    groups = list(by_sample.values())
    if all(len(g) == 1 for g in groups):
        return None
    return groups


def _packed_logits(
    model: Any, inner: Any, batch: TokenBatch, groups: list[list[int]], rows: Any, cols: Any
) -> Any:
    """Logits at (rows, cols) from packed rows: each group's shared prefix runs once."""
    import torch

    from miva.agent.packing import pack

    dev = rows.device
    lengths = batch.attention_mask.sum(1).tolist()
    token_ids = [batch.input_ids[i, : int(k)].tolist() for i, k in enumerate(lengths)]
    starts = [0]
    for c in batch.image_counts:
        starts.append(starts[-1] + c)
    refs = [batch.images[starts[i] : starts[i + 1]] for i in range(len(batch))]
    image_id = _image_token_id(inner, batch)
    packed = pack(
        groups,
        token_ids,
        [[r.key for r in row_refs] for row_refs in refs],
        batch.position_ids,
        image_id,
        batch.pad_id if batch.pad_id is not None else 0,
    )
    ids = packed.tokens.to(dev)
    ordered = [refs[r][k] for r, k in packed.image_order]
    embeds = (
        _embeds_with_images(inner, ids, ordered, batch)
        if ordered
        else inner.get_input_embeddings()(ids)
    )
    q_row = packed.row.to(dev)[rows, cols]
    q_idx = packed.index.to(dev)[rows, cols]
    keep = torch.unique(q_idx)
    allowed = packed.allowed.to(dev)
    logits = model(
        inputs_embeds=embeds,
        position_ids=packed.positions.to(dev),
        attention_mask={"full_attention": allowed},  # the block mask, as the layers take it
        logits_to_keep=keep,
    ).logits  # [R, len(keep), V]
    return logits[q_row, torch.searchsorted(keep, q_idx)]


def _image_token_id(model: Any, batch: TokenBatch) -> int:
    if batch.image_token_id is not None:
        return int(batch.image_token_id)
    return int(unwrap(model).config.image_token_id)


def _embeds_with_images(model: Any, ids: Any, images: list[ImageRef], batch: TokenBatch) -> Any:
    """Token embeddings with the placeholders replaced by the features of `images`, in order."""
    import torch

    visual = vision_tower(model)
    grad = torch.is_grad_enabled() and any(p.requires_grad for p in visual.parameters())
    feats = encode_images(model, images, batch.vision_cache, grad=grad)
    embeds = model.get_input_embeddings()(ids)
    placeholders = ids == _image_token_id(model, batch)
    got = sum(int(f.shape[0]) for f in feats)
    if int(placeholders.sum()) != got:
        raise ParityError(f"{int(placeholders.sum())} image placeholders, {got} image features")
    return embeds.masked_scatter(placeholders.unsqueeze(-1), torch.cat(feats).to(embeds.dtype))


def logprobs_from_logits(logits: Any, targets: Any) -> Any:
    """log p(target) per position from ``[..., V]`` logits (computed in float32).

    >>> import torch
    >>> logprobs_from_logits(torch.zeros(1, 1, 4), torch.tensor([[2]])).exp().item()
    0.25
    """
    import torch

    logits = logits.float()
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: Any) -> Any:
    """Entropy of the next-token distribution per position (float32).

    >>> import torch
    >>> round(entropy_from_logits(torch.zeros(1, 1, 4)).item(), 4)  # log 4
    1.3863
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)

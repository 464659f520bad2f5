"""Vision-tower features of images, encoded once per image content and weights version.

An image enters a rollout batch once per trajectory of its group (G times for a prompt
image) and, without a cache, is encoded again at every turn and in every log-prob pass.
`VisionCache` keeps the merged vision features of each image (``[tokens, hidden]``, what
replaces the image's placeholder tokens) under its content key (`image_key`), separately
for each model it has served, and drops a model's entries as soon as that model's vision
weights change (`weights_version`: the storage and in-place version counter of every
vision parameter, so an optimizer step or a `load_state_dict` invalidates them; no
caller has to remember to). So:

- rollouts encode each distinct prompt image and tool crop once, whatever the group
  size and number of turns;
- log-prob passes without gradients (old and reference log-probs) reuse them while the
  weights are the ones that encoded them (the reference model's never change);
- a pass with gradients through the vision tower encodes afresh (`encode_images(...,
  grad=True)`), but each distinct image of the micro-batch only once.

Features live on the model's device in its dtype; the cache is bounded in bytes per model.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_MAX_BYTES = 1 << 30  # per model; about 2,000 images of 256 tokens at 2,048 bf16
MAX_MODELS = 3  # the policy, the reference model and one spare


def image_key(pixel_values: Any, grid_thw: Sequence[int]) -> str:
    """Content key of one processed image: a hash of its pixel values and grid."""
    import numpy as np

    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(tuple(int(v) for v in grid_thw), dtype=np.int64).tobytes())
    h.update(pixel_values.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class ImageRef:
    """One image as the model takes it: content key, pixel rows and grid (t, h, w)."""

    key: str
    pixel_values: Any  # torch.Tensor [t*h*w, patch_dim]
    grid_thw: tuple[int, int, int]

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid_thw
        return t * h * w


def split_images(
    pixel_values: Any, grids: Any, keys: Sequence[str] | None = None
) -> list[ImageRef]:
    """Per-image refs from concatenated pixel rows and ``[n, 3]`` grids (keys hashed when
    not given)."""
    if pixel_values is None or grids is None or len(grids) == 0:
        return []
    refs, row = [], 0
    for i, g in enumerate(grids.tolist() if hasattr(grids, "tolist") else grids):
        t, h, w = (int(v) for v in g)
        pv = pixel_values[row : row + t * h * w]
        row += t * h * w
        key = keys[i] if keys and i < len(keys) else image_key(pv, (t, h, w))
        refs.append(ImageRef(key, pv, (t, h, w)))
    if row != int(pixel_values.shape[0]):
        raise ValueError(f"pixel_values has {pixel_values.shape[0]} rows, the grids need {row}")
    return refs


def unwrap(model: Any) -> Any:
    """The Hugging Face model under DDP / DeepSpeed (``.module``) and peft wrappers.
    (DeepSpeed's engine forwards attribute look-ups to its module, so only the type tells
    a wrapper from the model.)"""
    import torch
    from transformers import PreTrainedModel

    while not isinstance(model, PreTrainedModel):
        if hasattr(model, "get_base_model"):  # peft
            model = model.get_base_model()
        elif isinstance(getattr(model, "module", None), torch.nn.Module):  # DDP, DeepSpeed
            model = model.module
        else:
            break
    return model


def vision_tower(model: Any) -> Any | None:
    """The vision encoder of a Qwen2-VL / Qwen2.5-VL model (None for a text-only model)."""
    inner = unwrap(model)
    for owner in (getattr(inner, "model", None), inner):
        visual = getattr(owner, "visual", None)
        if visual is not None:
            return visual
    return None


def weights_version(module: Any) -> tuple:
    """Changes whenever any parameter of `module` is replaced or modified in place: the
    storage and in-place version counter of each parameter (of its partition under
    DeepSpeed ZeRO-3, where the optimizer writes there and the parameter is a placeholder)."""

    def version(p: Any) -> tuple[int, int]:
        t = getattr(p, "ds_tensor", None)
        t = p if t is None else t
        return (t.data_ptr(), t._version)

    return (id(module), *(version(p) for p in module.parameters()))


def _encode(visual: Any, refs: Sequence[ImageRef]) -> list[Any]:
    """One vision-tower pass over several images; per image ``[tokens, hidden]``."""
    import torch

    param = next(visual.parameters())
    pv = torch.cat([r.pixel_values for r in refs]).to(param.device, param.dtype)
    grid = torch.tensor([r.grid_thw for r in refs], dtype=torch.long, device=param.device)
    out = visual(pv, grid_thw=grid)
    merged = getattr(out, "pooler_output", out)  # transformers 5 returns a model output
    if isinstance(merged, (tuple, list)):
        merged = torch.cat(list(merged))
    merge = int(getattr(visual, "spatial_merge_size", 2))
    sizes = [r.num_patches // merge**2 for r in refs]
    if int(merged.shape[0]) != sum(sizes):
        raise ValueError(
            f"the vision tower returned {merged.shape[0]} features, grids need {sum(sizes)}"
        )
    return list(torch.split(merged, sizes))


def encode_images(
    model: Any, refs: Sequence[ImageRef], cache: VisionCache | None = None, grad: bool = False
) -> list[Any]:
    """Features of each ref, in order; each distinct image is encoded once.

    With ``grad=True`` nothing is read from or written to the cache (gradients must flow
    through the tower); otherwise cached features of the current weights are used and the
    missing ones encoded without gradients and stored."""
    import torch

    visual = vision_tower(model)
    if visual is None:
        raise ValueError("images given to a model without a vision tower")
    if not refs:
        return []
    if grad or cache is None:
        unique = list({r.key: r for r in refs}.values())
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            feats = dict(zip([r.key for r in unique], _encode(visual, unique), strict=True))
        return [feats[r.key] for r in refs]
    return cache.features(visual, refs)


class VisionCache:
    """Features by image content key, per model, valid while that model's weights are."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._models: dict[int, tuple[tuple, OrderedDict[str, Any]]] = {}
        self.hits = 0
        self.misses = 0

    def _entries(self, visual: Any) -> OrderedDict[str, Any]:
        version = weights_version(visual)
        held = self._models.pop(id(visual), None)
        if held is None or held[0] != version:
            held = (version, OrderedDict())
        self._models[id(visual)] = held  # most recently used model last
        while len(self._models) > MAX_MODELS:
            self._models.pop(next(iter(self._models)))
        return held[1]

    def features(self, visual: Any, refs: Sequence[ImageRef]) -> list[Any]:
        import torch

        entries = self._entries(visual)
        missing = list({r.key: r for r in refs if r.key not in entries}.values())
        self.misses += len(missing)
        self.hits += len(refs) - len(missing)
        if missing:
            with torch.no_grad():
                for r, f in zip(missing, _encode(visual, missing), strict=True):
                    entries[r.key] = f
        out = []
        for r in refs:
            entries.move_to_end(r.key)
            out.append(entries[r.key])
        self._trim(entries, keep={r.key for r in refs})
        return out

    def _trim(self, entries: OrderedDict[str, Any], keep: set[str]) -> None:
        size = sum(f.numel() * f.element_size() for f in entries.values())
        for key in list(entries):
            if size <= self.max_bytes:
                break
            if key in keep:
                continue
            f = entries.pop(key)
            size -= f.numel() * f.element_size()

    def clear(self) -> None:
        self._models.clear()

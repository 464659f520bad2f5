"""Qwen2-VL / Qwen2.5-VL multimodal RoPE positions (3-D position ids), computed by us.

The model gives every token three position indices (temporal, height, width). A text
token's three are equal and one more than the previous token's position; an image of
grid (t, h, w) with spatial merge m takes t * (h/m) * (w/m) placeholder tokens whose
indices are ``start + (frame, row, column)``, and the next text token continues at
``start + max(h, w) / m``. This is what `get_rope_index` computes inside the model for a
whole sequence; here it is a pure function of (tokens, grids, start) so that a sequence
can be extended piece by piece (a KV cache carried across turns) and every piece gets
the positions the full forward would give it:

    full, end = mrope_positions(a + b, grids_a + grids_b, ...)
    head, mid = mrope_positions(a, grids_a, ...)
    tail, end2 = mrope_positions(b, grids_b, ..., start=mid)
    torch.cat([head, tail], 1) == full and end2 == end

as long as `a` does not end inside an image's placeholder run (turns end on text).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def mrope_positions(
    token_ids: Sequence[int],
    grids: Sequence[Sequence[int]],
    image_token_id: int,
    merge_size: int,
    start: int = 0,
) -> tuple[Any, int]:
    """``([3, len(token_ids)] long tensor, next start)``: one image grid per run of image
    placeholder tokens, in order.

    >>> pos, nxt = mrope_positions([5, 9, 9, 9, 9, 6], [(1, 4, 4)], 9, 2)
    >>> pos.tolist()
    [[0, 1, 1, 1, 1, 3], [0, 1, 1, 2, 2, 3], [0, 1, 2, 1, 2, 3]]
    >>> nxt
    4
    """
    import torch

    n = len(token_ids)
    out = torch.empty((3, n), dtype=torch.long)
    pos, i, g = start, 0, 0
    ids = list(token_ids)
    while i < n:
        if ids[i] != image_token_id:
            j = i
            while j < n and ids[j] != image_token_id:
                j += 1
            out[:, i:j] = torch.arange(pos, pos + j - i).expand(3, -1)
            pos += j - i
            i = j
            continue
        if g >= len(grids):
            raise ValueError(f"more image placeholder runs than the {len(grids)} image grids given")
        t, h, w = (int(v) for v in grids[g])
        gh, gw = h // merge_size, w // merge_size
        size = t * gh * gw
        if ids[i : i + size] != [image_token_id] * size:
            raise ValueError(
                f"image {g + 1}: grid {(t, h, w)} needs {size} placeholder tokens in a run"
            )
        tt, hh, ww = torch.meshgrid(
            torch.arange(t), torch.arange(gh), torch.arange(gw), indexing="ij"
        )
        out[:, i : i + size] = torch.stack([tt, hh, ww]).reshape(3, -1) + pos
        pos += max(gh, gw)
        i += size
        g += 1
    if g != len(grids):
        raise ValueError(f"{len(grids)} image grids given but {g} placeholder runs found")
    return out, pos

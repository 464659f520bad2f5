"""Packed rows for log-prob passes: the G trajectories of a group share their prompt, so
the prompt is run once and each trajectory's own part follows it in the same row.

A group with shared prefix P (tokens and images) and members s_1..s_G becomes one row

    P  s_1[P:]  s_2[P:]  ...  s_G[P:]

where a token of member i attends to the prefix and to the earlier tokens of member i
only (a block mask), and keeps the position (3-D RoPE) it has in its own sequence. Each
token's hidden state is then exactly what the padded batch computes for it, up to float
summation order, while the prefix's layers run once instead of G times; gradients from
all members meet in the one prefix, as they add up over the G copies in a padded batch.

`group_prefix` finds the shared prefix (cut back before any image whose placeholders are
not wholly inside it or whose content differs between members: equal placeholder tokens
do not mean equal images); `pack` lays the rows out; `forward.token_logprobs` runs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PAD_MEMBER = -2
PREFIX = -1


def group_prefix(
    seqs: Sequence[Sequence[int]], image_keys: Sequence[Sequence[str]], image_token_id: int
) -> int:
    """Length of the prefix all `seqs` share, images included.

    >>> group_prefix([[1, 2, 9, 9, 3, 4], [1, 2, 9, 9, 3, 5]], [["a"], ["a"]], 9)
    5
    >>> group_prefix([[1, 2, 9, 9, 3, 4], [1, 2, 9, 9, 3, 5]], [["a"], ["b"]], 9)
    2
    """
    first = seqs[0]
    end = min(len(s) for s in seqs)
    p = 0
    while p < end and all(s[p] == first[p] for s in seqs[1:]):
        p += 1
    i, k = 0, 0
    while i < p:
        if first[i] != image_token_id:
            i += 1
            continue
        j = i
        while j < len(first) and first[j] == image_token_id:
            j += 1
        same = all(len(keys) > k and keys[k] == image_keys[0][k] for keys in image_keys[1:])
        if j > p or not same:
            return i
        i, k = j, k + 1
    return p


@dataclass
class Packed:
    """Packed rows of a batch of N sequences (padded width T of the source batch)."""

    tokens: Any  # [R, W] long
    positions: Any  # [3, R, W] long
    allowed: Any  # [R, 1, W, W] bool: query attends key
    row: Any  # [N, T] long: the packed row holding source (n, t); -1 past the sequence
    index: Any  # [N, T] long: its index in that row
    image_order: list[tuple[int, int]]  # (source row, image number) in packed order


def pack(
    groups: Sequence[Sequence[int]],
    token_ids: Sequence[Sequence[int]],
    image_keys: Sequence[Sequence[str]],
    positions: Any,
    image_token_id: int,
    pad_id: int,
) -> Packed:
    """Lay out each group (source row indices) as one packed row; `positions` is the
    source batch's ``[3, N, T]`` 3-D positions."""
    import torch

    n, width = len(token_ids), positions.shape[2]
    rows_tokens, rows_member, rows_src, image_order = [], [], [], []
    row = torch.full((n, width), -1, dtype=torch.long)
    index = torch.full((n, width), -1, dtype=torch.long)
    for g, members in enumerate(groups):
        seqs = [token_ids[m] for m in members]
        p = group_prefix(seqs, [image_keys[m] for m in members], image_token_id)
        head = members[0]
        toks, member, src = list(seqs[0][:p]), [PREFIX] * p, [(head, t) for t in range(p)]
        prefix_images = _runs(seqs[0][:p], image_token_id)
        image_order += [(head, k) for k in range(prefix_images)]
        for i, m in enumerate(members):
            seq = token_ids[m]
            row[m, : len(seq)] = g
            index[m, :p] = torch.arange(p)
            index[m, p : len(seq)] = torch.arange(len(toks), len(toks) + len(seq) - p)
            toks += seq[p:]
            member += [i] * (len(seq) - p)
            src += [(m, t) for t in range(p, len(seq))]
            image_order += [
                (m, k) for k in range(prefix_images, prefix_images + _runs(seq[p:], image_token_id))
            ]
        rows_tokens.append(toks)
        rows_member.append(member)
        rows_src.append(src)
    w = max(len(t) for t in rows_tokens)
    r = len(groups)
    tokens = torch.full((r, w), pad_id, dtype=torch.long)
    members = torch.full((r, w), PAD_MEMBER, dtype=torch.long)
    packed_pos = torch.zeros((3, r, w), dtype=torch.long)
    for g in range(r):
        k = len(rows_tokens[g])
        tokens[g, :k] = torch.tensor(rows_tokens[g], dtype=torch.long)
        members[g, :k] = torch.tensor(rows_member[g], dtype=torch.long)
        src = torch.tensor(rows_src[g], dtype=torch.long)
        packed_pos[:, g, :k] = positions[:, src[:, 0], src[:, 1]]
    q, kk = members.unsqueeze(2), members.unsqueeze(1)  # [R, W, 1], [R, 1, W]
    causal = torch.ones((w, w), dtype=torch.bool).tril()
    allowed = causal & ((kk == PREFIX) | (kk == q)) & (kk != PAD_MEMBER) & (q != PAD_MEMBER)
    allowed |= torch.eye(w, dtype=torch.bool)  # padding attends itself: no empty softmax row
    return Packed(tokens, packed_pos, allowed.unsqueeze(1), row, index, image_order)


def _runs(tokens: Sequence[int], image_token_id: int) -> int:
    """Number of image placeholder runs in `tokens`."""
    prev, runs = None, 0
    for t in tokens:
        if t == image_token_id and prev != image_token_id:
            runs += 1
        prev = t
    return runs

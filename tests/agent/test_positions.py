"""3-D RoPE positions computed piecewise equal the model's own `get_rope_index`."""

from __future__ import annotations

import doctest
import random

import pytest
import torch

import miva.agent.forward
import miva.agent.packing
import miva.agent.positions
from miva.agent.positions import mrope_positions


@pytest.mark.parametrize("module", [miva.agent.positions, miva.agent.forward, miva.agent.packing])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


def _sequence(rng: random.Random, image_id: int, n_images: int):
    ids, grids = [], []
    for _ in range(n_images):
        ids += [rng.randrange(100, 900) for _ in range(rng.randint(1, 7))]
        t, h, w = 1, 2 * rng.randint(1, 5), 2 * rng.randint(1, 5)  # non-square grids too
        grids.append((t, h, w))
        ids += [image_id] * (t * h * w // 4)
    ids += [rng.randrange(100, 900) for _ in range(rng.randint(1, 5))]
    return ids, grids


def test_random_sequences_match_get_rope_index_whole_and_in_pieces(tiny):
    model, processor = tiny
    image_id = processor.token_id("<|image_pad|>")
    rng = random.Random(0)
    for n_images in (0, 1, 2, 4):
        ids, grids = _sequence(rng, image_id, n_images)
        t = torch.tensor([ids])
        if grids:
            want, delta = model.model.get_rope_index(
                t, mm_token_type_ids=(t == image_id).int(), image_grid_thw=torch.tensor(grids)
            )
            want = want[:, 0]
        else:
            want = torch.arange(len(ids)).expand(3, -1)
        got, end = mrope_positions(ids, grids, image_id, 2)
        assert torch.equal(got, want)
        if grids:  # the next text position is what generate's rope_deltas would give
            assert end == len(ids) + int(delta)
        # split at every text token: the tail continues where the head ended
        for cut in range(1, len(ids)):
            if ids[cut - 1] == image_id and ids[cut] == image_id:
                continue
            k = sum(
                1 for i in range(cut) if ids[i] == image_id and (i == 0 or ids[i - 1] != image_id)
            )
            head, mid = mrope_positions(ids[:cut], grids[:k], image_id, 2)
            tail, end2 = mrope_positions(ids[cut:], grids[k:], image_id, 2, start=mid)
            assert torch.equal(torch.cat([head, tail], 1), got) and end2 == end


def test_placeholders_that_do_not_fit_the_grids_are_refused():
    with pytest.raises(ValueError, match="placeholder"):
        mrope_positions([1, 9, 9, 2], [(1, 4, 4)], 9, 2)
    with pytest.raises(ValueError, match="grids given"):
        mrope_positions([1, 2], [(1, 2, 2)], 9, 2)

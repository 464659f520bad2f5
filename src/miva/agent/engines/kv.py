"""The `hf` engine's batch KV cache: a transformers `DynamicCache` whose layers keep their
keys and values in buffers with room to spare.

transformers' `DynamicLayer` concatenates on every update, so each decode step copies the
whole cache (measured here: a quarter of a multi-turn rollout's time). `SpareLayer`
writes the new slots into a buffer that `reserve` has grown ahead of the decode loop and
hands attention a view of the filled part. Rows are selected (`reorder_cache`, also to
copy a shared prompt's row out to its G members) and compacted (`gather_slots`) in place.
"""

from __future__ import annotations

from typing import Any

from transformers.cache_utils import DynamicCache, DynamicLayer


class SpareLayer(DynamicLayer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._k = self._v = None  # [rows, heads, capacity, dim]; slots [:_n] are filled
        self._n = 0
        self._spare = 0  # slots to add beyond what an update needs when growing

    def _grow(self, need: int, keys_like: Any, values_like: Any) -> None:
        """Buffers for `need + spare` slots shaped like the given keys and values."""
        cap = need + self._spare
        k = keys_like.new_empty((*keys_like.shape[:2], cap, keys_like.shape[3]))
        v = values_like.new_empty((*values_like.shape[:2], cap, values_like.shape[3]))
        if self._n:
            k[:, :, : self._n] = self._k[:, :, : self._n]
            v[:, :, : self._n] = self._v[:, :, : self._n]
        self._k, self._v = k, v

    def _view(self) -> None:
        self.keys = self._k[:, :, : self._n]
        self.values = self._v[:, :, : self._n]

    def update(self, key_states: Any, value_states: Any, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        add = key_states.shape[-2]
        if self._k is None or self._n + add > self._k.shape[-2]:
            self._grow(self._n + add, key_states, value_states)
        self._k[:, :, self._n : self._n + add] = key_states
        self._v[:, :, self._n : self._n + add] = value_states
        self._n += add
        self._view()
        return self.keys, self.values

    def reserve(self, extra: int) -> None:
        """Room for `extra` more slots without reallocating."""
        self._spare = extra
        if self._k is not None and self._n + extra > self._k.shape[-2]:
            self._grow(self._n, self._k, self._v)
            self._view()

    def reorder_cache(self, beam_idx: Any) -> None:
        if self._n:  # whole buffers: the room reserved for decoding stays
            idx = beam_idx.to(self._k.device)
            self._k = self._k.index_select(0, idx)
            self._v = self._v.index_select(0, idx)
            self._view()

    batch_select_indices = reorder_cache

    def gather_slots(self, order: Any) -> None:
        """Row r keeps slots ``order[r]`` (``[rows, new_width]``), in that order."""
        if not self._n:
            return
        idx_k = order[:, None, :, None].expand(-1, self._k.shape[1], -1, self._k.shape[3])
        idx_v = order[:, None, :, None].expand(-1, self._v.shape[1], -1, self._v.shape[3])
        self._k = self._k[:, :, : self._n].gather(2, idx_k)
        self._v = self._v[:, :, : self._n].gather(2, idx_v)
        self._n = int(order.shape[1])
        self._view()


def batch_cache(config: Any) -> DynamicCache:
    """A `DynamicCache` for `config` whose full-attention layers are `SpareLayer`s."""
    cache = DynamicCache(config=config)
    cache.layers = [SpareLayer() if type(x) is DynamicLayer else x for x in cache.layers]
    return cache


def reserve(cache: DynamicCache, extra: int) -> None:
    for layer in cache.layers:
        if isinstance(layer, SpareLayer):
            layer.reserve(extra)


def gather_slots(cache: DynamicCache, order: Any) -> None:
    for layer in cache.layers:
        if isinstance(layer, SpareLayer):
            layer.gather_slots(order)
        elif layer.is_initialized and layer.keys is not None and layer.keys.numel():
            idx = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[3])
            layer.keys = layer.keys.gather(2, idx)
            layer.values = layer.values.gather(2, idx)

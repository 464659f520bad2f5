"""The `hf` engine: a batched decode loop over a transformers Qwen2-VL / Qwen2.5-VL model,
with the KV cache carried across turns and each image encoded once.

One `generate` call is one assistant turn for every running trajectory:

1. **Match.** A request whose `key` has a cached row, whose cached tokens are a prefix of
   its tokens and whose model weights have not changed since, continues that row: only
   the new tokens (the end of the last assistant turn, the tool turn and its images, the
   next assistant header) are run. Anything else starts a fresh row. Identical fresh
   requests (the G members of a group at turn 0) are run once and the row copied.
2. **Append.** One forward over the new tokens of every row, image placeholders replaced
   by vision features from the `VisionCache` (each image encoded once per weights), at
   the 3-D positions the full sequence would give them (`positions.mrope_positions`,
   continuing from the row's next position), appended to the rows' KV cache.
3. **Decode.** Sample one token per row, feed it back, until every row stopped (stop
   token, stop string, its `max_new_tokens`). The last sampled token of a row is not fed;
   the next turn's request starts with it.
4. **Keep** the rows for the next turn (`release()` drops them at the end of a batch).

The rows of the batch cache share one slot axis in time order; slots a row does not use
(padding after a shorter new piece, decode steps after it stopped, a row started afresh)
are masked out, never attended, and compacted away when they pass a quarter of the cache. Nothing here reads the checkpoint's `generation_config`:
sampling is exactly log_softmax(logits / T) (recorded), vision placeholders suppressed,
then top-p, with a private RNG stream seeded per call (the caller's RNG is untouched).

`kv_cache=False` re-runs every request's whole sequence each turn (nothing kept between
calls, no sharing); `vision_cache=False` re-encodes every image of every request each
turn. Both exist to measure and to check the caches: same seed, same trajectories.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from miva.agent.assembly import IM_END, ParityError
from miva.agent.engines.base import GenRequest, GenResult
from miva.agent.format import STOP_STRINGS
from miva.agent.positions import mrope_positions
from miva.agent.vision import (
    ImageRef,
    VisionCache,
    encode_images,
    split_images,
    unwrap,
    weights_version,
)

SUPPRESSED = (
    "<|image_pad|>",
    "<|video_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
)
COMPACT_WASTE = 0.25  # compact the batch cache when this share of its slots is masked


@dataclass
class _Row:
    """What one cache row holds: the tokens whose keys and values are cached (in order,
    masked slots aside), the images among them and the position of the next token."""

    key: Any
    tokens: list[int]
    image_keys: list[str]
    next_pos: int


@dataclass
class _Batch:
    cache: Any  # transformers DynamicCache, [rows, heads, slots, dim] per layer
    mask: Any  # [rows, slots] long: 1 on slots a row attends
    rows: list[_Row]
    version: tuple  # weights the keys and values were computed with


class HFEngine:
    def __init__(
        self,
        model,
        processor,
        temperature: float = 1.0,
        top_p: float = 1.0,
        kv_cache: bool = True,
        vision_cache: bool = True,
    ):
        self.model, self.processor = model, processor
        self.temperature, self.top_p = temperature, top_p
        self.kv_cache = kv_cache
        self.vision_cache = VisionCache() if vision_cache else None
        tok = processor.tokenizer
        self.pad_id = (
            tok.pad_token_id
            if tok.pad_token_id is not None
            else processor.token_id("<|endoftext|>")
        )
        self.image_token_id = processor.token_id("<|image_pad|>")
        self.suppress = [processor.token_id(t) for t in SUPPRESSED]
        stops = {processor.token_id(IM_END)}
        if tok.eos_token_id is not None:
            stops.add(int(tok.eos_token_id))
        with_eot = tok.convert_tokens_to_ids("<|endoftext|>")
        if with_eot is not None and with_eot != tok.unk_token_id:
            stops.add(int(with_eot))
        # stop strings that are one token in this vocabulary become stop tokens
        self.string_stops = []
        for s in STOP_STRINGS:
            ids = tok.encode(s, add_special_tokens=False)
            if len(ids) == 1:
                stops.add(ids[0])
            else:
                self.string_stops.append(s)
        self.stop_ids = stops
        self._batch: _Batch | None = None
        self.stats = {"prefill_tokens": 0, "reused_tokens": 0, "shared_rows": 0}

    def load_weights(self, state_dict: dict[str, Any]) -> None:
        """Take the trainer's new weights (same architecture; a subset of tensors is fine)."""
        result = self.model.load_state_dict(state_dict, strict=False)
        if result.unexpected_keys:
            raise ValueError(f"weights for unknown parameters: {result.unexpected_keys[:5]}")
        self._batch = None

    def release(self) -> None:
        """Drop the rows kept between turns (the end of a rollout batch)."""
        self._batch = None

    # ------------------------------------------------------------------ one turn
    def generate(self, requests: list[GenRequest], seed: int) -> list[GenResult]:
        import torch

        if not requests:
            return []
        model = unwrap(self.model)
        with torch.no_grad():
            batch, logits = self._append(model, requests)
            results = self._decode(model, requests, batch, logits, seed)
        self._batch = batch if self.kv_cache else None
        return results

    def _images(self, r: GenRequest) -> list[ImageRef]:
        return split_images(r.pixel_values, r.image_grid_thw, r.image_keys or None)

    def _match(self, r: GenRequest, version: tuple) -> int | None:
        b = self._batch
        if not self.kv_cache or b is None or b.version != version or r.key is None:
            return None
        for i, row in enumerate(b.rows):
            n = len(row.tokens)
            if (
                row.key == r.key
                and n < len(r.token_ids)
                and r.token_ids[:n] == row.tokens
                and list(r.image_keys[: len(row.image_keys)]) == row.image_keys
            ):
                return i
        return None

    def _append(self, model: Any, requests: list[GenRequest]) -> tuple[_Batch, Any]:
        """Run every request's new tokens into the cache; logits of each request's last token."""
        import torch

        from miva.agent.engines.kv import batch_cache, reserve

        version = weights_version(model)
        images = [self._images(r) for r in requests]
        for r, refs in zip(requests, images, strict=True):
            if not r.image_keys:
                r.image_keys = [x.key for x in refs]
        src = [self._match(r, version) for r in requests]
        # identical fresh requests share one computed row
        compute: list[int] = []  # request index of each computed row
        expand: list[int] = []  # computed row of each request
        first: dict[tuple, int] = {}
        for i, r in enumerate(requests):
            sig = (tuple(r.token_ids), tuple(r.image_keys)) if src[i] is None else None
            if self.kv_cache and sig is not None and sig in first:
                expand.append(first[sig])
                continue
            if sig is not None:
                first[sig] = len(compute)
            expand.append(len(compute))
            compute.append(i)
        self.stats["shared_rows"] += len(requests) - len(compute)

        dev = next(model.parameters()).device
        old = self._batch if any(s is not None for s in src) else None
        if old is not None:
            sel = torch.tensor([src[i] if src[i] is not None else 0 for i in compute], device=dev)
            cache = old.cache
            cache.reorder_cache(sel)
            mask = old.mask.index_select(0, sel)
            for j, i in enumerate(compute):
                if src[i] is None:
                    mask[j] = 0
            cache, mask = _compact(cache, mask)
            self._batch = None  # its cache was reordered in place
        else:
            cache = batch_cache(model.config)
            mask = torch.zeros((len(compute), 0), dtype=torch.long, device=dev)

        chunks, pos, feats = [], [], []
        merge = self.processor.merge_size
        for i in compute:
            r, row = requests[i], (old.rows[src[i]] if src[i] is not None else None)
            done_tokens = len(row.tokens) if row else 0
            done_images = len(row.image_keys) if row else 0
            new_ids = r.token_ids[done_tokens:]
            new_refs = images[i][done_images:]
            p, nxt = mrope_positions(
                new_ids,
                [x.grid_thw for x in new_refs],
                self.image_token_id,
                merge,
                start=row.next_pos if row else 0,
            )
            chunks.append((new_ids, nxt))
            pos.append(p)
            feats.append(new_refs)
            self.stats["prefill_tokens"] += len(new_ids)
            self.stats["reused_tokens"] += done_tokens
        width = max(len(c[0]) for c in chunks)
        n = len(compute)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        new_mask = torch.zeros((n, width), dtype=torch.long)
        positions = torch.zeros((3, n, width), dtype=torch.long)
        for j, ((new_ids, _), p) in enumerate(zip(chunks, pos, strict=True)):
            ids[j, : len(new_ids)] = torch.tensor(new_ids, dtype=torch.long)
            new_mask[j, : len(new_ids)] = 1
            positions[:, j, : len(new_ids)] = p
        ids = ids.to(dev)
        embeds = model.get_input_embeddings()(ids)
        refs = [x for row_refs in feats for x in row_refs]
        if refs:
            vf = encode_images(model, refs, self.vision_cache)
            placeholders = ids == self.image_token_id
            want = int(placeholders.sum())
            got = sum(int(f.shape[0]) for f in vf)
            if want != got:
                raise ParityError(
                    f"{want} image placeholders in the new tokens, {got} image features"
                )
            embeds = embeds.masked_scatter(
                placeholders.unsqueeze(-1), torch.cat(vf).to(embeds.dtype)
            )
        mask = torch.cat([mask, new_mask.to(dev)], dim=1)
        reserve(cache, max(r.max_new_tokens for r in requests))  # decode writes in place
        hidden = _language_model(model)(
            inputs_embeds=embeds,
            position_ids=positions.to(dev),
            attention_mask=mask,
            past_key_values=cache,
            use_cache=True,
        ).last_hidden_state
        last = torch.tensor([len(c[0]) - 1 for c in chunks], device=dev)
        logits = model.get_output_embeddings()(hidden[torch.arange(n, device=dev), last])
        if len(compute) != len(requests):  # copy shared rows out to every request
            idx = torch.tensor(expand, device=dev)
            cache.reorder_cache(idx)
            mask, logits = mask.index_select(0, idx), logits.index_select(0, idx)
        rows = [
            _Row(r.key, list(r.token_ids), list(r.image_keys), chunks[e][1])
            for r, e in zip(requests, expand, strict=True)
        ]
        return _Batch(cache, mask, rows, version), logits

    def _decode(
        self, model: Any, requests: list[GenRequest], batch: _Batch, logits: Any, seed: int
    ) -> list[GenResult]:
        import torch

        dev = logits.device
        n = len(requests)
        greedy = self.temperature <= 0
        temp = 1.0 if greedy else self.temperature
        suppress = torch.tensor(self.suppress, dtype=torch.long, device=dev)
        gen = torch.Generator().manual_seed(int(seed))
        tokenizer = self.processor.tokenizer
        out_ids: list[list[int]] = [[] for _ in range(n)]
        out_lp: list[list[float]] = [[] for _ in range(n)]
        finished = [False] * n
        active = [True] * n
        texts = [""] * n
        limit = [
            min(r.max_new_tokens, len(r.forced_tokens)) if r.forced_tokens else r.max_new_tokens
            for r in requests
        ]
        next_pos = torch.tensor([row.next_pos for row in batch.rows], dtype=torch.long)
        embed, lm = model.get_input_embeddings(), _language_model(model)
        head = model.get_output_embeddings()
        step = 0
        while True:
            scores = logits.float() / temp
            logp = torch.log_softmax(scores, dim=-1)
            tokens = self._choose(scores, suppress, gen)
            for i, r in enumerate(requests):
                if active[i] and r.forced_tokens:
                    tokens[i] = r.forced_tokens[step]
            picked = logp.gather(1, tokens.to(dev).unsqueeze(1)).squeeze(1).cpu().tolist()
            feed = [False] * n
            for i, t in enumerate(tokens.tolist()):
                if not active[i]:
                    continue
                out_ids[i].append(t)
                out_lp[i].append(picked[i])
                stop = t in self.stop_ids
                if not stop and self.string_stops:
                    texts[i] += tokenizer.decode([t])
                    stop = any(s in texts[i][-(len(s) + 64) :] for s in self.string_stops)
                forced_done = bool(requests[i].forced_tokens) and len(out_ids[i]) == limit[i]
                if stop or forced_done:
                    finished[i], active[i] = True, False
                elif len(out_ids[i]) >= limit[i]:
                    active[i] = False
                else:
                    feed[i] = True
            if not any(feed):
                break
            fed = torch.tensor(feed)
            ids = torch.where(fed, tokens, torch.full_like(tokens, self.pad_id))
            pos = next_pos.clone()
            next_pos += fed.long()
            batch.mask = torch.cat([batch.mask, fed.long().to(dev).unsqueeze(1)], dim=1)
            hidden = lm(
                inputs_embeds=embed(ids.to(dev).unsqueeze(1)),
                position_ids=pos.to(dev).view(1, n, 1).expand(3, n, 1),
                attention_mask=batch.mask,
                past_key_values=batch.cache,
                use_cache=True,
            ).last_hidden_state
            logits = head(hidden[:, -1])
            step += 1
        for i, row in enumerate(batch.rows):
            row.tokens = row.tokens + out_ids[i][:-1]
            row.next_pos = int(next_pos[i])
        return [GenResult(out_ids[i], out_lp[i], finished[i]) for i in range(n)]

    def _choose(self, scores: Any, suppress: Any, gen: Any) -> Any:
        """Next token per row (on the CPU): greedy, or inverse-CDF sampling of the
        top-p nucleus with the vision tokens suppressed."""
        import torch

        scores = scores.clone()
        scores[:, suppress] = float("-inf")
        if self.temperature <= 0:
            return scores.argmax(-1).cpu()
        if self.top_p < 1.0:
            sorted_scores, idx = torch.sort(scores, descending=True, dim=-1)
            probs = torch.softmax(sorted_scores, dim=-1)
            drop = probs.cumsum(-1) - probs > self.top_p  # keep the smallest set reaching top_p
            sorted_scores[drop] = float("-inf")
            scores = torch.full_like(scores, float("-inf")).scatter(1, idx, sorted_scores)
        cdf = torch.softmax(scores, dim=-1).cumsum(-1)
        # u in (0, 1]: a point inside the mass, never on a zero-probability token
        u = 1.0 - torch.rand(scores.shape[0], generator=gen, dtype=torch.float64)
        x = (u.to(cdf.device, cdf.dtype) * cdf[:, -1]).unsqueeze(1)
        return (cdf < x).sum(-1).clamp(max=scores.shape[1] - 1).cpu()


def _language_model(model: Any) -> Any:
    core = getattr(model, "model", model)
    return getattr(core, "language_model", core)


def _compact(cache: Any, mask: Any) -> tuple[Any, Any]:
    """Move each row's attended slots to the front (time order kept) when masked slots
    are more than `COMPACT_WASTE` of the cache; attention results are unchanged."""
    import torch

    from miva.agent.engines.kv import gather_slots

    rows, width = mask.shape
    if width == 0:
        return cache, mask
    keep = mask.sum(1)
    if 1.0 - float(keep.sum()) / (rows * width) <= COMPACT_WASTE:
        return cache, mask
    new_width = int(keep.max())
    # slot indices of each row's attended slots first, stable, then the rest
    order = torch.argsort(1 - mask, dim=1, stable=True)[:, :new_width]
    gather_slots(cache, order)
    return cache, torch.gather(mask, 1, order)

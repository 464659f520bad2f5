"""The `hf` engine: transformers `generate` with KV cache on the full multimodal sequence.

Each call left-pads the batch, concatenates the pixel values of all images of all
sequences (in batch order, as the model expects) and generates one turn. Sampling is
controlled by one logits processor (`_Sampler`) and nothing else (a fresh
GenerationConfig, so a checkpoint's own defaults such as top_k or repetition penalty do
not leak in): it records log_softmax(logits / T) of each sampled token, suppresses the
vision placeholder tokens, then applies temperature and top-p.
"""

from __future__ import annotations

from typing import Any

from miva.agent.assembly import IM_END
from miva.agent.engines.base import GenRequest, GenResult, cut_at_stop
from miva.agent.format import STOP_STRINGS

SUPPRESSED = (
    "<|image_pad|>",
    "<|video_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
)


def _sampler_class():
    import torch
    from transformers import LogitsProcessor

    class _Sampler(LogitsProcessor):
        def __init__(self, temperature: float, top_p: float, suppress: list[int]):
            self.t = temperature if temperature > 0 else 1.0
            self.greedy = temperature <= 0
            self.top_p = top_p
            self.suppress = torch.tensor(suppress, dtype=torch.long)
            self.prev: torch.Tensor | None = None
            self.logprobs: list[torch.Tensor] = []  # one [B] tensor per generated token

        def gather_last(self, ids: torch.Tensor) -> None:
            if self.prev is not None:
                self.logprobs.append(self.prev.gather(1, ids[:, -1:]).squeeze(1))
                self.prev = None

        def __call__(self, input_ids, scores):
            self.gather_last(input_ids)
            scores = scores.float() / self.t
            self.prev = torch.log_softmax(scores, dim=-1)
            scores = scores.clone()
            scores[:, self.suppress.to(scores.device)] = float("-inf")
            if not self.greedy and self.top_p < 1.0:
                sorted_scores, idx = torch.sort(scores, descending=True, dim=-1)
                probs = torch.softmax(sorted_scores, dim=-1)
                drop = probs.cumsum(-1) - probs > self.top_p  # keep the smallest set reaching top_p
                sorted_scores[drop] = float("-inf")
                scores = torch.full_like(scores, float("-inf")).scatter(1, idx, sorted_scores)
            return scores

    return _Sampler


class HFEngine:
    def __init__(self, model, processor, temperature: float = 1.0, top_p: float = 1.0):
        self.model, self.processor = model, processor
        self.temperature, self.top_p = temperature, top_p
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

    def load_weights(self, state_dict: dict[str, Any]) -> None:
        """Take the trainer's new weights (same architecture; a subset of tensors is fine)."""
        result = self.model.load_state_dict(state_dict, strict=False)
        if result.unexpected_keys:
            raise ValueError(f"weights for unknown parameters: {result.unexpected_keys[:5]}")

    def generate(self, requests: list[GenRequest], seed: int) -> list[GenResult]:
        import torch
        from transformers import GenerationConfig

        if not requests:
            return []
        dev = next(self.model.parameters()).device
        width = max(len(r.token_ids) for r in requests)
        ids = torch.full((len(requests), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(requests), width), dtype=torch.long)
        for i, r in enumerate(requests):
            ids[i, width - len(r.token_ids) :] = torch.tensor(r.token_ids, dtype=torch.long)
            mask[i, width - len(r.token_ids) :] = 1
        pv = [r.pixel_values for r in requests if r.pixel_values is not None]
        grids = [r.image_grid_thw for r in requests if r.image_grid_thw is not None]
        kwargs: dict[str, Any] = {}
        if pv:
            kwargs["pixel_values"] = torch.cat(pv).to(dev, self.model.dtype)
            kwargs["image_grid_thw"] = torch.cat(grids).to(dev)
            kwargs["mm_token_type_ids"] = (ids == self.image_token_id).int().to(dev)
        max_new = max(r.max_new_tokens for r in requests)
        sampler = _sampler_class()(self.temperature, self.top_p, self.suppress)
        gen_cfg = GenerationConfig(
            max_new_tokens=max_new,
            do_sample=self.temperature > 0,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            eos_token_id=sorted(self.stop_ids),
            pad_token_id=self.pad_id,
            stop_strings=list(self.string_stops) or None,
        )
        if self.string_stops:  # stop strings that span several tokens need the tokenizer
            kwargs["tokenizer"] = self.processor.tokenizer
        # a private RNG stream: the caller's (trainer's) random state is left as it was
        devices = [dev] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            torch.manual_seed(seed)
            out = self.model.generate(
                input_ids=ids.to(dev),
                attention_mask=mask.to(dev),
                generation_config=gen_cfg,
                logits_processor=[sampler],
                **kwargs,
            )
        new = out[:, width:].cpu()
        sampler.gather_last(out)
        lps = (
            torch.stack(sampler.logprobs, dim=1).cpu()
            if sampler.logprobs
            else torch.zeros(len(requests), 0)
        )
        results = []
        for i, r in enumerate(requests):
            toks = new[i, : r.max_new_tokens].tolist()
            lp = lps[i, : r.max_new_tokens].tolist()
            results.append(
                cut_at_stop(toks, lp, self.processor.tokenizer, self.stop_ids, self.string_stops)
            )
        return results

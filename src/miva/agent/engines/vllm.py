"""The `vllm` engine: the same interface as `hf`, served by vLLM on a GPU.

UNTESTED HERE: written for GPUs (no GPU and no vllm on the development box); exercised by
`tests/agent/test_vllm_engine.py` (marked `gpu`) where one is available.

- Lazy import: `vllm` is imported when the engine is built, never at module import.
- Multi-image inputs: each request is a `TokensPrompt` with `multi_modal_data={"image":
  [PIL, ...]}` (all images of the trajectory so far, in order). vLLM expands image
  placeholders with its own processor, so each run of `<|image_pad|>` tokens is
  collapsed to one before sending; vLLM is given the same min/max pixels so its
  expansion equals ours (parity stays checked on our side).
- Sampling: temperature, top-p, stop strings `</tool_call>` / `</answer>` (kept in the
  output), vision tokens pushed down with a logit bias, per-request seeds; `logprobs=0`
  returns the log-prob of each sampled token (vLLM's raw log-probs: equal to our
  log_softmax(logits / T) convention at temperature 1).
- New weights each step: `load_weights(state_dict)` pushes the trainer's tensors into the
  running model (`model.load_weights` on every worker through `collective_rpc`) and
  resets the prefix cache, so the next rollout samples from the new policy.
"""

from __future__ import annotations

import os
from typing import Any

from miva.agent.engines.base import GenRequest, GenResult, cut_at_stop
from miva.agent.engines.hf import SUPPRESSED
from miva.agent.format import STOP_STRINGS


class VLLMEngine:
    def __init__(
        self,
        model_path: str,
        processor,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_images: int = 12,
        max_model_len: int = 8192,
        gpu_memory_utilization: float = 0.5,
        dtype: str = "bfloat16",
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        tensor_parallel_size: int = 1,
    ):
        # in-process engine core: weights can be loaded from the trainer's tensors directly
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:
            from vllm import LLM
        except ImportError as exc:  # pragma: no cover - depends on the GPU image
            from miva.errors import ConfigError

            raise ConfigError(
                "agent.engine=vllm needs the `vllm` package (pip install 'miva[gpu]') and a GPU"
            ) from exc
        self.processor = processor
        self.temperature, self.top_p = temperature, top_p
        self.image_token_id = processor.token_id("<|image_pad|>")
        self.bias = {processor.token_id(t): -100.0 for t in SUPPRESSED}
        tok = processor.tokenizer
        self.stop_ids = {processor.token_id("<|im_end|>"), processor.token_id("<|endoftext|>")}
        mm_kwargs: dict[str, Any] = {}
        if min_pixels is not None:
            mm_kwargs["min_pixels"] = min_pixels
        if max_pixels is not None:
            mm_kwargs["max_pixels"] = max_pixels
        self.llm = LLM(
            model=str(model_path),
            tokenizer=str(model_path),
            dtype=dtype,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            limit_mm_per_prompt={"image": max_images},
            mm_processor_kwargs=mm_kwargs or None,
            tensor_parallel_size=tensor_parallel_size,
            enable_prefix_caching=True,
        )
        self._tok = tok

    def collapse_placeholders(self, token_ids: list[int]) -> list[int]:
        out: list[int] = []
        for t in token_ids:
            if t == self.image_token_id and out and out[-1] == self.image_token_id:
                continue
            out.append(t)
        return out

    def generate(self, requests: list[GenRequest], seed: int) -> list[GenResult]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts, params = [], []
        for i, r in enumerate(requests):
            prompt = TokensPrompt(prompt_token_ids=self.collapse_placeholders(r.token_ids))
            if r.images:
                prompt["multi_modal_data"] = {"image": list(r.images)}
            prompts.append(prompt)
            params.append(
                SamplingParams(
                    n=1,
                    temperature=self.temperature,
                    top_p=self.top_p,
                    top_k=-1 if self.temperature > 0 else 1,
                    max_tokens=r.max_new_tokens,
                    stop=list(STOP_STRINGS),
                    stop_token_ids=sorted(self.stop_ids),
                    include_stop_str_in_output=True,
                    logprobs=0,
                    logit_bias=self.bias,
                    seed=seed * 1_000_003 + i,
                    skip_special_tokens=False,
                    detokenize=True,
                )
            )
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for out in outputs:
            comp = out.outputs[0]
            ids = list(comp.token_ids)
            lps = [
                float(step[t].logprob) if step and t in step else 0.0
                for t, step in zip(ids, comp.logprobs or [[]] * len(ids), strict=False)
            ]
            res = cut_at_stop(ids, lps, self._tok, self.stop_ids, STOP_STRINGS)
            # vLLM also reports a finish reason: "stop" means a stop token or string
            res.finished = res.finished or comp.finish_reason == "stop"
            results.append(res)
        return results

    def load_weights(self, state_dict: dict[str, Any]) -> None:
        """Load the trainer's weights (a HF-named state dict) into the running model."""
        items = [(k, v.detach()) for k, v in state_dict.items()]

        def _load(worker) -> None:  # runs inside every vLLM worker
            worker.model_runner.model.load_weights(weights=items)

        self.llm.collective_rpc(_load)
        self.llm.reset_prefix_cache()

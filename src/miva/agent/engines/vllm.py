"""The `vllm` engine: the same interface as `hf`, served by vLLM on a GPU.

Not run on the development box (no GPU, and vLLM cannot be installed there): MIVA's side of
this engine (prompts, images, sampling parameters, results, weight loading, cache resets)
is tested there against a stand-in for the `vllm` module (`tests/agent/test_vllm_logic.py`);
`tests/agent/test_vllm_engine.py` (marked `gpu`) runs the real thing where one is available.

- Lazy import: `vllm` is imported when the engine is built, never at module import.
- Multi-image inputs: each request is a `TokensPrompt` with `multi_modal_data={"image":
  [PIL, ...]}` (all images of the trajectory so far, in order). vLLM's Qwen2-VL input
  parser takes PIL images or precomputed embeddings, not pixel values, so the engine sends
  the images the trainer's pixel values were made from: `trainer_images` recovers each
  resized 8-bit image exactly from the trainer's pixel values, so vLLM's resize is a no-op
  (the size already fits its min/max pixels and patch grid) and its rescale + normalise
  gives the trainer's pixels (a test checks the round trip through the image processor).
  Each run of `<|image_pad|>` tokens is collapsed to one before sending; vLLM expands it
  again from the image grid, which is the trainer's grid.
- Sampling: temperature, top-p, stop strings `</tool_call>` / `</answer>` (kept in the
  output), vision tokens pushed down with a logit bias, per-request seeds. Log-probs are
  vLLM's ``processed_logprobs``: those of the distribution that actually sampled (after
  temperature, the logit bias and top-p), which is what importance sampling needs as the
  behaviour policy; `train/logp_mismatch_*` shows how far they are from the trainer's.
- New weights each step: `load_weights(state_dict)` pushes the trainer's tensors into the
  running model (`model.load_weights` on every worker through `collective_rpc`), then
  resets the prefix cache (KV blocks computed with the old weights) and the multimodal
  cache (vision-encoder outputs computed with the old weights), so the next rollout
  samples from the new policy.
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
                "agent.rollout_engine=vllm needs the `vllm` package (pip install 'miva[gpu]') and a GPU"
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
            logprobs_mode="processed_logprobs",
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
            if r.pixel_values is not None and len(r.image_grid_thw):
                images = trainer_images(
                    r.pixel_values, r.image_grid_thw, self.processor.image_processor
                )
                prompt["multi_modal_data"] = {"image": images}
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
                    seed=(seed * 1_000_003 + i) % 2**63,
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
        # cached KV blocks and vision-encoder outputs were computed with the old weights
        self.llm.reset_prefix_cache()
        self.llm.reset_mm_cache()


def trainer_images(pixel_values: Any, grid_thw: Any, image_processor: Any) -> list[Any]:
    """The resized 8-bit RGB images that the trainer's pixel values were computed from.

    The Qwen2-VL image processor resizes each image (to a multiple of patch * merge size),
    rescales by 1/255, normalises by mean/std, repeats it `temporal_patch_size` times and
    cuts it into patches grouped by merge window. This undoes those steps for each image of
    ``pixel_values`` ``[patches, C * T * P * P]`` (grids ``[n_images, 3]``), rounding to the
    8-bit values the processor started from, so processing the result again reproduces
    ``pixel_values`` and vLLM sees what the trainer saw.
    """
    import numpy as np
    from PIL import Image

    ps = int(image_processor.patch_size)
    ms = int(image_processor.merge_size)
    tps = int(image_processor.temporal_patch_size)
    mean = np.asarray(image_processor.image_mean, dtype=np.float64)[:, None, None]
    std = np.asarray(image_processor.image_std, dtype=np.float64)[:, None, None]
    scale = float(image_processor.rescale_factor)
    values = pixel_values.detach().cpu().double().numpy()
    channels = values.shape[1] // (tps * ps * ps)
    grids = [tuple(int(v) for v in g) for g in grid_thw]
    expected = sum(t * h * w for t, h, w in grids)
    if expected != len(values):
        raise ValueError(
            f"pixel values hold {len(values)} patches but the image grids account for {expected}"
        )
    out, offset = [], 0
    for t, h, w in grids:
        patches = values[offset : offset + t * h * w]
        offset += t * h * w
        # the processor's layout: (t, h/ms, w/ms, ms, ms, C, tps, ps, ps) per patch row
        x = patches.reshape(t, h // ms, w // ms, ms, ms, channels, tps, ps, ps)
        x = x.transpose(0, 6, 5, 1, 3, 7, 2, 4, 8)  # -> (t, tps, C, h/ms, ms, ps, w/ms, ms, ps)
        frame = x.reshape(t * tps, channels, h * ps, w * ps)[0]
        pixels = (frame * std + mean) / scale
        arr = np.clip(np.rint(pixels), 0, 255).astype(np.uint8).transpose(1, 2, 0)
        out.append(Image.fromarray(arr, "RGB"))
    return out

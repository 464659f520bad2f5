"""Rollout engines behind one interface (`base.Engine`): `hf` (transformers generate),
`vllm` (GPU, lazy import) and a scripted policy for tests and gold trajectories."""

from __future__ import annotations

from miva.agent.engines.base import Engine, GenRequest, GenResult

__all__ = ["Engine", "GenRequest", "GenResult", "make_engine"]


def make_engine(kind: str, model, processor, agent_cfg, **kwargs) -> Engine:
    if kind == "hf":
        from miva.agent.engines.hf import HFEngine

        return HFEngine(
            model,
            processor,
            agent_cfg.temperature,
            agent_cfg.top_p,
            kv_cache=agent_cfg.kv_cache,
            vision_cache=agent_cfg.vision_cache,
        )
    if kind == "vllm":
        from miva.agent.engines.vllm import VLLMEngine

        return VLLMEngine(
            processor=processor, temperature=agent_cfg.temperature, top_p=agent_cfg.top_p, **kwargs
        )
    from miva.errors import ConfigError

    raise ConfigError(f"unknown rollout engine {kind!r}; known: hf, vllm")

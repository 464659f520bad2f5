"""Teacher-forced turns through a real engine: `ReplayTurns(engine, tokenizer, script)`.

Where ``script(key, turn)`` returns text, that turn's tokens are exactly the text's, run
through the wrapped engine as if sampled (the model computes them and their log-probs
are the model's, its KV cache grows with them); where it returns None the engine samples.
Benchmarks and tests use it to make an untrained model call tools while every turn still
costs what a sampled one does (unlike `ScriptedEngine`, which never runs the model).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from miva.agent.engines.base import Engine, GenRequest, GenResult, release


class ReplayTurns:
    def __init__(self, engine: Engine, tokenizer: Any, script: Callable[[Any, int], str | None]):
        self.engine, self.tokenizer, self.script = engine, tokenizer, script

    def generate(self, requests: list[GenRequest], seed: int) -> list[GenResult]:
        for r in requests:
            text = self.script(r.key, r.turn)
            if text is not None:
                r.forced_tokens = self.tokenizer.encode(text, add_special_tokens=False)
        return self.engine.generate(requests, seed)

    def release(self) -> None:
        release(self.engine)

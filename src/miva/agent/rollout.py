"""The batched multi-turn rollout loop.

All trajectories of a batch advance turn by turn together: one `engine.generate` call per
turn for every trajectory still running, then tools run for the ones that called one.

    for turn in 1..max_turns:
        generate one assistant turn for every running trajectory (stop on </tool_call>,
        </answer>, <|im_end|> or max_new_tokens)
        answer            -> status ok, stop
        hit max tokens    -> status truncated, stop (also when max_total_tokens is used up)
        no call, no answer-> status ok with answer None, stop (the format reward sees it)
        malformed call    -> agent.malformed_call: error turn to the model, or status malformed
        tool call         -> run the tool; error results go back to the model as text;
                             new images must fit the image budget, else status image_budget
    still running after max_turns -> status max_turns (malformed / tool_error when the
                                     last call was malformed / failed)

Group order is sample-major: trajectories of sample i are `out[i*n : (i+1)*n]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from miva.agent import format as fmt
from miva.agent.assembly import EncodedImage, SequenceBuilder, encode_image
from miva.agent.engines.base import Engine, GenRequest, release
from miva.agent.tools import Tool, ToolContext, ToolResult
from miva.agent.trajectory import ToolCall, Trajectory, Turn


@dataclass
class _State:
    sample: Any
    builder: SequenceBuilder
    images: list[Any]
    n_original: int
    prompt_length: int = 0
    turns: list[Turn] = field(default_factory=list)
    calls: list[ToolCall] = field(default_factory=list)
    status: str = "ok"
    answer: str | None = None
    done: bool = False
    last_problem: str | None = None  # "malformed" | "tool_error" | None


class Agent:
    """`Agent(processor, agent_cfg, tools, engine).rollout(samples, n_per_sample, seed)`."""

    def __init__(
        self, processor, cfg, tools: dict[str, Tool], engine: Engine, family: str | None = None
    ):
        self.processor, self.cfg, self.tools, self.engine = processor, cfg, tools, engine
        self.family = family or processor.family

    # ------------------------------------------------------------------ set-up
    def _start(self, sample, encoded: list[EncodedImage]) -> _State:
        b = SequenceBuilder(self.processor, max_pixels=self.cfg.max_trajectory_pixels)
        st = _State(sample, b, [e.image for e in encoded], len(encoded))
        system = fmt.system_prompt(
            [t.schema() for t in self.tools.values()],
            sample.answer_type,
            self.family,
            style=self.cfg.prompt_style,
        )
        user = fmt.user_prompt(
            sample.question,
            len(encoded),
            sample.choices or None,
            options_in_question=bool(sample.meta.get("options_in_question")),
            segments=sample.meta.get("question_segments"),
        )
        st.turns += [Turn("system", system), Turn("user", user.text, len(encoded))]
        if not b.fits(encoded):
            st.status, st.done = "image_budget", True
        b.start(system, user, encoded)
        st.prompt_length = len(b.token_ids)
        if st.prompt_length >= self.cfg.max_total_tokens:
            st.status, st.done = "truncated", True
        return st

    def rollout(
        self, samples: Sequence[Any], n_per_sample: int = 1, seed: int = 0, progress: bool = False
    ) -> list[Trajectory]:
        states: list[_State] = []
        for sample in samples:
            encoded = [encode_image(img, self.processor) for img in sample.pil_images()]
            states.extend(self._start(sample, encoded) for _ in range(n_per_sample))
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=self.cfg.max_turns, desc="rollout turns", leave=False)
        try:
            for turn in range(self.cfg.max_turns):
                running = [i for i, s in enumerate(states) if not s.done]
                if not running:
                    break
                requests = []
                for i in running:
                    s = states[i]
                    room = self.cfg.max_total_tokens - len(s.builder.token_ids)
                    requests.append(
                        GenRequest(
                            token_ids=list(s.builder.token_ids),
                            pixel_values=s.builder.pixel_values(),
                            image_grid_thw=s.builder.image_grid_thw(),
                            max_new_tokens=max(1, min(self.cfg.max_new_tokens, room)),
                            key=i,
                            turn=turn,
                            images=[e.image for e in s.builder.images],
                            image_keys=s.builder.image_keys(),
                        )
                    )
                results = self.engine.generate(requests, seed=seed * 100003 + turn)
                for i, res in zip(running, results, strict=True):
                    self._advance(states[i], res, turn)
                if bar:
                    bar.update(1)
        finally:  # the engine's per-batch state (KV cache) is not needed any more
            release(self.engine)
            if bar:
                bar.close()
        for s in states:
            if not s.done:
                s.done = True
                s.status = s.last_problem or "max_turns"
        return [self._finish(s) for s in states]

    # ------------------------------------------------------------------ one turn
    def _advance(self, s: _State, res, turn: int) -> None:
        b = s.builder
        text = self.processor.tokenizer.decode(res.token_ids, skip_special_tokens=False)
        b.add_sampled(res.token_ids, res.logprobs)
        s.turns.append(Turn("assistant", text))
        b.close_assistant()
        answer = fmt.extract_answer(text)
        if answer is not None:
            s.answer, s.status, s.done = answer, "ok", True
            return
        if not res.finished or len(b.token_ids) >= self.cfg.max_total_tokens:
            s.status, s.done = "truncated", True
            return
        call = fmt.parse_tool_call(text)
        if call is None:
            s.status, s.done = "ok", True
            return
        if isinstance(call, fmt.CallError):
            s.calls.append(
                ToolCall(turn, "", {"raw": call.raw[:500]}, False, f"error: {call.message}")
            )
            s.last_problem = "malformed"
            if self.cfg.malformed_call == "stop":
                s.status, s.done = "malformed", True
                return
            self._tool_turn(s, ToolResult.error(call.message))
            return
        tool = self.tools.get(call.name)
        if tool is None:
            result = ToolResult.error(
                f"unknown tool {call.name!r}; available: {sorted(self.tools)}"
            )
            # Recorded under one name: what a model invents must not become metric names.
            call = fmt.ParsedCall("unknown", {"name": call.name, "arguments": call.arguments})
        else:
            ctx = ToolContext(
                list(s.images), [e.frame for e in b.images], s.n_original, self.family
            )
            result = tool(call.arguments, ctx)
        encoded = [
            encode_image(img, self.processor, origin=origin) for img, origin in result.images
        ]
        if encoded and not b.fits(encoded):
            s.calls.append(
                ToolCall(
                    turn, call.name, call.arguments, True, "image budget exceeded", 0, result.region
                )
            )
            s.status, s.done = "image_budget", True
            return
        s.calls.append(
            ToolCall(
                turn, call.name, call.arguments, result.ok, result.text, len(encoded), result.region
            )
        )
        s.last_problem = None if result.ok else "tool_error"
        self._tool_turn(s, result, encoded)
        if len(b.token_ids) >= self.cfg.max_total_tokens:
            s.status, s.done = "truncated", True

    def _tool_turn(
        self, s: _State, result: ToolResult, encoded: Sequence[EncodedImage] = ()
    ) -> None:
        first = len(s.builder.images) + 1
        prompt = fmt.tool_response_text(result.text, first if encoded else None, len(encoded))
        s.builder.add_tool_turn(prompt, list(encoded))
        s.images.extend(e.image for e in encoded)
        s.turns.append(Turn("tool", prompt.text, len(encoded)))

    # ------------------------------------------------------------------ result
    def _finish(self, s: _State) -> Trajectory:
        b = s.builder
        b.check_parity()
        traj = Trajectory(
            sample_id=s.sample.id,
            token_ids=list(b.token_ids),
            loss_mask=list(b.loss_mask),
            sampled_logprobs=list(b.logprobs),
            prompt_length=s.prompt_length,
            turns=s.turns,
            tool_calls=s.calls,
            images=[e.image for e in b.images],
            pixel_values=b.pixel_values(),
            image_grid_thw=b.image_grid_thw(),
            image_keys=b.image_keys(),
            status=s.status,  # type: ignore[arg-type]
            answer=s.answer,
            frames=[e.frame for e in b.images],
            family=self.family,
        )
        traj.check()
        return traj


def parse_trajectory_answer(traj: Trajectory, sample) -> Any:
    """`format.parse_answer` on a trajectory's answer with its own frames."""
    return fmt.parse_answer(traj.answer, sample, traj.family, traj.frames[: len(sample.images)])


def rollout(
    model,
    processor,
    samples: Sequence[Any],
    agent_cfg,
    n: int = 1,
    seed: int = 0,
    engine: Engine | None = None,
    progress: bool = False,
) -> list[Trajectory]:
    """One-call rollout: tools from `agent_cfg.tools`, the engine of `agent_cfg.rollout_engine`
    (vllm serves the checkpoint the model was loaded from) unless `engine` is given."""
    from miva.agent.engines import make_engine
    from miva.agent.tools import build_tools

    if engine is None:
        kwargs: dict[str, Any] = {}
        if agent_cfg.rollout_engine == "vllm":
            kwargs["model_path"] = getattr(model.config, "_name_or_path", "")
        engine = make_engine(agent_cfg.rollout_engine, model, processor, agent_cfg, **kwargs)
    agent = Agent(processor, agent_cfg, build_tools(agent_cfg), engine)
    return agent.rollout(samples, n_per_sample=n, seed=seed, progress=progress)

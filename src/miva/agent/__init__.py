"""The agent runtime: model loading, chat/tool format, multimodal assembly, tools, rollouts.

API overview (kept current; other stages build on these names):

- `miva.agent.model`: `load_model(name_or_path, family, dtype, device, min_pixels,
  max_pixels) -> (model, Processor)`; `load_from_config(cfg.model)`; `save_model(model,
  processor, folder_or_s3)`; `build_tiny(folder, seed)`; `resolve(name)` -> local folder.
  `"tiny-random"` is built once and cached under `.miva/models/tiny-random` (env
  `MIVA_MODEL_CACHE` moves it; rebuilt when `TINY_VERSION` changes).
  `Processor` = (tokenizer, PIL image processor, family) with `token_id(tok)`.
- `miva.agent.coords`: the ONE place for box conventions. `Frame` (stored size, resized
  size, origin of a crop), `frame_for(w, h, image_processor)`, `to_model` / `from_model`
  (dataset pixels <-> resized pixels for qwen2.5-vl, 0-1000 for qwen2-vl),
  `to_source` (crop pixels -> source image pixels).
- `miva.agent.format`: tags, `system_prompt(tool_schemas, answer_type, family)`,
  `user_prompt` / `tool_response_text` -> `Prompt` (text parts + `IMAGE` slots; untrusted
  text passes `escape_untrusted`), `parse_tool_call(text) -> ParsedCall | CallError | None`,
  `extract_answer(text) -> str | None`,
  **`parse_answer(text, sample, family, frames) -> typed answer | None`** (rewards and eval
  call this on `Trajectory.answer`; boxes come back in dataset pixels; `frames` =
  `trajectory.frames[:len(sample.images)]`; `rollout.parse_trajectory_answer(traj, sample)`
  does exactly that), `format_model_answer(sample, family, frames)` (gold answer text in
  model coordinates, for SFT).
- `miva.agent.assembly`: `SequenceBuilder` (incremental tokens / loss mask / images),
  `encode_image`, `check_parity`, `mm_token_type_ids`.
- `miva.agent.tools`: `build_tools(cfg.agent) -> {name: Tool}`; `Tool.schema()`,
  `Tool(arguments, ToolContext) -> ToolResult` (never raises on bad arguments).
  zoom / view / python (kernel-isolated sandbox or sandbox service, `miva.agent.sandbox`) /
  search (BM25 over JSONL, or HTTP).
- `miva.agent.engines`: `make_engine("hf" | "vllm", model, processor, cfg.agent)`;
  interface `generate(list[GenRequest], seed) -> list[GenResult]` (+ optional `release()`
  at the end of a batch); `hf.HFEngine` (own decode loop; KV cache across turns and shared
  prompt prefill, `agent.kv_cache`; vision-feature cache, `agent.vision_cache`;
  `load_weights(state_dict)`), `vllm.VLLMEngine` (GPU, untested here, `load_weights`),
  `scripted.ScriptedEngine(processor, script(key, turn) -> text)`,
  `replay.ReplayTurns(engine, tokenizer, script)` (teacher-forced turns through a real engine).
  docs/rollouts.md explains the caches.
- `miva.agent.rollout`: `rollout(model, processor, samples, cfg.agent, n, seed)` (one call:
  tools + engine from the config) and `Agent(processor, cfg.agent, tools, engine).rollout(samples,
  n_per_sample, seed) -> list[Trajectory]` (sample-major groups; statuses ok | truncated |
  malformed | tool_error | max_turns | image_budget). Sampled log-probs are
  log_softmax(logits / T) of the policy, no top-p or suppression folded in.
- `miva.agent.forward`: THE log-prob function of SFT and GRPO (`model_inputs` feeds
  evaluation's attention pass the same way).
  `collate(trajs, processor, valid=None, vision_cache=None) -> TokenBatch` (right-padded;
  target-aligned `loss_mask` and `rollout_logp` `[N, T-1]`; images as `vision.ImageRef`;
  3-D RoPE `position_ids`) and `token_logprobs(model, batch, temperature, with_entropy)
  -> (logp, entropy)` (`[N, T-1]`, logp of token t+1 given its prefix where scored, 0
  elsewhere; equals the sampler's at the same temperature). A group's trajectories run as
  one packed row, the shared prompt once (`miva.agent.packing`). `model_inputs(model,
  batch)`: the forward's keyword arguments of a padded batch (image features in place).
- `miva.agent.positions`: `mrope_positions(tokens, grids, image_token_id, merge, start)`
  (Qwen2-VL 3-D positions, extendable piece by piece). `miva.agent.vision`: `VisionCache`,
  `encode_images`, `image_key`, `ImageRef`.
- `miva.agent.render`: text and HTML views of trajectories (`miva agent`, through
  `miva.eval.show`).
- `miva.agent.trajectory`: the `Trajectory` / `ToolCall` / `Turn` contract (+ `frames`,
  `family`).
"""

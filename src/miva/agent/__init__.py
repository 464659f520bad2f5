"""The agent runtime: model loading, chat/tool format, multimodal assembly, tools, rollouts.

API overview (kept current; other stages build on these names):

- `miva.agent.model`: `load_model(name_or_path, family, dtype, device, min_pixels,
  max_pixels) -> (model, Processor)`; `load_from_config(cfg.model)`; `save_model(model,
  processor, folder_or_s3)`; `build_tiny(folder, seed)`. `"tiny-random"` is built once and
  cached under `.miva/models/tiny-random` (env `MIVA_MODEL_CACHE` moves it).
  `Processor` = (tokenizer, PIL image processor, family).
- `miva.agent.coords`: the ONE place for box conventions. `Frame` (stored size, resized
  size, origin of a crop), `frame_for(w, h, image_processor)`, `to_model` / `from_model`
  (dataset pixels <-> resized pixels for qwen2.5-vl, 0-1000 for qwen2-vl),
  `to_relative` / `from_relative`, `to_source` (crop pixels -> source image pixels).
- `miva.agent.format`: tags, `system_prompt(tool_schemas, answer_type, family)`,
  `user_prompt`, `parse_tool_call(text) -> ParsedCall | CallError | None`,
  `extract_answer(text) -> str | None`,
  **`parse_answer(text, sample, family, frames) -> typed answer | None`** (rewards and eval
  call this on `Trajectory.answer`; boxes come back in dataset pixels; `frames` =
  `trajectory.frames[:len(sample.images)]`), `format_model_answer(sample, family, frames)`
  (gold answer text in model coordinates, for SFT).
- `miva.agent.assembly`: `SequenceBuilder` (incremental tokens / loss mask / images),
  `encode_image`, `check_parity`, `mm_token_type_ids`, `sanitize`.
- `miva.agent.tools`: `build_tools(cfg.agent) -> {name: Tool}`; `Tool.schema()`,
  `Tool(arguments, ToolContext) -> ToolResult` (never raises on bad arguments).
  zoom / view / python (sandboxed subprocess, `tools.python_sandbox.run_python`) /
  search (BM25 over JSONL, or HTTP).
- `miva.agent.trajectory`: the `Trajectory` / `ToolCall` / `Turn` contract.
"""

"""The agent runtime: model loading, chat/tool format, multimodal assembly, tools, rollouts.

API overview (kept current; other stages build on these names):

- `miva.agent.model`: `load_model(name_or_path, family, dtype, device, min_pixels,
  max_pixels) -> (model, Processor)`; `load_from_config(cfg.model)`; `save_model(model,
  processor, folder_or_s3)`; `build_tiny(folder, seed)`. `"tiny-random"` is built once and
  cached under `.miva/models/tiny-random` (env `MIVA_MODEL_CACHE` moves it).
  `Processor` = (tokenizer, PIL image processor, family).
- `miva.agent.trajectory`: the `Trajectory` / `ToolCall` / `Turn` contract.
"""

"""Log a `save_pretrained` model folder to MLflow as a pyfunc that generates answers.

``mlflow.pyfunc.load_model("models:/miva-agent@champion").predict(df)`` takes a DataFrame
with a ``question`` column and an optional ``images`` column (each cell a list of images:
PNG/JPEG bytes, base64 strings, file paths or PIL images) and returns one generated
answer per row (the text inside ``<answer>…</answer>`` when the model wrote one, else the
whole completion). The model folder travels as the pyfunc's ``model`` artifact and is
loaded by miva's one loader (`miva.agent.model.load_model`); Qwen2.5-VL and Qwen2-VL
checkpoints take the images, any other causal LM answers from the question alone.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

try:  # mlflow is a dependency, but keep this module importable without it
    from mlflow.pyfunc import PythonModel
except ImportError:  # pragma: no cover
    PythonModel = object  # type: ignore[assignment,misc]

ARTIFACT_KEY = "model"
VLM_TYPES = {"qwen2_5_vl", "qwen2_vl"}
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION = ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>")


def to_pil(item: Any):
    """One image cell -> PIL image (bytes, base64 text, a path, or a PIL image)."""
    from PIL import Image

    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, dict) and item.get("bytes") is not None:  # datasets.Image cell
        item = item["bytes"]
    if isinstance(item, (bytes, bytearray)):
        return Image.open(io.BytesIO(item)).convert("RGB")
    if isinstance(item, str):
        if Path(item).is_file():
            return Image.open(item).convert("RGB")
        return Image.open(io.BytesIO(base64.b64decode(item))).convert("RGB")
    raise ValueError(f"cannot read an image from a {type(item).__name__}")


class Generator:
    """Greedy single-turn answers from a `save_pretrained` folder (miva's loader)."""

    def __init__(self, model_dir: str | Path, max_new_tokens: int = 32) -> None:
        from transformers import AutoConfig

        self.max_new_tokens = max_new_tokens
        config = AutoConfig.from_pretrained(str(model_dir))
        self.is_vlm = config.model_type in VLM_TYPES
        if self.is_vlm:
            from miva.agent.model import load_model

            family = "qwen2-vl" if config.model_type == "qwen2_vl" else "qwen2.5-vl"
            self.model, self.processor = load_model(str(model_dir), family=family)
            self.tokenizer = self.processor.tokenizer
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            self.processor = None

    def _prompt(self, question: str, n_images: int) -> str:
        from miva.agent.format import user_prompt

        return f"{IM_START}user\n{user_prompt(question, n_images)}{IM_END}\n{IM_START}assistant\n"

    def answer(self, question: str, images: list[Any] | None = None) -> str:
        import torch

        from miva.agent.format import IMAGE_PLACEHOLDER, extract_answer

        images = [to_pil(x) for x in (images or [])] if self.is_vlm else []
        text = self._prompt(question, len(images))
        kwargs: dict[str, Any] = {}
        suppress: list[list[int]] = []
        if images:
            ip = self.processor.image_processor
            out = ip(images=images, return_tensors="pt")
            grids = out["image_grid_thw"]
            merge = int(ip.merge_size) ** 2
            for grid in grids:  # one placeholder run per image, in order
                n = int(grid.prod()) // merge
                text = text.replace(IMAGE_PLACEHOLDER, VISION[0] + VISION[1] * n + VISION[2], 1)
            kwargs = {"pixel_values": out["pixel_values"], "image_grid_thw": grids}
        if self.is_vlm:  # a random model can sample vision tokens: never let it
            suppress = [[int(self.tokenizer.convert_tokens_to_ids(t))] for t in VISION]
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        with torch.no_grad():
            gen = self.model.generate(
                **ids,
                **kwargs,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=pad,
                bad_words_ids=suppress or None,
            )
        completion = self.tokenizer.decode(
            gen[0, ids["input_ids"].shape[1] :], skip_special_tokens=True
        )
        found = extract_answer(completion)
        return found if found is not None else completion.strip()


class MivaAgentModel(PythonModel):
    """The pyfunc wrapper: `predict(DataFrame[question, images]) -> list[str]`."""

    def load_context(self, context) -> None:
        self.generator = Generator(context.artifacts[ARTIFACT_KEY])

    def predict(self, context, model_input, params: dict[str, Any] | None = None) -> list[str]:
        import pandas as pd

        if isinstance(model_input, dict):
            model_input = pd.DataFrame([model_input])
        if "question" not in model_input.columns:
            raise ValueError("model input needs a `question` column (and optionally `images`)")
        if params and params.get("max_new_tokens"):
            self.generator.max_new_tokens = int(params["max_new_tokens"])
        out = []
        for _, row in model_input.iterrows():
            images = row.get("images") if "images" in model_input.columns else None
            images = list(images) if images is not None else []
            out.append(self.generator.answer(str(row["question"]), images))
        return out


def log_model(model_dir: str | Path, name: str = "model"):
    """Log the folder as a pyfunc under the active run; returns MLflow's ModelInfo.

    Requirements are given, not inferred (inference would load the model twice). No
    signature: the `images` column holds lists of varying types, which MLflow's schema
    enforcement would drop.
    """
    import mlflow

    import miva

    return mlflow.pyfunc.log_model(
        name=name,
        python_model=MivaAgentModel(),
        artifacts={ARTIFACT_KEY: str(model_dir)},
        pip_requirements=[f"miva=={miva.__version__}"],
    )

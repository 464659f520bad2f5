"""Log a `save_pretrained` model folder to MLflow as a pyfunc that answers with the agent.

``mlflow.pyfunc.load_model("models:/miva-agent@champion").predict(df)`` takes a DataFrame
with a ``question`` column and an optional ``images`` column (each cell a list of images:
PNG/JPEG bytes, base64 strings, file paths or PIL images) and returns one answer per row.
The model folder travels as the pyfunc's ``model`` artifact. Answers come from the agent
runtime's own code path, the same one `miva evaluate` and training use: `miva.agent.model.
load_model`, then `miva.agent.rollout.rollout` with greedy decoding (temperature 0) on
`Sample`s built from the rows, multi-turn with the agent's tools. The returned text is the
answer inside ``<answer>…</answer>`` (`rollout.parse_trajectory_answer` on a `text`
answer); when the model wrote none, its last turn's text. Qwen2.5-VL and Qwen2-VL
checkpoints only (what the agent runtime loads).
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
FAMILIES = {"qwen2_5_vl": "qwen2.5-vl", "qwen2_vl": "qwen2-vl"}


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


def to_png(item: Any) -> bytes:
    """One image cell -> PNG bytes (what `Sample.images` holds)."""
    buf = io.BytesIO()
    to_pil(item).save(buf, format="PNG")
    return buf.getvalue()


def make_sample(question: str, images: list[Any] | None = None):
    """A `Sample` for serving: the question and images; the answer is free text (unknown)."""
    from miva.data.schema import Sample

    return Sample(
        task="serve",
        images=[to_png(x) for x in images or []],
        question=question,
        answer_type="text",
        answer="",
        split="serve",
        source="pyfunc",
    )


class Generator:
    """Greedy multi-turn answers from a `save_pretrained` folder through the agent runtime."""

    def __init__(
        self,
        model_dir: str | Path,
        max_new_tokens: int | None = None,
        agent_cfg: Any = None,
        batch_size: int = 8,
    ) -> None:
        from transformers import AutoConfig

        from miva.agent.model import load_model
        from miva.config import AgentConfig

        config = AutoConfig.from_pretrained(str(model_dir))
        family = FAMILIES.get(config.model_type, "qwen2.5-vl")  # load_model rejects others
        self.model, self.processor = load_model(str(model_dir), family=family)
        agent_cfg = agent_cfg if agent_cfg is not None else AgentConfig()
        self.agent_cfg = agent_cfg.model_copy(update={"temperature": 0.0})
        if max_new_tokens:
            self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    @property
    def max_new_tokens(self) -> int:
        return int(self.agent_cfg.max_new_tokens)

    @max_new_tokens.setter
    def max_new_tokens(self, value: int) -> None:
        self.agent_cfg = self.agent_cfg.model_copy(update={"max_new_tokens": int(value)})

    def answers(self, rows: list[tuple[str, list[Any] | None]]) -> list[str]:
        """One answer per (question, images) row; rows go through the rollout in batches."""
        from miva.agent.rollout import parse_trajectory_answer, rollout

        samples = [make_sample(q, imgs) for q, imgs in rows]
        out: list[str] = []
        for start in range(0, len(samples), self.batch_size):
            batch = samples[start : start + self.batch_size]
            trajs = rollout(self.model, self.processor, batch, self.agent_cfg, n=1, seed=0)
            for sample, traj in zip(batch, trajs, strict=True):
                parsed = parse_trajectory_answer(traj, sample)
                out.append(parsed if parsed is not None else _last_text(traj, self.processor))
        return out

    def answer(self, question: str, images: list[Any] | None = None) -> str:
        return self.answers([(question, images)])[0]


def _last_text(traj, processor) -> str:
    """The last assistant turn without special tokens (when there is no <answer>)."""
    texts = [t.text for t in traj.turns if t.role == "assistant"]
    if not texts:
        return ""
    ids = processor.tokenizer.encode(texts[-1], add_special_tokens=False)
    return processor.tokenizer.decode(ids, skip_special_tokens=True).strip()


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
        rows = []
        for _, row in model_input.iterrows():
            images = row.get("images") if "images" in model_input.columns else None
            rows.append((str(row["question"]), list(images) if images is not None else []))
        return self.generator.answers(rows)


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

"""Inputs of the training stages, checked before any work starts.

- `load_training_samples`: a dataset folder or s3:// URI -> usable samples of a split
  (a clear `DataError` when there are none).
- `load_policy`: a model folder / s3:// URI / preset -> (model, processor); a folder with
  missing files fails with the list of what is missing.
- `check_batch`: batch sizes that do not fit together fail with what to change (with
  several training processes: this rank's share of the batch).
- `device_of`: the local rank's GPU (``cuda:LOCAL_RANK``) or the CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from miva.errors import ConfigError, DataError
from miva.storage import is_remote

MODEL_FILES = ("config.json",)
WEIGHT_GLOBS = ("*.safetensors", "pytorch_model*.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def load_training_samples(dataset: str | Path, split: str = "train") -> list[Any]:
    from miva.data.io import read_samples
    from miva.storage import localize

    folder = localize(dataset)
    try:
        samples = read_samples(folder, split)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read split {split!r} of dataset {dataset}: {exc}") from exc
    usable = [s for s in samples if s.images and s.question.strip()]
    if not usable:
        raise DataError(
            f"dataset {dataset} has no usable {split!r} rows ({len(samples)} rows, none with "
            "images and a question)"
        )
    return usable


def check_model_folder(path: str | Path) -> None:
    """A local model folder must hold a config, weights and a tokenizer."""
    folder = Path(path)
    if not folder.is_dir():
        return  # a preset name or hub id: the loader decides
    missing = [f for f in MODEL_FILES + TOKENIZER_FILES if not (folder / f).exists()]
    if not any(any(folder.glob(g)) for g in WEIGHT_GLOBS):
        missing.append("weights (*.safetensors)")
    if missing:
        raise DataError(f"model folder {folder} is missing {', '.join(missing)}")


def load_policy(name_or_path: str | Path, model_cfg: Any, device: str | None = None):
    from miva.agent.model import load_from_config

    text = str(name_or_path)
    if not is_remote(text):
        check_model_folder(text)
    return load_from_config(model_cfg, device, name_or_path=text)


def check_batch(train_cfg: Any, world_size: int = 1) -> tuple[int, int]:
    """(trajectories, micro-batches) of this rank's share of a GRPO step; inconsistent sizes
    fail early. The global batch is grpo.prompts_per_step prompts, split evenly over ranks."""
    from miva.rl.distributed import World, split_evenly

    prompts = split_evenly(
        train_cfg.prompts_per_step, World(size=world_size), "grpo.prompts_per_step"
    )
    batch = prompts * train_cfg.group_size
    micro = min(train_cfg.micro_batch_size, batch)
    if batch % micro:
        per_rank = f" per training process ({world_size} of them)" if world_size > 1 else ""
        raise ConfigError(
            f"grpo.prompts_per_step * grpo.group_size = {batch} trajectories{per_rank} is not "
            f"divisible by grpo.micro_batch_size = {micro}; pick a micro batch that divides it"
        )
    return batch, batch // micro


def device_of(cfg: Any) -> str:
    """The local rank's GPU under torchrun (``cuda:LOCAL_RANK``), ``cuda`` alone, or the CPU."""
    from miva.rl.distributed import world_from_env

    return world_from_env().device()

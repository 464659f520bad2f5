"""Model presets and the one function that loads a model (`load_model`).

`tiny-random` is a Qwen2.5-VL-architecture model of about 5M parameters with a tokenizer
MIVA trains itself (see `tokenizer.py`); it is built once from a seed and cached as a
`save_pretrained` folder (weights, config, tokenizer, image-processor config), which
`transformers` reloads like any checkpoint. `tiny-pretrained` is the same architecture
after caption pretraining (`miva pretrain`, `rl/pretrain.py`); it ships inside the package
(`presets/tiny-pretrained`, with its model card) and loads only when its weights match the
checksum of its card. Anything else is a local folder, an s3://
URI (downloaded to a cache) or a hub id of a Qwen2.5-VL / Qwen2-VL checkpoint, loaded by
the same code. Images go through the PIL image processor, so torchvision is not needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from miva import storage
from miva.errors import ConfigError

TINY = "tiny-random"
PRETRAINED = "tiny-pretrained"
# The shipped pretrained preset: weights, tokenizer, processor config and card.json.
PRESET_DIR = Path(__file__).resolve().parent / "presets"
TINY_VERSION = 5  # bump when the preset's tokenizer or architecture changes: caches rebuild
# Where presets are cached; MIVA_MODEL_CACHE overrides.
DEFAULT_CACHE = Path(os.environ.get("MIVA_MODEL_CACHE", ".miva/models"))

# The tiny architecture. 56x56 images -> 4x4 patches of 14 px -> 2x2 merge -> 4 tokens.
# Weights start at std 1/sqrt(width) instead of the 0.02 that suits wide models: at width
# 64-256, 0.02 shrinks every layer's output so much that the image tokens barely move the
# text stream and SFT sat for thousands of steps before it used them (bench/RESULTS.md).
TINY_VISION = dict(
    depth=2,
    hidden_size=64,
    intermediate_size=128,
    num_heads=4,
    patch_size=14,
    spatial_merge_size=2,
    temporal_patch_size=2,
    window_size=112,
    fullatt_block_indexes=[1],
    out_hidden_size=256,
    initializer_range=64**-0.5,
)
TINY_TEXT = dict(
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=4,  # head_dim 64 -> mrope_section sums to 32
    num_key_value_heads=2,
    max_position_embeddings=4096,
    initializer_range=256**-0.5,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [8, 12, 12]},
)


@dataclass
class Processor:
    """What the agent needs to turn text and images into model inputs.

    Attributes: a `transformers` tokenizer, the PIL image processor
    (`Qwen2VLImageProcessorPil`) and the model family (`qwen2.5-vl` or `qwen2-vl`),
    which fixes the box coordinate convention (see `coords.py`).
    """

    tokenizer: Any
    image_processor: Any
    family: str = "qwen2.5-vl"

    @property
    def merge_size(self) -> int:
        return int(self.image_processor.merge_size)

    @property
    def patch_size(self) -> int:
        return int(self.image_processor.patch_size)

    def token_id(self, token: str) -> int:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == self.tokenizer.unk_token_id:
            raise ConfigError(
                f"the tokenizer has no token {token!r}; is this a Qwen2-VL tokenizer?"
            )
        return int(tid)


def vl_config(
    vocab_size: int,
    special: dict[str, int],
    text: dict[str, Any] = TINY_TEXT,
    vision: dict[str, Any] = TINY_VISION,
    tie_word_embeddings: bool = False,
):
    """A Qwen2.5-VL config of the given sizes wired to the tokenizer's special tokens
    (the tiny preset by default; bench/rollout.py passes 3B sizes)."""
    from transformers import Qwen2_5_VLConfig

    return Qwen2_5_VLConfig(
        text_config=dict(
            text,
            vocab_size=vocab_size,
            bos_token_id=special["<|endoftext|>"],
            eos_token_id=special["<|im_end|>"],
            pad_token_id=special["<|endoftext|>"],
        ),
        vision_config=dict(vision),
        image_token_id=special["<|image_pad|>"],
        video_token_id=special["<|video_pad|>"],
        vision_start_token_id=special["<|vision_start|>"],
        vision_end_token_id=special["<|vision_end|>"],
        tie_word_embeddings=tie_word_embeddings,
    )


def build_tiny(
    folder: str | Path, seed: int = 0, min_pixels: int = 56 * 56, max_pixels: int = 112 * 112
) -> Path:
    """Build the tiny-random preset deterministically from `seed` and save it to `folder`."""
    import torch
    from transformers import GenerationConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    from miva.agent.tokenizer import QWEN_SPECIAL_TOKENS, build_tokenizer

    folder = Path(folder)
    tok = build_tokenizer(seed=seed)
    special = {t: int(tok.convert_tokens_to_ids(t)) for t in QWEN_SPECIAL_TOKENS}
    vocab = (len(tok) + 63) // 64 * 64  # pad the embedding to a multiple of 64
    config = vl_config(vocab, special)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[special["<|im_end|>"], special["<|endoftext|>"]],
        pad_token_id=special["<|endoftext|>"],
        bos_token_id=special["<|endoftext|>"],
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=folder.parent))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels).save_pretrained(tmp)
    (tmp / "miva_preset.json").write_text(
        json.dumps({"preset": TINY, "version": TINY_VERSION, "seed": seed})
    )
    folder.parent.mkdir(parents=True, exist_ok=True)
    if _is_current(folder):  # another process won the race: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        return folder
    if folder.exists():  # an older version of the preset
        shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


def _is_current(folder: Path) -> bool:
    marker = folder / "miva_preset.json"
    if not marker.exists() or not (folder / "config.json").exists():
        return False
    try:
        return json.loads(marker.read_text()).get("version") == TINY_VERSION
    except (OSError, json.JSONDecodeError):
        return False


def weights_sha256(folder: str | Path) -> str:
    """sha256 of a model folder's `model.safetensors` (what a model card records)."""
    h = hashlib.sha256()
    with open(Path(folder) / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_card(folder: str | Path) -> dict[str, Any]:
    """The folder's card.json, after checking that the weights are the ones it describes."""
    folder = Path(folder)
    card_path = folder / "card.json"
    if not card_path.exists() or not (folder / "model.safetensors").exists():
        raise ConfigError(
            f"{folder}: the {PRETRAINED} preset is incomplete (card.json or model.safetensors "
            "missing); rebuild it with `make pretrained-preset`"
        )
    card = json.loads(card_path.read_text())
    actual = weights_sha256(folder)
    if actual != card.get("weights_sha256"):
        raise ConfigError(
            f"{folder / 'model.safetensors'}: sha256 {actual[:16]}... does not match its card "
            f"({str(card.get('weights_sha256'))[:16]}...); the weights were changed or damaged "
            "(with Git LFS, run `git lfs pull`); rebuild with `make pretrained-preset`"
        )
    return card


def resolve(name_or_path: str, cache: str | Path | None = None) -> Path | str:
    """A local folder for presets, local paths and s3:// URIs; hub ids are returned unchanged."""
    cache = Path(cache) if cache else DEFAULT_CACHE
    if name_or_path == PRETRAINED:
        folder = PRESET_DIR / PRETRAINED
        verify_card(folder)
        return folder
    if name_or_path == TINY:
        folder = cache / TINY
        if not _is_current(folder):
            build_tiny(folder)
        return folder
    if storage.is_remote(name_or_path):
        return storage.localize(name_or_path, "models")
    path = Path(name_or_path)
    if path.exists():
        if not (path / "config.json").exists():
            raise ConfigError(f"{path}: not a save_pretrained model folder (no config.json)")
        return path
    if name_or_path.count("/") == 1 and not name_or_path.startswith((".", "/")):
        return name_or_path  # a hub id: transformers resolves it (needs network or HF cache)
    raise ConfigError(
        f"model {name_or_path!r}: not `{TINY}`, `{PRETRAINED}`, an existing folder, an s3:// "
        "URI or a hub id"
    )


def load_processor(
    name_or_path: str | Path,
    family: str = "qwen2.5-vl",
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    cache: str | Path | None = None,
) -> Processor:
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    where = (
        resolve(str(name_or_path), cache) if not isinstance(name_or_path, Path) else name_or_path
    )
    tok = AutoTokenizer.from_pretrained(str(where))
    kwargs: dict[str, Any] = {}
    if min_pixels is not None:
        kwargs["min_pixels"] = min_pixels
    if max_pixels is not None:
        kwargs["max_pixels"] = max_pixels
    ip = Qwen2VLImageProcessorPil.from_pretrained(str(where), **kwargs)
    return Processor(tokenizer=tok, image_processor=ip, family=family)


def load_model(
    name_or_path: str,
    family: str = "qwen2.5-vl",
    dtype: str = "float32",
    device: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    attn_implementation: str | None = "sdpa",
    cache: str | Path | None = None,
) -> tuple[Any, Processor]:
    """Load (model, processor) from a preset name, folder, s3:// URI or hub id.

    Qwen2.5-VL checkpoints load as `Qwen2_5_VLForConditionalGeneration`, Qwen2-VL ones as
    `Qwen2VLForConditionalGeneration` (decided by the checkpoint's `model_type`).
    """
    import torch
    from transformers import AutoConfig

    where = resolve(name_or_path, cache)
    config = AutoConfig.from_pretrained(str(where))
    if config.model_type == "qwen2_5_vl":
        from transformers import Qwen2_5_VLForConditionalGeneration as cls
    elif config.model_type == "qwen2_vl":
        from transformers import Qwen2VLForConditionalGeneration as cls
    else:
        raise ConfigError(
            f"model {name_or_path!r} has model_type {config.model_type!r}; MIVA supports qwen2_5_vl and qwen2_vl"
        )
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        dtype
    ]
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = cls.from_pretrained(str(where), **kwargs)
    if device:
        model.to(device)
    model.eval()
    processor = load_processor(
        Path(where) if not isinstance(where, str) else where, family, min_pixels, max_pixels
    )
    return model, processor


def load_from_config(
    model_cfg, device: str | None = None, name_or_path: str | Path | None = None
) -> tuple[Any, Processor]:
    """`load_model` with the fields of a `ModelConfig` (`name_or_path` overrides the one
    it names, e.g. a trained checkpoint loaded with the run's dtype and pixel bounds)."""
    return load_model(
        str(name_or_path) if name_or_path is not None else model_cfg.name_or_path,
        family=model_cfg.family,
        dtype=model_cfg.dtype,
        device=device,
        min_pixels=model_cfg.min_pixels,
        max_pixels=model_cfg.max_pixels,
        attn_implementation=model_cfg.attn_implementation,
    )


def save_model(model: Any, processor: Processor, folder: str | Path) -> None:
    """Save weights, tokenizer and image-processor config as one `save_pretrained` folder
    (a local path or an s3:// URI)."""
    with storage.local_dir(folder, prefix="miva-save-") as local:
        local.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(local)
        processor.tokenizer.save_pretrained(local)
        processor.image_processor.save_pretrained(local)

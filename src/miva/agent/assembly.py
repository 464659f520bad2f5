"""Incremental multimodal token assembly (Qwen2.5 chat markup, vision placeholders).

A `SequenceBuilder` grows one trajectory's sequence piece by piece and never
re-tokenises what the policy sampled:

    <|im_start|>system\\n{system prompt}<|im_end|>\\n
    <|im_start|>user\\nImage 1: <|vision_start|><|image_pad|>*n1<|vision_end|> ... {question}<|im_end|>\\n
    <|im_start|>assistant\\n{SAMPLED TOKENS}<|im_end|>\\n
    <|im_start|>user\\n<tool_response>... Image 4: <vision tokens></tool_response><|im_end|>\\n
    <|im_start|>assistant\\n{SAMPLED TOKENS} ...

Template text is tokenised piece by piece (loss mask 0); sampled tokens are appended as
they came (mask 1, with their log-probs). Each image is run through the PIL image
processor once: its pixel values and grid are kept and `n = t*h*w / merge_size**2`
placeholder tokens are inserted. `check_parity` asserts placeholders == image features,
image by image. The image budget counts resized pixels (what the vision tower sees).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from PIL import Image

from miva.agent.coords import Frame, frame_for
from miva.agent.format import ImageSlot, Prompt

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
VISION_START, VISION_END, IMAGE_PAD = "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"


class ParityError(AssertionError):
    """Image placeholder tokens do not match the image features."""


@dataclass
class EncodedImage:
    image: Image.Image
    pixel_values: Any  # torch.Tensor [n_patches, patch_dim]
    grid_thw: tuple[int, int, int]
    frame: Frame

    @property
    def num_patches(self) -> int:
        return self.grid_thw[0] * self.grid_thw[1] * self.grid_thw[2]

    @cached_property
    def key(self) -> str:
        """Content key of the processed image (what the vision-feature cache is keyed by);
        hashed once, here, so later turns and passes never hash pixels again."""
        from miva.agent.vision import image_key

        return image_key(self.pixel_values, self.grid_thw)


def encode_image(image: Image.Image, processor, origin=None) -> EncodedImage:
    """Pixel values and grid of one image through the processor's PIL image processor."""
    img = image.convert("RGB") if image.mode != "RGB" else image
    out = processor.image_processor(images=[img], return_tensors="pt")
    t, h, w = (int(v) for v in out["image_grid_thw"][0])
    frame = frame_for(img.width, img.height, processor.image_processor, origin)
    ps = processor.patch_size
    if (frame.resized_height, frame.resized_width) != (h * ps, w * ps):
        raise ParityError(
            f"coords.smart_resize gives {frame.resized_width}x{frame.resized_height} but the image "
            f"processor produced {w * ps}x{h * ps}; coordinate conversion would be wrong"
        )
    return EncodedImage(img, out["pixel_values"], (t, h, w), frame)


@dataclass
class SequenceBuilder:
    """One growing sequence: tokens, loss mask, sampled log-probs and its images."""

    processor: Any
    max_pixels: int | None = None  # the trajectory's image budget (resized pixels)
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    images: list[EncodedImage] = field(default_factory=list)

    def __post_init__(self) -> None:
        p = self.processor
        self.image_token_id = p.token_id(IMAGE_PAD)
        self.vision_start_id = p.token_id(VISION_START)
        self.vision_end_id = p.token_id(VISION_END)
        self.im_end_id = p.token_id(IM_END)

    # ------------------------------------------------------------------ budget
    @property
    def pixels_used(self) -> int:
        return sum(e.frame.resized_pixels for e in self.images)

    def fits(self, encoded: list[EncodedImage]) -> bool:
        if self.max_pixels is None:
            return True
        return self.pixels_used + sum(e.frame.resized_pixels for e in encoded) <= self.max_pixels

    def image_tokens(self, e: EncodedImage) -> int:
        return e.num_patches // (self.processor.merge_size**2)

    # ------------------------------------------------------------------ pieces
    def _text(self, text: str) -> None:
        if not text:
            return
        ids = self.processor.tokenizer.encode(text, add_special_tokens=False)
        self.token_ids.extend(ids)
        self.loss_mask.extend([0] * len(ids))
        self.logprobs.extend([0.0] * len(ids))

    def add_prompt(self, prompt: str | Prompt, images: list[EncodedImage] = ()) -> None:
        """Prompt text (mask 0). A plain string is text only; a `Prompt` places `images`
        at its image slots, in order. Nothing in the text itself can add an image."""
        parts = prompt.parts if isinstance(prompt, Prompt) else (prompt,)
        slots = sum(isinstance(p, ImageSlot) for p in parts)
        if slots != len(images):
            raise ValueError(f"prompt has {slots} image slots but {len(images)} images were given")
        pending = iter(images)
        for part in parts:
            if not isinstance(part, ImageSlot):
                self._text(part)
                continue
            e = next(pending)
            n = self.image_tokens(e)
            ids = [self.vision_start_id] + [self.image_token_id] * n + [self.vision_end_id]
            self.token_ids.extend(ids)
            self.loss_mask.extend([0] * len(ids))
            self.logprobs.extend([0.0] * len(ids))
            self.images.append(e)

    def add_sampled(self, token_ids: list[int], logprobs: list[float]) -> None:
        """Tokens the policy sampled, kept exactly (mask 1)."""
        if len(token_ids) != len(logprobs):
            raise ValueError("sampled tokens and log-probs differ in length")
        if self.image_token_id in token_ids:
            raise ParityError(
                "the policy sampled an image placeholder token; suppress it while sampling"
            )
        self.token_ids.extend(int(t) for t in token_ids)
        self.loss_mask.extend([1] * len(token_ids))
        self.logprobs.extend(float(x) for x in logprobs)

    # ------------------------------------------------------------------ chat turns
    def start(self, system: str, user: str | Prompt, images: list[EncodedImage]) -> None:
        self.add_prompt(f"{IM_START}system\n{system}{IM_END}\n{IM_START}user\n", [])
        self.add_prompt(user, images)
        self.add_prompt(f"{IM_END}\n{IM_START}assistant\n")

    def close_assistant(self) -> None:
        """End the assistant turn: `<|im_end|>` unless the policy sampled it, then a newline."""
        if not self.token_ids or self.token_ids[-1] != self.im_end_id:
            self.add_prompt(IM_END)
        self.add_prompt("\n")

    def add_tool_turn(self, text: str | Prompt, images: list[EncodedImage] = ()) -> None:
        self.add_prompt(f"{IM_START}user\n")
        self.add_prompt(text, list(images))
        self.add_prompt(f"{IM_END}\n{IM_START}assistant\n")

    # ------------------------------------------------------------------ model inputs
    def pixel_values(self):
        import torch

        if not self.images:
            return None
        return torch.cat([e.pixel_values for e in self.images], dim=0)

    def image_grid_thw(self):
        import torch

        if not self.images:
            return None
        return torch.tensor([e.grid_thw for e in self.images], dtype=torch.long)

    def image_keys(self) -> list[str]:
        return [e.key for e in self.images]

    def check_parity(self) -> None:
        check_parity(
            self.token_ids,
            [e.grid_thw for e in self.images],
            self.image_token_id,
            self.processor.merge_size,
            self.pixel_values(),
        )


def check_parity(token_ids, grids, image_token_id: int, merge_size: int, pixel_values=None) -> None:
    """Placeholder runs == image features, image by image, and patches == pixel rows.

    Example: two 56x56 images -> grids (1,4,4) each -> 16/4 = 4 placeholders each, 8 in
    all, and 16+16 = 32 rows of pixel values."""
    runs: list[int] = []
    prev = None
    for t in token_ids:
        if t == image_token_id:
            if prev == image_token_id:
                runs[-1] += 1
            else:
                runs.append(1)
        prev = t
    want = [int(t) * int(h) * int(w) // merge_size**2 for t, h, w in grids]
    if runs != want:
        raise ParityError(f"image placeholder runs {runs} != image features {want}")
    if pixel_values is not None:
        patches = sum(int(t) * int(h) * int(w) for t, h, w in grids)
        if int(pixel_values.shape[0]) != patches:
            raise ParityError(
                f"pixel_values has {pixel_values.shape[0]} rows, grids need {patches}"
            )


def mm_token_type_ids(input_ids, image_token_id: int):
    """1 on image placeholder tokens, 0 elsewhere (what Qwen2.5-VL's rope index needs)."""
    return (input_ids == image_token_id).int()

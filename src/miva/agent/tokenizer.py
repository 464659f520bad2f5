"""The tiny preset's tokenizer: byte-level BPE trained on a synthetic corpus made by code.

The corpus is deterministic (a seeded generator of question templates, colours, shapes,
numbers, chat markup, tool-call JSON and answers), so the same seed gives the same
vocabulary. Every Qwen2.5-VL special token is kept with Qwen's spelling, so the
placeholder logic and the chat markup are identical for the tiny model and real
checkpoints. The tool tags (`<tool_call>`, `<answer>`, ...) are single, non-special
tokens, as `<tool_call>` is in Qwen2.5's own vocabulary.
"""

from __future__ import annotations

import json
import random
from typing import Any

QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
TOOL_TAGS: tuple[str, ...] = (
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<think>",
    "</think>",
    "<answer>",
    "</answer>",
)

COLOURS = [
    "red",
    "green",
    "blue",
    "yellow",
    "orange",
    "purple",
    "pink",
    "brown",
    "black",
    "white",
    "grey",
    "cyan",
    "magenta",
]
SHAPES = [
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "diamond",
    "ellipse",
    "rectangle",
    "cross",
    "heart",
]
SIZES = ["small", "large", "tiny", "big", "medium"]
POSITIONS = ["left", "right", "top", "bottom", "center", "corner", "middle"]
WORDS = [
    "image",
    "images",
    "which",
    "how",
    "many",
    "what",
    "is",
    "the",
    "of",
    "a",
    "an",
    "in",
    "on",
    "shows",
    "contains",
    "colour",
    "color",
    "shape",
    "object",
    "objects",
    "count",
    "number",
    "box",
    "region",
    "zoom",
    "view",
    "look",
    "again",
    "compare",
    "difference",
    "same",
    "different",
    "appears",
    "visible",
    "there",
    "are",
    "more",
    "fewer",
    "most",
    "least",
    "both",
    "none",
    "all",
    "each",
    "answer",
    "question",
    "option",
    "choose",
    "find",
    "locate",
    "where",
    "largest",
    "smallest",
    "total",
    "between",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "python",
    "code",
    "search",
    "passage",
    "result",
    "error",
    "tool",
    "call",
    "arguments",
    "crop",
    "print",
    "open",
    "save",
    "numpy",
    "array",
    "width",
    "height",
    "pixel",
    "pixels",
    "bbox",
    "coordinates",
    "return",
    "you",
    "can",
    "use",
    "the",
    "tools",
    "think",
    "step",
    "by",
    "step",
    "then",
    "give",
    "your",
    "final",
    "inside",
    "tags",
]


def synthetic_corpus(seed: int = 0, lines: int = 6000) -> list[str]:
    """Deterministic training text for the tiny tokenizer (about 0.5 MB)."""
    rng = random.Random(seed)

    def num() -> str:
        return str(rng.choice([rng.randint(0, 20), rng.randint(0, 1000), rng.randint(0, 448)]))

    def box() -> list[int]:
        x1, y1 = rng.randint(0, 400), rng.randint(0, 400)
        return [x1, y1, x1 + rng.randint(1, 200), y1 + rng.randint(1, 200)]

    def call() -> str:
        name = rng.choice(["zoom", "view", "python", "search"])
        args: dict[str, Any]
        if name == "zoom":
            args = {"image": rng.randint(1, 6), "bbox": box()}
        elif name == "view":
            args = {"image": rng.randint(1, 6)}
        elif name == "python":
            args = {"code": f"img = images[{rng.randint(0, 5)}]\nprint(img.size)"}
        else:
            args = {"query": " ".join(rng.choices(WORDS, k=4))}
        return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"

    out: list[str] = _prompt_texts()
    for _ in range(lines):
        c, s, z, p = (
            rng.choice(COLOURS),
            rng.choice(SHAPES),
            rng.choice(SIZES),
            rng.choice(POSITIONS),
        )
        kind = rng.randrange(8)
        if kind == 0:
            out.append(f"Which image shows the {z} {c} {s}? Answer with the image number.")
        elif kind == 1:
            out.append(f"How many {c} {s}s are there in image {rng.randint(1, 6)}?")
        elif kind == 2:
            out.append(
                f"Image {rng.randint(1, 6)} red. Image {rng.randint(1, 6)} {c} {s} at the {p}."
            )
        elif kind == 3:
            out.append(f"<think>The {c} {s} is at the {p} of image {rng.randint(1, 6)}.</think>")
        elif kind == 4:
            out.append(call())
        elif kind == 5:
            ans = rng.choice([num(), rng.choice("ABCD"), f"{box()}", f"image {num()}: {box()}"])
            out.append(f"<answer>{ans}</answer>")
        elif kind == 6:
            out.append(
                "<tool_response>"
                + rng.choice(["Image 5: ", "error: ", "stdout: "])
                + num()
                + "</tool_response>"
            )
        else:
            out.append(" ".join(rng.choices(WORDS + COLOURS + SHAPES, k=rng.randint(4, 14))) + ".")
    return out


def _prompt_texts() -> list[str]:
    """The agent's own prompt text (system prompts with every tool schema, per answer
    type and family), repeated so BPE learns it: prompts then cost few tokens."""
    from miva.agent import format as fmt
    from miva.agent.tools.python import Python
    from miva.agent.tools.search import Search
    from miva.agent.tools.view import View
    from miva.agent.tools.zoom import Zoom

    schemas = [Zoom().schema(), View().schema(), Python().schema(), Search(None).schema()]
    texts = []
    for family in ("qwen2.5-vl", "qwen2-vl"):
        for kind in fmt.ANSWER_FORMATS:
            for style in ("full", "compact"):
                texts.append(fmt.system_prompt(schemas, kind, family, style))
                texts.append(fmt.system_prompt(schemas[:2], kind, family, style))
    texts.append(fmt.user_prompt("Which image?", 6, ["a", "b", "c", "d"]).text)
    return texts * 20


def build_tokenizer(vocab_size: int = 4096, seed: int = 0):
    """Train a byte-level BPE tokenizer; returns a `transformers` fast tokenizer."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(synthetic_corpus(seed), trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in TOOL_TAGS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        model_max_length=32768,
    )
    fast.padding_side = "left"
    return fast

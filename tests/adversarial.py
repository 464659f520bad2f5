"""Adversarial text for property-based tests: what a model, a benchmark file or a tool
result may hold. Shared by the parser, assembly and reward properties."""

from hypothesis import strategies as st

# Pieces an adversary (or a confused model) puts together: markup, JSON, numbers that
# overflow, boxes that are inverted or short, unicode.
FRAGMENTS = [
    "<tool_call>",
    "</tool_call>",
    "<answer>",
    "</answer>",
    "<think>",
    "</think>",
    "<tool_response>",
    "</tool_response>",
    "<image>",
    "<|im_end|>",
    "<|im_start|>",
    "<|image_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|endoftext|>",
    "<| image_pad |>",
    '{"name": "zoom", "arguments": {"image": 1, "bbox": [0, 0, 10, 10]}}',
    '{"name": ',
    '"arguments": "{\\"image\\": 2}"',
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    '"',
    "'",
    "None",
    "True",
    "NaN",
    "inf",
    "-",
    ".",
    "1e309",
    "9" * 400,
    "7" * 5000,  # beyond int()'s 4300-digit limit
    "-0.0",
    "image 2:",
    "Image 0",
    "[30, 40, 10, 20]",
    "[1, 2, 3]",
    "[0, 0, 0, 0]",
    "(B)",
    "B.",
    "```json",
    "```",
    "\x00",
    "\u202e",
    "北京",
    "🙂",
    "\n",
]
untrusted = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(FRAGMENTS)), max_size=16).map(
    "".join
)

"""The request and response bodies of the OpenAI-compatible chat endpoint (the subset MIVA uses).

A request is an OpenAI chat completion: `model`, `messages` (system / user messages; user
content is a string or a list of `text` and `image_url` parts) and sampling fields. MIVA's
extras ride in the same body (the openai client sends them with `extra_body=`):

- `miva_trajectory: bool`: add each choice's trajectory (turns, tool calls, status);
- `miva_answer_type`: the answer format the agent is prompted for (default `text`);
- `miva_choices`: the options of a multiple-choice question.

Fields OpenAI defines that MIVA has no use for (`stop`, `presence_penalty`, ...) are
accepted and ignored, so stock clients work; `stream: true` is refused (400).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ANSWER_TYPES = ("choice", "number", "text", "image_index", "bbox", "image_bbox")


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="ignore")
    url: str
    detail: str | None = None


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["image_url"]
    image_url: ImageURL


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart | ImagePart] | None = None


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int = Field(1, ge=1)
    seed: int | None = None
    stream: bool = False
    miva_trajectory: bool = False
    miva_answer_type: Literal["choice", "number", "text", "image_index", "bbox", "image_bbox"] = (
        "text"
    )
    miva_choices: list[str] | None = None


class ApiError(Exception):
    """An error the client caused or must see: rendered as OpenAI's error body."""

    def __init__(
        self, status: int, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {
            "error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        }

"""The scene graph of a COCO-built sample: real images and their annotated boxes.

It offers the solver the interface of a synthetic scene (`images[k].objects`, `matches`),
and round-trips through `Sample.meta["scene"]` (`to_dict` / `from_dict`), so the solver
re-derives answers of COCO items (validation) exactly as it does for synthetic ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CocoObj:
    category: str
    bbox: list[float]  # xyxy in pixels of the resized image
    crowd: bool = False

    def matches(self, desc: dict[str, str]) -> bool:
        return all(getattr(self, k) == v for k, v in desc.items())


@dataclass
class CocoImage:
    image_id: int
    file: str
    width: int
    height: int
    objects: list[CocoObj] = field(default_factory=list)


@dataclass
class CocoScene:
    """Same interface the solver uses on synthetic scenes (`images[k].objects`, `matches`)."""

    images: list[CocoImage]

    def matches(self, desc: dict[str, str]) -> list[tuple[int, CocoObj]]:
        return [
            (k, o)
            for k, im in enumerate(self.images, start=1)
            for o in im.objects
            if o.matches(desc)
        ]

    def to_dict(self) -> dict[str, Any]:
        return {"source": "coco", "images": [asdict(im) for im in self.images]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CocoScene:
        return cls(
            [
                CocoImage(
                    **{k: v for k, v in im.items() if k != "objects"},
                    objects=[CocoObj(**o) for o in im["objects"]],
                )
                for im in d["images"]
            ]
        )

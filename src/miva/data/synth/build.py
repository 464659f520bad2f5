"""Build a dataset folder from the configured source: synthetic scenes, or COCO annotations.

The one entry point that writes a dataset (`miva synthesize`, the benchmarks and the tests
call it): `synthesize.coco_path` picks `miva.data.coco`, otherwise the scene generator
(`miva.data.synth.generate`) runs; both end in `miva.data.io.write_dataset`.
"""

from __future__ import annotations

from pathlib import Path

from miva import storage
from miva.config import SynthesizeConfig
from miva.data.coco import synthesize_coco
from miva.data.io import DatasetInfo, write_dataset
from miva.data.synth.generate import generator_info, synthesize


def run_synth(
    cfg: SynthesizeConfig, out: str | Path | None = None, progress: bool = True
) -> DatasetInfo:
    """Synthesize (from scenes or from COCO) and write the dataset folder; returns its info.

    The destination is checked first (`storage.check_writable`): a wrong bucket or missing
    credentials fail in seconds, not after the whole dataset was generated."""
    storage.check_writable(out or cfg.output)
    if cfg.coco_path:
        result = synthesize_coco(cfg, progress=progress)
    else:
        result = synthesize(cfg, progress=progress)
    return write_dataset(
        result.samples,
        out or cfg.output,
        generator=generator_info(cfg, result),
        name="miva-coco" if cfg.coco_path else "miva-synth",
    )

"""Public multi-image benchmarks: native files -> `Sample`s, predictions -> official metrics.

`BENCHMARKS` maps a name to its adapter class; `get_benchmark(name)` returns an instance
and `load_benchmark(name, path)` reads a local folder or s3:// URI. `miva bench list`
prints every adapter with the files it expects.
"""

from __future__ import annotations

from pathlib import Path

from miva.data.benchmarks.base import Benchmark, BenchResult, Converted, ItemScore, Skipped
from miva.data.benchmarks.blink import Blink
from miva.data.benchmarks.hr_bench import HrBench
from miva.data.benchmarks.mat import MatCoding, MatSearch
from miva.data.benchmarks.mc_bench import McBench
from miva.data.benchmarks.mig_bench import MigBench
from miva.data.benchmarks.mmiu import Mmiu
from miva.data.benchmarks.mmsi_bench import MmsiBench
from miva.data.benchmarks.muirbench import MuirBench
from miva.data.benchmarks.treebench import TreeBench
from miva.data.benchmarks.visualprobe import VisualProbe
from miva.data.benchmarks.vstar import VStar
from miva.errors import ConfigError, DataError

BENCHMARKS: dict[str, type[Benchmark]] = {
    cls.name: cls
    for cls in (
        MigBench,
        McBench,
        Blink,
        Mmiu,
        MuirBench,
        MatSearch,
        MatCoding,
        HrBench,
        VStar,
        MmsiBench,
        TreeBench,
        VisualProbe,
    )
}

__all__ = [
    "BENCHMARKS",
    "BenchResult",
    "Benchmark",
    "Converted",
    "ItemScore",
    "Skipped",
    "get_benchmark",
    "load_benchmark",
]


def get_benchmark(name: str) -> Benchmark:
    key = name.strip().lower().replace("_", "-")
    aliases = {
        "mig": "mig-bench",
        "migbench": "mig-bench",
        "mcbench": "mc-bench",
        "v*": "vstar",
        "hrbench": "hr-bench",
        "muir": "muirbench",
        "mmsi": "mmsi-bench",
        "mmsibench": "mmsi-bench",
        "tree-bench": "treebench",
        "visual-probe": "visualprobe",
    }
    key = aliases.get(key, key)
    if key not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}")
    return BENCHMARKS[key]()


def load_benchmark(
    name: str, path: str | Path, limit: int | None = None
) -> tuple[Benchmark, Converted]:
    """Read a benchmark folder (local or s3://) in its native layout."""
    from miva.storage import localize

    bench = get_benchmark(name)
    folder = localize(path)
    if not folder.is_dir():
        raise DataError(f"{path}: not a folder; {bench.name} expects {bench.expects}")
    return bench, bench.convert(folder, limit=limit)

"""Build the wheels `make gpu-check` needs on a GPU machine that has only torch and
transformers (and their own dependencies) installed and no network.

    .venv/bin/python bench/gpu_wheels.py [--out build/gpu-wheels]      # or: make gpu-wheels

Runs on this CPU machine (it reaches the package index); writes into one folder:
- MIVA itself (``pip wheel --no-deps .``: its pinned torch and the pipeline-only packages
  such as MLflow and KFP are not installed on the GPU machine, and the check needs none);
- DeepSpeed, built from its source release with ``DS_BUILD_OPS=0`` into a pure-Python wheel
  (its CUDA ops are compiled at run time when used; the check uses torch's AdamW and none);
- peft, and what MIVA, DeepSpeed and peft import that torch and transformers do not bring:
  pydantic (+ pydantic-core, annotated-types, typing-inspection, typing-extensions), Pillow,
  PyYAML-free (transformers has it), hjson, py-cpuinfo, einops, msgpack, ninja, psutil,
  accelerate (peft's).

Versions are this repository's constraints.txt pins. Compiled packages are fetched as
CPython 3.12 manylinux x86_64 wheels (the GPU machine's Python): pydantic-core, Pillow and
msgpack (cp312), psutil (abi3), ninja (a binary tool, py3). All others are pure Python.
The folder must stay under 64 MiB (what one device call may carry); the script checks it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_BYTES = 64 * 1024 * 1024
PURE = ("peft", "accelerate", "hjson", "py-cpuinfo", "einops", "pydantic", "annotated-types",
        "typing-inspection", "typing_extensions")  # fmt: skip
BINARY = ("pydantic_core", "pillow", "msgpack", "psutil", "ninja")
BUILT = ("deepspeed",)
TARGET_PYTHON = "3.12"
PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64")


def pins(constraints: Path = ROOT / "constraints.txt") -> dict[str, str]:
    """name -> pinned version, names normalised (lower case, '-' and '_' the same)."""
    out = {}
    for line in constraints.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if m:
            out[normal(m.group(1))] = m.group(2)
    return out


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def check_size(folder: Path, limit: int = LIMIT_BYTES) -> int:
    """Total bytes of the wheels in `folder`; more than `limit` fails naming the largest."""
    total = folder_size(folder)
    if total > limit:
        biggest = sorted(folder.iterdir(), key=lambda p: p.stat().st_size, reverse=True)[:3]
        names = ", ".join(f"{p.name} ({p.stat().st_size / 2**20:.1f} MiB)" for p in biggest)
        raise SystemExit(
            f"{folder} holds {total / 2**20:.1f} MiB of wheels, over the "
            f"{limit / 2**20:.0f} MiB one device call carries; largest: {names}"
        )
    return total


def pip(*args: str, env: dict[str, str] | None = None) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})})


def requirement(name: str, versions: dict[str, str]) -> str:
    version = versions.get(normal(name))
    if version is None:
        raise SystemExit(f"constraints.txt has no pin for {name}; add one")
    return f"{name}=={version}"


def build(out: Path) -> int:
    versions = pins()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT))
    with tempfile.TemporaryDirectory(prefix="miva-ds-") as tmp:
        # DeepSpeed ships as source; its setup.py imports torch (from this venv) and, with
        # DS_BUILD_OPS=0, compiles nothing
        pip(
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-binary",
            "deepspeed",
            "-w",
            tmp,
            *[requirement(n, versions) for n in BUILT],
            env={"DS_BUILD_OPS": "0", "DS_BUILD_STRING": ""},
        )
        for whl in Path(tmp).glob("*.whl"):
            shutil.copy(whl, out)
    pip("download", "--no-deps", "-d", str(out), *[requirement(n, versions) for n in PURE])
    platform_args = [a for p in PLATFORMS for a in ("--platform", p)]
    pip(
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        TARGET_PYTHON,
        "--implementation",
        "cp",
        *platform_args,
        "-d",
        str(out),
        *[requirement(n, versions) for n in BINARY],
    )
    stray = [p for p in out.iterdir() if not p.name.endswith(".whl")]
    if stray:
        raise SystemExit(f"not wheels (a source release slipped in?): {[p.name for p in stray]}")
    total = check_size(out)
    print(f"{len(list(out.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {out}")
    for whl in sorted(out.glob("*.whl")):
        print(f"  {whl.stat().st_size / 2**20:6.2f} MiB  {whl.name}")
    return total


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "build" / "gpu-wheels"))
    build(Path(p.parse_args().out))


if __name__ == "__main__":
    main()

"""Each component's image is defined in images/ and installs the package with the declared
extras. Checked by parsing the Dockerfiles (no Docker engine runs here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from miva.pipeline import components
from miva.pipeline.images import IMAGE_EXTRAS, IMAGES, STAGE_IMAGE, image_ref, read_tags

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _dockerfile(kind: str) -> str:
    return (ROOT / "images" / f"{kind}.Dockerfile").read_text()


def _logical_lines(text: str) -> list[str]:
    """Dockerfile instructions with `\\` continuations joined and comments dropped."""
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return [ln.strip() for ln in "\n".join(lines).replace("\\\n", " ").splitlines() if ln.strip()]


def _args(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.M))


def _requirement(name: str) -> Requirement:
    for dep in PYPROJECT["project"]["dependencies"]:
        if Requirement(dep).name == name:
            return Requirement(dep)
    raise KeyError(name)


def _constraints(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            out[name.strip().lower().replace("_", "-")] = version.strip()
    return out


def test_every_component_has_an_image():
    names = set(components.__all__)
    assert names == set(STAGE_IMAGE)
    for stage, kind in STAGE_IMAGE.items():
        assert (ROOT / "images" / f"{kind}.Dockerfile").exists(), stage


@pytest.mark.parametrize("kind", sorted(IMAGES), ids=lambda k: IMAGES[k])
def test_image_installs_the_package_with_declared_extras(kind):
    lines = _logical_lines(_dockerfile(kind))
    installs = [ln for ln in lines if "pip install" in ln and ('"."' in ln or '".[' in ln)]
    assert installs, f"{kind}: no `pip install .` of the package"
    (spec,) = re.findall(r'"\.(?:\[([\w,-]+)\])?"', installs[-1])
    extras = tuple(e for e in spec.split(",") if e)
    assert extras == IMAGE_EXTRAS[kind]
    declared = PYPROJECT["project"]["optional-dependencies"]
    assert all(e in declared for e in extras)
    assert re.search(r"-c \S*constraints\.txt", installs[-1]), "installs must be pinned"


@pytest.mark.parametrize("kind", sorted(IMAGES), ids=lambda k: IMAGES[k])
def test_image_is_multi_stage_pinned_and_non_root(kind):
    text = _dockerfile(kind)
    args = _args(text)
    froms = re.findall(r"^FROM (\S+)(?: AS (\w+))?", text, flags=re.M)
    assert len(froms) >= 2 and froms[-1][1] == "runtime"
    for image, _ in froms:
        ref = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)
        tag = ref.rsplit(":", 1)[-1]
        assert ":" in ref and tag != "latest" and re.search(r"\d+\.\d+", tag), ref
    runtime = text[text.rindex("FROM ") :]
    assert "COPY --from=build /opt/venv /opt/venv" in runtime
    users = re.findall(r"^USER (\S+)", runtime, flags=re.M)
    uid = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], users[-1])
    assert uid not in {"root", "0"} and int(uid) >= 1000
    assert (
        "COPY configs /opt/miva/configs" in runtime
        and "MIVA_CONFIG_DIR=/opt/miva/configs" in runtime
    )
    # torch pinned to the version the package requires
    (torch_pin,) = set(re.findall(r'"torch==([\w.+]+)"', text))
    assert Version(torch_pin) in _requirement("torch").specifier


def test_gpu_pins_work_with_the_package_and_each_other():
    pins = _constraints(ROOT / "images" / "gpu-pins.txt")
    base = _constraints(ROOT / "constraints.txt")
    gpu_extra = [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"]["gpu"]]
    for req in gpu_extra:
        assert Version(pins[req.name]) in req.specifier, req
    assert Version(pins["transformers"]) in _requirement("transformers").specifier
    # vllm 0.32.0's published requirements: torch==2.13.0, transformers>=5.16.1,<5.20.0
    assert pins["vllm"] == "0.32.0"
    assert Version(pins["transformers"]) in Requirement("transformers>=5.16.1,<5.20.0").specifier
    assert base["torch"] == "2.13.0" and "deepspeed" in base


def test_dockerignore_keeps_the_context_small():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    kept = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert (
        "**" in lines and {"src", "configs", "images", "pyproject.toml", "constraints.txt"} <= kept
    )
    assert not kept & {".venv", ".git", ".miva", "tests"}


def test_image_refs_and_tags_file(tmp_path):
    assert (
        image_ref("reg.example/team/", "gpu", "0.1.0-abc") == "reg.example/team/miva-gpu:0.1.0-abc"
    )
    tags = tmp_path / "tags.env"
    tags.write_text(
        "# written by make images\nIMAGE_REGISTRY=reg.example/team\nIMAGE_TAG=0.1.0-abc\n"
    )
    assert read_tags(tags) == {"IMAGE_REGISTRY": "reg.example/team", "IMAGE_TAG": "0.1.0-abc"}
    tags.write_text("IMAGE_TAG\n")
    from miva.errors import ConfigError

    with pytest.raises(ConfigError, match="tags.env:1"):
        read_tags(tags)

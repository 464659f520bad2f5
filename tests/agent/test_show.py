"""`miva agent`: prints trajectories, saves every image the model saw, writes the HTML view."""

from __future__ import annotations

import pytest
from PIL import Image

from miva.cli import main
from miva.data.io import write_dataset
from miva.data.schema import Evidence, Sample, encode_png


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    samples = []
    for i, colour in enumerate([(255, 0, 0), (0, 200, 0), (0, 0, 255)]):
        img = Image.new("RGB", (448, 448), (220, 220, 220))
        img.paste(colour, (100 + 10 * i, 100, 200 + 10 * i, 200))
        other = Image.new("RGB", (448, 448), (240, 240, 240))
        samples.append(
            Sample(
                task="selection",
                images=[encode_png(other), encode_png(img)],
                question=f"Which image shows the square number {i}?",
                answer_type="image_index",
                answer=2,
                evidence=[Evidence(2, (100 + 10 * i, 100, 200 + 10 * i, 200))],
                split="test",
                meta={"captions": ["an empty grey image", "a square"]},
            )
        )
    dest = tmp_path_factory.mktemp("ds") / "synth"
    write_dataset(samples, dest)
    return dest


def test_agent_cli_gold_policy_shows_tool_calls_and_saves_crops(
    tiny_dir, dataset, tmp_path, capsys
):
    out = tmp_path / "view"
    rc = main(
        [
            "agent",
            "--model",
            str(tiny_dir),
            "--dataset",
            str(dataset),
            "--n",
            "2",
            "--out",
            str(out),
            "--html",
            "--policy",
            "gold",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert text.count("=== trajectory") == 2
    assert (
        "tool call (turn 1): zoom" in text
        and "status=ok" in text
        and "[tool] <tool_response>" in text
    )
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert len(folders) == 2
    for f in folders:
        assert sorted(p.name for p in f.iterdir()) == ["image_1.png", "image_2.png", "image_3.png"]
        crop = Image.open(f / "image_3.png")
        assert max(crop.size) == 112  # the zoom crop, upscaled
    page = (out / "index.html").read_text()
    assert page.count("<img ") == 6 and "image_3.png" in page and "zoom" in page


def test_agent_cli_with_the_tiny_model(tiny_dir, dataset, tmp_path, capsys):
    out = tmp_path / "view"
    rc = main(
        [
            "agent",
            "--model",
            str(tiny_dir),
            "--dataset",
            str(dataset),
            "--n",
            "1",
            "--out",
            str(out),
            "--set",
            "agent.max_new_tokens=8",
            "--samples",
            "2",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert text.count("=== trajectory") == 2 and "[assistant]" in text


def test_agent_cli_bad_dataset_is_a_clear_error(tiny_dir, tmp_path, capsys):
    rc = main(
        ["agent", "--model", str(tiny_dir), "--dataset", str(tmp_path / "missing"), "--n", "1"]
    )
    assert rc != 0
    err = capsys.readouterr().err
    assert "miva agent: error" in err and "missing" in err

"""`miva synthesize` end to end into tmp_path."""

from __future__ import annotations

from miva.cli import main
from miva.data.io import read_info, read_samples


def test_synth_cli_writes_a_dataset(tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(
        [
            "synthesize", "--no-tracking",
            "--n", "21",
            "--out", str(out),
            "--image-size", "112",
            "--images-per-sample", "2,3",
            "--workers", "2",
            "--seed", "3",
            "--tasks", "counting,grounding,difference",
        ]
    )  # fmt: skip
    assert rc == 0
    info = read_info(out)
    assert info.total == 21
    assert info.generator["seed"] == 3
    assert info.generator["config"]["image_size"] == 112
    assert {t for c in info.counts.values() for t in c} == {"counting", "grounding", "difference"}
    samples = read_samples(out)
    assert all(2 <= len(s.images) <= 3 and s.image(1).size == (112, 112) for s in samples)
    assert info.digest in capsys.readouterr().out
    # same command again: same digest
    assert main(["synthesize", "--no-tracking", "--n", "21", "--out", str(tmp_path / "b"), "--image-size", "112",
                 "--images-per-sample", "2,3", "--seed", "3", "--workers", "1",
                 "--tasks", "counting,grounding,difference"]) == 0  # fmt: skip
    assert read_info(tmp_path / "b").digest == info.digest


def test_synth_cli_rejects_bad_options(tmp_path, capsys):
    rc = main(
        [
            "synthesize",
            "--no-tracking",
            "--n",
            "5",
            "--out",
            str(tmp_path / "x"),
            "--images-per-sample",
            "1,9",
        ]
    )
    assert rc == 2
    assert "images_per_sample" in capsys.readouterr().err
    rc = main(
        [
            "synthesize",
            "--no-tracking",
            "--n",
            "5",
            "--out",
            str(tmp_path / "x"),
            "--coco",
            str(tmp_path / "no"),
        ]
    )
    assert rc == 2
    assert "no such COCO folder" in capsys.readouterr().err


def test_synth_cli_detail_coarse(tmp_path):
    out = tmp_path / "coarse"
    argv = [
        "synthesize",
        "--no-tracking",
        "--n",
        "6",
        "--out",
        str(out),
        "--image-size",
        "56",
        "--workers",
        "1",
    ]
    assert main([*argv, "--tasks", "selection", "--detail", "coarse"]) == 0
    assert read_info(out).generator["config"]["detail"] == "coarse"
    assert all(
        len(im["objects"]) == 1 for s in read_samples(out) for im in s.meta["scene"]["images"]
    )

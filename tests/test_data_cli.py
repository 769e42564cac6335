"""`ccnn synth` and `ccnn preprocess` from the command line."""
import json
import subprocess
import sys

import numpy as np


def ccnn(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ccnn.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_synth_then_preprocess(tmp_path):
    out = tmp_path / "syn"
    made = ccnn("synth", "--out", out, "--context", "fera", "--subjects", 2, "--frames", 8, "--size", 48,
                "--seed", 5, "--workers", 1, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    meta = json.loads((out / "meta.json").read_text())
    assert meta["parameters"] == {"context": "fera", "subjects": 2, "frames": 8, "seed": 5,
                                  "image_size": 48, "format_version": 1}
    assert len(list((out / "images").glob("*.png"))) == 16
    again = ccnn("synth", "--out", out, "--context", "fera", "--subjects", 2, "--frames", 8, "--size", 48,
                 "--seed", 5, cwd=tmp_path)
    assert again.returncode == 0 and "kept" in again.stdout
    other = ccnn("synth", "--out", out, "--subjects", 3, cwd=tmp_path)
    assert other.returncode != 0 and "overwrite" in other.stderr

    pre = ccnn("preprocess", out, "--size", 32, "--workers", 1, "--cache", tmp_path / "cache", "--quiet",
               cwd=tmp_path)
    assert pre.returncode == 0, pre.stderr
    assert "16 frames -> 16 faces of 32x32" in pre.stdout and "AU14" in pre.stdout
    folder = next((tmp_path / "cache").iterdir())
    images = np.load(folder / "images.npy", mmap_mode="r")
    assert images.shape == (16, 32, 32)


def test_help_and_bad_input(tmp_path):
    for command in ("synth", "preprocess"):
        shown = ccnn(command, "--help", cwd=tmp_path)
        assert shown.returncode == 0 and f"usage: ccnn {command}" in shown.stdout
    missing = ccnn("preprocess", tmp_path / "nothing", cwd=tmp_path)
    assert missing.returncode != 0 and "does not exist" in missing.stderr
    bad = ccnn("synth", "--out", tmp_path / "x", "--context", "ck", cwd=tmp_path)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr

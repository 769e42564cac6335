"""The logs of a run whose output is not a terminal (console.py): one line per epoch, each data
preparation step named, warnings as one plain line, no carriage returns."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from ccnn.console import epoch_line, plain_warnings

ROOT = Path(__file__).resolve().parents[1]


def test_epoch_line_names_the_loss_metrics_and_seconds():
    record = {"epoch": 2, "loss": 1.23456, "seconds": 12.34, "train": {"icc_avg": 0.1, "mae_avg": 0.9},
              "val": {"icc_avg": 0.5123, "mae_avg": 0.7311}}
    assert epoch_line(record, 10) == "epoch 3/10: train loss 1.235, val ICC 0.512 MAE 0.731, 12.3 s"


def test_plain_warnings_are_one_line(capsys):
    with plain_warnings():
        warnings.warn("three frames had no face")
    err = capsys.readouterr().err
    assert err == "warning: three frames had no face\n"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from ccnn.data import generate_synthetic
    root = tmp_path_factory.mktemp("synth")
    return generate_synthetic(root / "disfa", context="disfa", subjects=5, frames=6, seed=0, image_size=32)


def test_train_without_a_terminal_prints_one_line_per_epoch_and_names_the_splits(synth, tmp_path):
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'python'}"}
    cmd = [sys.executable, "-m", "ccnn.cli", "train", "--data", str(synth), "--head", "ocnn",
           "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"), "--image-size", "16",
           "--epochs", "2", "--batch-size", "8", "--samples-per-epoch", "16", "--split", "fraction:0.6"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)  # pipes: not a TTY
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert "\r" not in text
    epochs = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [line.split(":")[0] for line in epochs] == ["epoch 1/2", "epoch 2/2"]
    assert all("train loss" in line and "ICC" in line and "MAE" in line and line.endswith(" s")
               for line in epochs)
    for part in ("train", "validation", "test"):
        assert f"({part}, " in text, text
    assert "Warning:" not in text and "warnings.warn" not in text  # no raw warnings with source lines


def test_train_prints_an_estimate_of_its_duration(synth, tmp_path, capsys):
    from ccnn.cli import main
    assert main(["train", "--data", str(synth), "--head", "ccnn", "--mode", "ibb", "--out", str(tmp_path / "run"),
                 "--cache-dir", str(tmp_path / "cache"), "--image-size", "16", "--epochs", "3", "--batch-size",
                 "8", "--samples-per-epoch", "16", "--ibb-unary-batches", "1", "--no-progress",
                 "--split", "fraction:0.6"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("estimated duration: about "))
    assert "for 3 epochs on cpu" in line and "s per step of 8 images" in line and "an estimate" in line


def test_the_estimate_leaves_the_run_unchanged(synth, tmp_path):
    """Timing steps on a copy of the model, with the RNG restored: the same weights as without it."""
    import torch
    from ccnn.duration import estimate_duration
    from ccnn.model_setup import build_model
    from ccnn.preprocess import preprocess
    from ccnn.data import load_dataset
    from ccnn.train_config import TrainConfig
    from ccnn.trainer import Trainer

    faces = preprocess(load_dataset(synth), size=16, cache_dir=tmp_path, progress=False)
    config = TrainConfig(epochs=1, batch_size=8, samples_per_epoch=16, progress=False)
    weights = []
    for estimate in (False, True):
        torch.manual_seed(0)
        trainer = Trainer(build_model("copula", faces, seed=0), faces, config=config)
        if estimate:
            step, total = estimate_duration(trainer)
            assert 0 < step and step < total
        weights.append(torch.cat([p.detach().flatten() for p in trainer.fit().model.parameters()]))
    assert torch.equal(weights[0], weights[1])
